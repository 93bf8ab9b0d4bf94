"""`bulkoffers rollback`: undo what a run did, rate-bounded and retried like an import (through the same
attempt loop, sender.py). Offers the run created are deleted; offers it updated get back the content
the journal recorded before the update, unless someone changed them since the run (then they are left
as they are, and the report says so)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from .client import open_library
from .config import ApiConfig
from .errors import FatalApiError, LookupFailed
from .payloads import content_digest, patch_ops
from .ratelimit import RateLimiter
from .redact import Redactor
from .results import RollbackWriter, RowResult
from .runrecord import JournalState
from .sender import Sender, Tried


@dataclass
class RollbackSummary:
    offers: int = 0
    deleted: int = 0
    gone: int = 0
    restored: int = 0
    failed: int = 0


def rollback(state: JournalState, api: ApiConfig, out: Path) -> RollbackSummary:
    """Deletes the offers the run of `state` created and restores the ones it updated; one line per row
    of them to `out`."""
    return anyio.run(_rollback, state, api, out)


async def _rollback(state: JournalState, api: ApiConfig, out: Path) -> RollbackSummary:
    created: dict[str, list[RowResult]] = defaultdict(list)
    for r in state.created:
        created[r.id].append(r)
    updated: dict[str, tuple[list[RowResult], dict[str, Any], str | None]] = {}
    for r, before, digest in state.updated:
        updated.setdefault(r.id, ([], before, digest))[0].append(r)
    summary = RollbackSummary(offers=len(created) + len(updated))
    writer = RollbackWriter(out, Redactor(api.credentials.secrets))
    fatal: list[str] = []

    async with open_library(api) as lib:
        sender = Sender(lib, RateLimiter(api.rate), api.retry, stopping=lambda: bool(fatal))

        def report(rows: list[RowResult], outcome: str, status: int | None, attempts: int, error: str) -> None:
            setattr(summary, outcome, getattr(summary, outcome) + 1)
            for r in rows:
                writer.write(r.row, r.name, r.id, r.at_id, outcome, status, attempts, error)

        def settle(rows: list[RowResult], tried: Tried, done: str) -> None:
            status = tried.answer.status if tried.answer is not None else None
            if tried.outcome == "ok":
                report(rows, done, status, tried.attempts, "")
            elif tried.outcome == "refused" and status == 404:
                report(rows, "gone", status, tried.attempts, "")
            elif tried.outcome == "stopped" and not tried.attempts:
                report(rows, "failed", status, 0, f"not attempted: {fatal[0]}")
            else:
                if tried.outcome == "fatal":
                    fatal.append(tried.reason)
                report(rows, "failed", status, tried.attempts, tried.reason)

        async def delete(offer_id: str) -> None:
            settle(created[offer_id], await sender.delete(offer_id), "deleted")

        async def restore(offer_id: str) -> None:
            rows, before, digest = updated[offer_id]
            if fatal:
                return report(rows, "failed", None, 0, f"not attempted: {fatal[0]}")
            try:
                now = await sender.read(offer_id)
            except (LookupFailed, FatalApiError) as exc:
                if isinstance(exc, FatalApiError):
                    fatal.append(str(exc))
                return report(rows, "failed", None, 0, f"could not read the offer: {exc}")
            if now is None:
                return report(rows, "failed", 404, 1, "the offer is gone: nothing to restore")
            if digest is not None and content_digest(now.document, api.target.api) != digest:
                return report(rows, "failed", None, 1, "changed since the run: not restored (its content before the "
                                                       "run is in the journal)")
            ops = patch_ops(now.document, before, api.target.api)
            if not ops:
                return report(rows, "restored", None, 1, "")
            settle(rows, await sender.attempt(lambda: lib.patch(offer_id, ops, now.etag)), "restored")

        jobs: list[Callable[[], Awaitable[None]]] = [*(_bind(delete, i) for i in created),
                                                    *(_bind(restore, i) for i in updated)]
        send, receive = anyio.create_memory_object_stream[Callable[[], Awaitable[None]]](api.workers)

        async def worker(receive: anyio.abc.ObjectReceiveStream[Callable[[], Awaitable[None]]]) -> None:
            async with receive:
                async for job in receive:
                    await job()

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(api.workers):
                    tg.start_soon(worker, receive.clone())
                receive.close()
                async with send:
                    for job in jobs:
                        await send.send(job)
        finally:
            writer.close()
    if fatal:
        raise FatalApiError(f"the API refused the credentials: {fatal[0]}")
    return summary


def _bind(fn: Callable[[str], Awaitable[None]], offer_id: str) -> Callable[[], Awaitable[None]]:
    return lambda: fn(offer_id)
