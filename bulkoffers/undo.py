"""`bulkoffers rollback`: delete what a run created, rate-bounded and retried like an import (through
the same attempt loop, sender.py)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import anyio

from .client import open_library
from .config import ApiConfig
from .errors import FatalApiError
from .ratelimit import RateLimiter
from .redact import Redactor
from .results import RollbackWriter, RowResult
from .sender import Sender


@dataclass
class RollbackSummary:
    offers: int = 0
    deleted: int = 0
    gone: int = 0
    failed: int = 0


def rollback(created: list[RowResult], api: ApiConfig, out: Path) -> RollbackSummary:
    return anyio.run(_rollback, created, api, out)


async def _rollback(created: list[RowResult], api: ApiConfig, out: Path) -> RollbackSummary:
    rows_of: dict[str, list[RowResult]] = defaultdict(list)
    for r in created:
        rows_of[r.id].append(r)
    summary = RollbackSummary(offers=len(rows_of))
    writer = RollbackWriter(out, Redactor(api.credentials.secrets))
    fatal: list[str] = []

    async with open_library(api) as lib:
        sender = Sender(lib, RateLimiter(api.rate), api.retry, stopping=lambda: bool(fatal))

        async def delete(offer_id: str) -> None:
            tried = await sender.delete(offer_id)
            status = tried.answer.status if tried.answer is not None else None
            if tried.outcome == "ok":
                outcome, error = "deleted", ""
            elif tried.outcome == "refused" and status == 404:
                outcome, error = "gone", ""
            elif tried.outcome == "stopped" and not tried.attempts:
                outcome, error = "failed", f"not attempted: {fatal[0]}"
            else:
                outcome, error = "failed", tried.reason
                if tried.outcome == "fatal":
                    fatal.append(tried.reason)
            setattr(summary, outcome, getattr(summary, outcome) + 1)
            for r in rows_of[offer_id]:
                writer.write(r.row, r.name, r.id, r.at_id, outcome, status, tried.attempts, error)

        send, receive = anyio.create_memory_object_stream[str](api.workers)

        async def worker(receive: anyio.abc.ObjectReceiveStream[str]) -> None:
            async with receive:
                async for offer_id in receive:
                    await delete(offer_id)

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(api.workers):
                    tg.start_soon(worker, receive.clone())
                receive.close()
                async with send:
                    for offer_id in rows_of:
                        await send.send(offer_id)
        finally:
            writer.close()
    if fatal:
        raise FatalApiError(f"the API refused the credentials: {fatal[0]}")
    return summary
