"""Sending offers. Every request goes through one attempt loop, `Sender.attempt`: a slot from the
shared rate limiter, the request, and on a retriable answer a capped exponential wait (or the server's
Retry-After) until the attempts or the deadline run out; a 429 also slows every worker down. Import,
resume, retry, rollback and verify send through it:

    Sender.step(job)             one offer's next move: send it, or look it up when it may exist
    Sender.attempt(request)      the loop; returns a `Tried`, never raises for HTTP trouble
    ├── create(body, data)       POST one offer (a lost answer ends the loop: look before resending)
    ├── patch(id, ops), read(id)  updates (with the etag), and lookup by id
    ├── named(name), find(body)  lookups by name, every page, names and content compared exactly
    ├── pages(first)             a list or search, every page
    └── delete(offer_id)         rollback

Exactly once when list and search lag behind writes: an offer whose answer was lost is looked up at
once (finding it proves it exists); not finding it proves nothing until `settle` seconds after its last
send, so until then it is set aside (the engine brings it back after 1, 2, 4, ... seconds to look
again) and only then sent again.
Which answers are retried, and how long to wait, is answers.py's pure classification.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .answers import Answer, Verdict, auth_hint, backoff, classify, excerpt, parse_retry_after, receipt_ids
from .config import Api, RetryPolicy
from .errors import BulkOffersError, FatalApiError, LookupFailed
from .offers import Prepared
from .payloads import changed_fields, offer_name, patch_ops, same_content, sent_digest
from .ratelimit import RateLimiter
from .results import NOT_ATTEMPTED

if TYPE_CHECKING:  # aiohttp loads with the client when a run starts: validate and dry runs never need it
    from .client import Found, OfferLibrary

Request = Callable[[], Awaitable[Answer]]


@dataclass(frozen=True)
class Tried:
    """How an attempt loop ended.

    ok        a 2xx answer
    refused   a 4xx no retry will fix (the row is wrong, or the target is)
    fatal     credentials refused (401 after a refresh, 403): every other request would fail too
    gave_up   retriable failures until the attempts or the deadline ran out
    lost      (only when asked for) the answer was lost: the request may have taken effect, so the
              caller must look before sending again
    stopped   the run is stopping (Ctrl-C): no further attempt was made
    """

    outcome: Literal["ok", "refused", "fatal", "gave_up", "lost", "stopped"]
    answer: Answer | None
    attempts: int
    in_doubt: bool = False  # an answer was lost on the way: the request may have taken effect

    @property
    def reason(self) -> str:
        return excerpt(self.answer) if self.answer is not None else "not sent"


@dataclass(slots=True)
class Budget:
    """What one offer may spend: attempts and a deadline, shared by every attempt loop run for it
    (a create, the lookups after a lost answer, the create again)."""

    attempts: int = 0  # made so far
    deadline: float = float("inf")  # time.monotonic() after which no retry starts

    def exhausted(self, policy: RetryPolicy, wait: float = 0.0) -> bool:
        return self.attempts >= policy.attempts or time.monotonic() + wait > self.deadline


@dataclass(slots=True)
class Job:
    """One offer on its way through a run: what it has spent, and whether it may exist already."""

    prepared: Prepared
    budget: Budget
    existing: Found | None = None  # an update: the offer to change, as last read
    before: dict[str, Any] | None = None  # an update: the offer's content before the run (rollback restores it)
    check: bool = False  # look it up before sending: an answer was lost (here, or in an earlier run)
    next_at: float = 0.0  # time.monotonic() of its next move when set aside
    due: float = 0.0  # time.monotonic() from which not finding it proves it absent (last send + settle)
    looks: int = 0  # lookups that did not find it since its last send
    sent_wall: float | None = None  # wall time of its last send (the journal keeps it for resume)

    @property
    def rows(self) -> list[int]:
        return [r.number for r in self.prepared.rows]


@dataclass(frozen=True)
class Result:
    """What happened to an offer: the outcome for each of its rows, the result fields, and the error that
    stops the whole run when the answer says every other offer would fail too."""

    outcome: str  # created, failed or skipped
    fields: dict[str, Any]
    stop: BulkOffersError | None = None
    in_doubt: bool = False  # failed, but it may exist: resume and retry look it up first
    digest: str | None = None  # content of a created offer (payloads.content_digest)


class Sender:
    """The attempt loop and the requests made through it, for one run (one session, one limiter)."""

    def __init__(self, lib: OfferLibrary, limiter: RateLimiter, policy: RetryPolicy,
                 stopping: Callable[[], bool] = lambda: False, rng: random.Random | None = None,
                 settle: float = 0.0) -> None:
        self.lib, self.limiter, self.policy = lib, limiter, policy
        self._stopping = stopping
        self._rng = rng or random.Random()
        self.settle = settle

    @property
    def api(self) -> Api:
        return self.lib.target.api

    # ---- one offer -----------------------------------------------------------------------------------

    async def step(self, job: Job, announce: Callable[[int], None] | None = None) -> Result | None:
        """The offer's next move. Returns its Result, or None when it is set aside: its answer was lost
        and a lookup did not find it yet; it must be stepped again at `job.next_at`. `announce(n)` runs
        before attempt n of a POST (write-ahead journaling)."""
        prepared = job.prepared
        assert prepared.body is not None  # source.with_payloads built it
        if job.existing is not None:
            return await self._update(job, announce)
        while True:
            if job.check:
                try:
                    found = await self.find(prepared.body)
                except LookupFailed as exc:
                    return Result("failed", self._fields(job, None, (
                        f"the answer was lost and looking the offer up failed ({exc}): it may exist; "
                        "`bulkoffers retry` looks again before sending")), in_doubt=True)
                if found is not None:
                    return Result("created", {**self._fields(job, None, ""), "id": found.id, "at_id": found.at_id},
                                  digest=sent_digest(prepared.body, self.api))
                now = time.monotonic()
                if now < job.due:  # not there yet proves nothing: the index may lag behind the write
                    # Look again after 1, 2, 4, ... s: an offer that exists shows as soon as the index has
                    # it; only an absent one waits the whole window.
                    job.next_at = min(job.due, now + 2.0 ** job.looks)
                    job.looks += 1
                    return None
                job.check = False  # absent, settled: sending again cannot make a second copy
                if job.budget.exhausted(self.policy):
                    return Result("failed", self._fields(job, None, (
                        f"not created: the answer of attempt {job.budget.attempts} was lost and the offer was "
                        f"still absent {self.settle:g} s later; no attempts left (`bulkoffers retry` sends it)")))
            tried = await self.create(prepared.body, prepared.data, self._announcing(job, announce), job.budget)
            if tried.outcome == "lost":
                job.check, job.next_at, job.looks = True, time.monotonic(), 0  # look at once: finding it is proof
                job.due = job.next_at + self.settle
                return None  # the engine steps it again at next_at (now): an early look
            return self._settled(job, tried)

    async def _update(self, job: Job, announce: Callable[[int], None] | None) -> Result:
        """Makes the existing offer hold the row's content: a JSON Patch of what differs, with the etag
        (xcore checks it). A stale etag (409/412) re-reads the offer once and applies the patch again; a
        lost answer reads the offer by id (immediate, no lag) to see whether the update took effect."""
        assert job.existing is not None and job.prepared.body is not None
        desired = job.prepared.body
        conflicts = 0
        while True:
            found = job.existing
            ops = patch_ops(found.document, desired, self.api)
            if not ops:  # holds the row's content already (a lost answer that took effect, or a re-read)
                return self._updated(job, found, None, "")
            tried = await self.attempt(lambda: self.lib.patch(found.id, ops, found.etag),
                                       self._announcing(job, announce), budget=job.budget, lost_ends=True)
            status = tried.answer.status if tried.answer is not None else None
            if tried.outcome == "ok":
                return self._updated(job, found, tried.answer, ", ".join(changed_fields(ops)))
            if tried.outcome == "refused" and status == 404:
                return Result("failed", self._fields(job, tried.answer, "the offer was deleted before it could be "
                                                                        "updated"))
            lost, conflict = tried.outcome == "lost", tried.outcome == "refused" and status in (409, 412)
            if not (lost or conflict):
                return self._settled(job, tried)
            if conflict and conflicts:
                return Result("failed", self._fields(job, tried.answer, (
                    f"{tried.reason}: someone else changed the offer while it was being updated, twice; not updated")))
            conflicts += conflict
            try:
                fresh = await self.read(found.id)
            except LookupFailed as exc:
                return Result("failed", self._fields(job, tried.answer, (
                    f"{tried.reason}; reading the offer back failed ({exc}): the update may have taken effect; "
                    "`bulkoffers retry` checks again")), in_doubt=lost)
            if fresh is None:
                return Result("failed", self._fields(job, tried.answer, "the offer was deleted while it was being "
                                                                        "updated"))
            untouched = same_content(found.document, fresh.document, self.api)
            if lost and not untouched and not same_content(desired, fresh.document, self.api):
                return Result("failed", self._fields(job, tried.answer, (
                    "the answer was lost and someone else has changed the offer since: not updated again")))
            job.existing = fresh  # the next turn patches from what is there now (nothing, if it took effect)
            if job.budget.exhausted(self.policy) and not same_content(desired, fresh.document, self.api):
                return Result("failed", self._fields(job, tried.answer, f"{tried.reason}; no attempts left"))

    def _updated(self, job: Job, found: Found, answer: Answer | None, changes: str) -> Result:
        assert job.prepared.body is not None
        fields = {**self._fields(job, answer, ""), "id": found.id, "at_id": found.at_id,
                  "changes": changes or "(already so: an earlier attempt took effect)"}
        return Result("updated", fields, digest=sent_digest(job.prepared.body, self.api))

    async def read(self, offer_id: str) -> Found | None:
        """The offer with this id as it is now (no index lag), or None when it is gone (404). Raises
        LookupFailed when reading keeps failing, FatalApiError when the credentials are refused."""
        tried = await self.attempt(lambda: self.lib.read(offer_id), stoppable=False)
        if tried.outcome == "ok" and tried.answer is not None and isinstance(tried.answer.body, dict):
            return self.lib.parse_offer(tried.answer.body)
        if tried.outcome == "refused" and tried.answer is not None and tried.answer.status == 404:
            return None
        self._raise_if_fatal(tried)
        raise LookupFailed(f"reading offer {offer_id}: {tried.reason}")

    @staticmethod
    def _raise_if_fatal(tried: Tried) -> None:
        """Credentials refused while reading: every other request would be refused too."""
        if tried.outcome == "fatal" and tried.answer is not None:
            raise FatalApiError(f"the API refused the credentials: {tried.reason}", status=tried.answer.status,
                                hint=auth_hint(tried.answer))

    def _announcing(self, job: Job, announce: Callable[[int], None] | None) -> Callable[[int], None]:
        def on_send(attempt: int) -> None:
            job.sent_wall = time.time()
            if announce is not None:
                announce(attempt)

        return on_send

    def _fields(self, job: Job, answer: Answer | None, error: str) -> dict[str, Any]:
        return {"attempts": job.budget.attempts, "http_status": answer.status if answer is not None else None,
                "error": error}

    def _settled(self, job: Job, tried: Tried) -> Result:
        """The Result of a send loop that ended without a lost answer."""
        answer = tried.answer
        status = answer.status if answer is not None else None
        if tried.outcome == "ok":
            assert answer is not None and job.prepared.body is not None
            offer_id, at_id = receipt_ids(answer.body)
            return Result("created", {**self._fields(job, answer, ""), "id": offer_id, "at_id": at_id},
                          digest=sent_digest(job.prepared.body, self.api))
        if tried.outcome == "stopped" and not tried.attempts:
            return Result("skipped", {"error": NOT_ATTEMPTED}, None)
        if tried.outcome == "stopped":
            return Result("failed", self._fields(job, answer, f"{tried.reason}; stopped before the next retry"))
        if tried.outcome == "fatal":
            assert answer is not None
            return Result("failed", self._fields(job, answer, tried.reason), stop=FatalApiError(
                f"the API refused the credentials: {tried.reason} ({auth_hint(answer)})", status=status))
        if tried.outcome == "refused" and status in (404, 405):
            # No row makes the create endpoint vanish: the target itself is wrong; stop before every row fails.
            where = "--container-id" if self.api == "xcore" else "--base-url"
            return Result("failed", self._fields(job, answer, tried.reason), stop=FatalApiError(
                f"the create endpoint answered {tried.reason}: check {where} and --sandbox", status=status))
        if tried.outcome == "refused":
            return Result("failed", self._fields(job, answer, tried.reason))
        return Result("failed", self._fields(job, answer, f"{tried.reason} after {tried.attempts} attempts"))

    def budget(self) -> Budget:
        return Budget(deadline=time.monotonic() + self.policy.deadline)

    def wait(self, answer: Answer, attempt: int) -> float:
        """How long to wait before the attempt after `attempt`: Retry-After, else capped backoff."""
        return backoff(self.policy, attempt, parse_retry_after(answer.retry_after), self._rng)

    async def attempt(self, request: Request, announce: Callable[[int], None] | None = None,
                      stoppable: bool = True, budget: Budget | None = None, lost_ends: bool = False) -> Tried:
        """Sends `request` until it succeeds, is refused, or the attempts or the deadline run out.
        `announce(n)` runs just before attempt n goes out (write-ahead journaling). A stoppable loop
        makes no new attempt once the run is stopping; lookups are not stoppable (they change nothing).
        `budget` carries attempts and deadline over from earlier loops for the same offer; with
        `lost_ends`, a lost answer ends the loop at once (outcome "lost") instead of being retried."""
        budget = budget or self.budget()
        in_doubt = False
        last: Answer | None = None
        while True:
            if stoppable and self._stopping():
                return Tried("stopped", last, budget.attempts, in_doubt)
            sent_at = await self.limiter.acquire()
            if stoppable and self._stopping():
                return Tried("stopped", last, budget.attempts, in_doubt)  # stopped while waiting: nothing sent
            budget.attempts += 1
            if announce is not None:
                announce(budget.attempts)
            last = answer = await request()
            verdict = classify(answer)
            wait = self.wait(answer, budget.attempts) if verdict is Verdict.RETRY else 0.0
            self.limiter.observe(sent_at, answer.status == 429, answer.elapsed, wait)
            if verdict is Verdict.OK:
                return Tried("ok", answer, budget.attempts, in_doubt)
            if verdict in (Verdict.FATAL, Verdict.REFRESH):  # the client refreshed once already on a 401
                return Tried("fatal", answer, budget.attempts, in_doubt)
            if verdict is Verdict.ROW:
                return Tried("refused", answer, budget.attempts, in_doubt)
            in_doubt = in_doubt or answer.in_doubt
            if answer.in_doubt and lost_ends:
                return Tried("lost", answer, budget.attempts, True)
            if budget.exhausted(self.policy, wait):
                return Tried("gave_up", answer, budget.attempts, in_doubt)
            await anyio.sleep(wait)

    # ---- requests ------------------------------------------------------------------------------------

    async def create(self, body: dict[str, Any], data: bytes | None = None,
                     announce: Callable[[int], None] | None = None, budget: Budget | None = None) -> Tried:
        """POST one offer. A lost answer ends the loop ("lost"): the caller looks before sending again."""
        return await self.attempt(lambda: self.lib.create(body, data), announce, budget=budget, lost_ends=True)

    async def named(self, name: str) -> list[Found]:
        """Every offer whose name is exactly `name` (all pages of the lookup; the filter may be looser
        than the name, so names are compared here). Raises LookupFailed when the lookup keeps failing."""
        out: list[Found] = []
        async for page in self.pages(lambda: self.lib.find_by_name(name)):
            out += [item for item in page if item.name == name]
        return out

    async def find(self, body: dict[str, Any]) -> Found | None:
        """After a lost answer: the offer with this body's name and content, or None when the lookup
        finds none (which proves nothing soon after a send: see the settle window). Raises LookupFailed
        when the lookup itself keeps failing: then nobody knows."""
        return next((item for item in await self.named(offer_name(body))
                     if same_content(body, item.document, self.api)), None)

    async def pages(self, first: Request, parse: Callable[[Any], list[Any]] | None = None) -> AsyncIterator[list[Any]]:
        """A list or search, page by page, each page through the attempt loop, following the next links.
        `parse` turns a page's body into items (offers by default). Raises LookupFailed when a page
        cannot be read."""
        from .client import next_href

        parse = parse or self.lib.parse_list
        request = first
        while True:
            tried = await self.attempt(request, stoppable=False)
            self._raise_if_fatal(tried)
            if tried.outcome != "ok" or tried.answer is None:
                raise LookupFailed(tried.reason, status=tried.answer.status if tried.answer else None)
            yield parse(tried.answer.body)
            href = next_href(tried.answer.body)
            if not href:
                return
            request = _page_request(self.lib, href)

    async def delete(self, offer_id: str) -> Tried:
        return await self.attempt(lambda: self.lib.delete(offer_id))


def _page_request(lib: OfferLibrary, href: str) -> Request:
    return lambda: lib.list_page(href=href)
