"""`bulkoffers rollback`: delete what a run created, rate-bounded and retried like an import."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import anyio

from .client import OfferLibrary
from .config import Credentials, RateLimit, RetryPolicy, Target
from .errors import FatalApiError
from .ratelimit import RateLimiter
from .redact import Redactor
from .results import RollbackWriter, RowResult
from .answers import Answer, Verdict, backoff, classify, excerpt, parse_retry_after


@dataclass
class RollbackSummary:
    offers: int = 0
    deleted: int = 0
    gone: int = 0
    failed: int = 0


def rollback(created: list[RowResult], target: Target, creds: Credentials, rate: RateLimit, retry: RetryPolicy,
             concurrency: int | None, out: Path) -> RollbackSummary:
    return anyio.run(_rollback, created, target, creds, rate, retry, concurrency, out)


async def _rollback(created: list[RowResult], target: Target, creds: Credentials, rate: RateLimit,
                    retry: RetryPolicy, concurrency: int | None, out: Path) -> RollbackSummary:
    rows_of: dict[str, list[RowResult]] = defaultdict(list)
    for r in created:
        rows_of[r.id].append(r)
    summary = RollbackSummary(offers=len(rows_of))
    limiter = RateLimiter(rate)
    writer = RollbackWriter(out, Redactor(creds.secrets))
    workers = concurrency or max(2, min(64, int(rate.rate * 1.5) + 1))
    rng = random.Random()
    fatal: list[str] = []

    async def delete(lib: OfferLibrary, offer_id: str) -> tuple[str, Answer, int]:
        for attempt in range(1, retry.attempts + 1):
            sent_at = await limiter.acquire()
            answer = await lib.delete(offer_id)
            if answer.status == 404:
                return "gone", answer, attempt
            verdict = classify(answer)
            if verdict is Verdict.OK:
                return "deleted", answer, attempt
            if verdict in (Verdict.FATAL, Verdict.REFRESH):
                fatal.append(excerpt(answer))
                return "failed", answer, attempt
            if verdict is Verdict.ROW or attempt == retry.attempts:
                return "failed", answer, attempt
            wait = backoff(retry, attempt, parse_retry_after(answer.retry_after), rng)
            if answer.status == 429:
                limiter.penalize(wait, sent_at)
            await anyio.sleep(wait)
        raise AssertionError("unreachable")

    async with OfferLibrary(target, creds, retry.timeout, workers) as lib:
        await lib.tokens.get()
        if target.api == "xcore":
            await lib.resolve_container()
        send, receive = anyio.create_memory_object_stream[str](workers)

        async def worker(receive: anyio.abc.ObjectReceiveStream[str]) -> None:
            async with receive:
                async for offer_id in receive:
                    rows = rows_of[offer_id]
                    if fatal:
                        outcome, answer, attempts = "failed", Answer(None, transport="not sent"), 0
                    else:
                        outcome, answer, attempts = await delete(lib, offer_id)
                    setattr(summary, outcome, getattr(summary, outcome) + 1)
                    error = "" if outcome != "failed" else (excerpt(answer) if attempts else
                                                             f"not attempted: {fatal[0]}")
                    for r in rows:
                        writer.write(r.row, r.name, r.id, r.at_id, outcome, answer.status, attempts, error)

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
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
