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
    undo = _Undo(api, RollbackSummary(offers=len(created) + len(updated)),
                 RollbackWriter(out, Redactor(api.credentials.secrets)))
    async with open_library(api) as lib:
        undo.sender = Sender(lib, RateLimiter(api.rate), api.retry, stopping=lambda: bool(undo.fatal))
        jobs = [*(_bind(undo.delete, rows) for rows in created.values()),
                *(_bind(undo.restore, *update) for update in updated.values())]
        try:
            await _pool(jobs, api.workers)
        finally:
            undo.writer.close()
    if undo.fatal:
        raise FatalApiError(f"the API refused the credentials: {undo.fatal[0]}")
    return undo.summary


class _Undo:
    """Deleting or restoring one offer of the run, and writing what became of it."""

    def __init__(self, api: ApiConfig, summary: RollbackSummary, writer: RollbackWriter) -> None:
        self.api, self.summary, self.writer = api, summary, writer
        self.fatal: list[str] = []  # a refusal every further request would meet: the rest is not attempted
        self.sender: Sender

    def report(self, rows: list[RowResult], outcome: str, status: int | None, attempts: int, error: str) -> None:
        setattr(self.summary, outcome, getattr(self.summary, outcome) + 1)
        for r in rows:
            self.writer.write(r.row, r.name, r.id, r.at_id, outcome, status, attempts, error)

    def settle(self, rows: list[RowResult], tried: Tried, done: str) -> None:
        status = tried.answer.status if tried.answer is not None else None
        if tried.outcome == "ok":
            self.report(rows, done, status, tried.attempts, "")
        elif tried.outcome == "refused" and status == 404:
            self.report(rows, "gone", status, tried.attempts, "")
        elif tried.outcome == "stopped" and not tried.attempts:
            self.report(rows, "failed", status, 0, f"not attempted: {self.fatal[0]}")
        else:
            if tried.outcome == "fatal":
                self.fatal.append(tried.reason)
            self.report(rows, "failed", status, tried.attempts, tried.reason)

    async def delete(self, rows: list[RowResult]) -> None:
        self.settle(rows, await self.sender.delete(rows[0].id), "deleted")

    async def restore(self, rows: list[RowResult], before: dict[str, Any], digest: str | None) -> None:
        """Puts back the content an updated offer had before the run, unless it changed since."""
        if self.fatal:
            return self.report(rows, "failed", None, 0, f"not attempted: {self.fatal[0]}")
        offer_id, api = rows[0].id, self.api.target.api
        try:
            now = await self.sender.read(offer_id)
        except (LookupFailed, FatalApiError) as exc:
            if isinstance(exc, FatalApiError):
                self.fatal.append(str(exc))
            return self.report(rows, "failed", None, 0, f"could not read the offer: {exc}")
        if now is None:
            return self.report(rows, "failed", 404, 1, "the offer is gone: nothing to restore")
        if digest is not None and content_digest(now.document, api) != digest:
            return self.report(rows, "failed", None, 1, "changed since the run: not restored (its content before "
                                                        "the run is in the journal)")
        ops = patch_ops(now.document, before, api)
        if not ops:
            return self.report(rows, "restored", None, 1, "")
        lib = self.sender.lib
        self.settle(rows, await self.sender.attempt(lambda: lib.patch(offer_id, ops, now.etag)), "restored")


async def _pool(jobs: list[Callable[[], Awaitable[None]]], workers: int) -> None:
    """Runs the jobs on `workers` tasks (the pace is the sender's limiter)."""
    send, receive = anyio.create_memory_object_stream[Callable[[], Awaitable[None]]](workers)

    async def worker(receive: anyio.abc.ObjectReceiveStream[Callable[[], Awaitable[None]]]) -> None:
        async with receive:
            async for job in receive:
                await job()

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker, receive.clone())
        receive.close()
        async with send:
            for job in jobs:
                await send.send(job)


def _bind(fn: Callable[..., Awaitable[None]], *args: Any) -> Callable[[], Awaitable[None]]:
    return lambda: fn(*args)
