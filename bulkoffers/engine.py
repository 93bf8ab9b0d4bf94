"""The import pipeline: reader → validation → bounded worker pool (rate limiter + concurrency cap +
retries) → results. One event loop (anyio) does the reading, validating and sending, a slice of
offers per turn; a bounded feed between producer and workers keeps memory flat in the number of rows.
What happens to one offer (send, look up, send again) is sender.py's; this module runs the pool.

Exactly-once rules: an offer whose answer was lost is set aside, looked up at once and, if not found,
again once the settle window after its last send has passed, and only then sent again (the workers go
on with other offers meanwhile); a row is written to results exactly once; rows never reached (Ctrl-C,
a fatal API error, an unreadable line) are swept into results as `skipped` / not attempted.
"""

from __future__ import annotations

import dataclasses
import gc
import random
import signal
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from .config import ImportConfig
from .errors import BulkOffersError, ConfigError, InputError, Interrupted, RowError
from .offers import Prepared
from .payloads import owned, sent_digest
from .ratelimit import RateLimiter
from .redact import Redactor
from .results import NOT_ATTEMPTED, ResultsWriter, RowResult, Summary, check_writable
from .sandbox import Catalog, OfferBudget, decide, read_snapshot
from .runrecord import TICK_SECONDS, Journal, JournalState, check_input, journal_path, run_header
from .sender import Job, Result, Sender
from .source import Loaded, load, prepared_offers, row_results

if TYPE_CHECKING:  # aiohttp loads with the client when a run starts: validate and dry runs never need it
    from .client import Found


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def advance(self, result: RowResult, rate: float) -> None: ...
    def status(self, text: str) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self, stopped: str = "") -> None: ...


class NoProgress:
    def start(self, total: int) -> None: ...
    def advance(self, result: RowResult, rate: float) -> None: ...
    def status(self, text: str) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self, stopped: str = "") -> None: ...


class Importer:
    """One import run. `run()` inside an anyio event loop; see `import_file` for the sync entry."""

    def __init__(self, cfg: ImportConfig, progress: Progress | None = None, prior: JournalState | None = None,
                 redo_failed: bool = False, renumber: bool = False) -> None:
        """`prior`: the journal of the run this one continues (resume, retry); rows it finished are
        replayed, rows it left in doubt are looked up before sending. `redo_failed`: failed rows are
        sent again (retry). `renumber`: the input is that run's failures file (retry --from)."""
        self.cfg = cfg
        self.prior, self.redo_failed, self.renumber = prior, redo_failed, renumber
        self.journal: Journal | None = None
        self.offers: dict[str, list[Found]] | None = None  # the sandbox's offers by name, read before sending
        self.catalog: Catalog | None = None  # the sandbox's placements (preflight)
        self.budget: OfferBudget | None = None  # offers the sandbox can still take (guardrail)
        self.progress = progress or NoProgress()
        self.limiter = RateLimiter(cfg.rate)
        self.stop: anyio.Event  # created in run(): anyio objects need the event loop
        self.stopped: BulkOffersError | None = None  # why the run stopped early, raised when it ends
        self.stop_reason = ""  # what rows not attempted say
        self.recorded = bytearray()  # 1 byte per row number: has it been written to results?
        self.recorded_count = 0
        self._rng = random.Random()
        self.writer: ResultsWriter | None = None
        self.loaded: Loaded | None = None
        self.sender: Sender
        self._abort: anyio.CancelScope  # the second Ctrl-C cancels requests in flight
        self._in_flight: set[int] = set()  # first row of each offer whose POST is on the wire
        self._aside: dict[int, Job] = {}  # offers set aside until their next look (first row → job)

    # ---- bookkeeping ---------------------------------------------------------------------------------

    def record(self, results: list[RowResult], replayed: bool = False, in_doubt: bool = False,
               sent: float | None = None, digest: str | None = None) -> None:
        assert self.writer is not None
        for r in results:
            if self.is_recorded(r.row):
                continue  # exactly once, whatever happens
            if r.row >= len(self.recorded):
                self.recorded.extend(b"\0" * (r.row + 1 - len(self.recorded)))
            self.recorded[r.row] = 1
            self.recorded_count += 1
            if self.journal is not None and not replayed:
                self.journal.done(r, in_doubt, sent, digest)
            self.writer.write(r, in_doubt)
            self.progress.advance(r, self.limiter.rate)

    def is_recorded(self, row: int) -> bool:
        return row < len(self.recorded) and bool(self.recorded[row])

    def _final_in_prior(self, row: int) -> bool:
        """Whether the earlier run settled this row for good (replayed, never sent again)."""
        assert self.prior is not None
        entry = self.prior.done.get(row)
        if entry is None or row in self.prior.in_flight:
            return False
        outcome, error = entry["outcome"], entry["error"]
        if outcome == "created" or (outcome == "skipped" and not error.startswith(NOT_ATTEMPTED)):
            return True
        # A failure whose answer was lost is unknown, not final: resume looks it up too.
        return outcome == "failed" and not self.redo_failed and not entry.get("in_doubt")

    def halt(self, error: BulkOffersError, reason: str | None = None) -> None:
        """Stop sending: no new request starts. `error` is raised when the run has ended and written
        its results; `reason` is what the rows not attempted say (the error's text by default)."""
        if self.stopped is None:
            self.stopped, self.stop_reason = error, reason or str(error)
        self.stop.set()

    # ---- the run -------------------------------------------------------------------------------------

    async def run(self) -> Summary:
        cfg = self.cfg
        start = time.monotonic()
        self.stop, self._abort = anyio.Event(), anyio.CancelScope()
        for out in (cfg.results, cfg.failures):
            if out.exists() and out.resolve() == cfg.input.resolve():
                raise ConfigError(f"{out} is the input file; writing results there would destroy it",
                                  hint="choose another --results/--failures path")
        # Pass 1 reads the whole input (grouping plan) and hashes it on the way: the run record's identity.
        self.loaded = loaded = await anyio.to_thread.run_sync(load, cfg, self.renumber)
        if self.prior is not None and not self.renumber:
            check_input(self.prior, loaded.table.digest, cfg.force)
        # A continued run rewrites its own results from the journal; a new one never overwrites.
        check_writable(cfg.results, cfg.failures, force=cfg.force or self.prior is not None)
        if self.prior is None:
            check_writable(journal_path(cfg.results), force=cfg.force)
        for w in loaded.warnings:
            self.progress.note(f"warning: {w}")
        # pandas, pydantic and aiohttp leave ~10^5 long-lived objects; a full GC pass over them stalls the
        # event loop for tens of ms, long enough to bunch requests. Freeze them out of the collector
        # (without a gc.collect() first: it took 50 ms and found next to nothing).
        gc.freeze()
        redact = Redactor(cfg.credentials.secrets)
        from .client import open_library

        async with open_library(cfg.api_config) as lib:  # fails fast on credentials and container
            self.sender = Sender(lib, self.limiter, cfg.retry, stopping=self.stop.is_set, rng=self._rng,
                                 settle=cfg.settle)
            await self._read_sandbox()
            if self.prior is None:
                journal_path(cfg.results).unlink(missing_ok=True)  # --force: a new run, a new journal
            self.journal = Journal(journal_path(cfg.results), redact)
            mode = "retry" if self.redo_failed else "resume" if self.prior else "import"
            read_as = dataclasses.replace(cfg, read=loaded.table.options)  # the sheet read, if it was picked
            self.journal.start(run_header(read_as, lib.container_id, mode, loaded.table.digest or "",
                                          loaded.table.headers if self.prior is None else None))
            headers = loaded.table.headers
            if self.prior is not None and self.prior.header.get("headers") and self.renumber:
                headers = list(self.prior.header["headers"])
            self.writer = ResultsWriter(cfg.results, cfg.failures, headers, redact)
            self.progress.start(max(loaded.plan.rows, len(self.prior.done) if self.prior else 0))
            if self.prior is not None:
                self.record([self.prior.result(r) for r in sorted(self.prior.done) if self._final_in_prior(r)],
                            replayed=True)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watch_signals)
                    tg.start_soon(self._now_and_then)
                    await self._pipeline()
                    tg.cancel_scope.cancel()  # stops the signal watcher and the ticker
            finally:
                with anyio.CancelScope(shield=True):
                    if self.stopped is not None:  # the bar stays where the run stopped; the sweep is not progress
                        self.progress.close(stopped="stopped")
                    await anyio.to_thread.run_sync(self._sweep)
                    if self.prior is not None:  # rows of the earlier run this input did not include
                        self.record([self.prior.result(r) for r in sorted(self.prior.done)
                                     if not self.is_recorded(r)], replayed=True)
                    self.writer.close()
                    self.journal.close()
                    self.progress.close()
        pace = self.limiter.pace
        summary = Summary(rows=self.recorded_count, offers=loaded.plan.offers, counts=dict(self.writer.counts),
                          elapsed=time.monotonic() - start, warnings=loaded.warnings, results=str(cfg.results),
                          failures=str(cfg.failures) if self.writer.failures_written else "",
                          pace=pace.rate, rate_found=pace.found, auto=cfg.rate.auto)
        if self.stopped is not None:
            self.stopped.summary = summary
            raise self.stopped
        return summary

    async def _watch_signals(self) -> None:
        """First Ctrl-C: stop sending, let in-flight requests finish. Second: abort them."""
        try:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    if not self.stop.is_set():
                        self.halt(Interrupted())
                        self.progress.note("stopping: finishing requests in flight (Ctrl-C again to abort them)")
                    else:
                        self.progress.note("aborting requests in flight")
                        self._abort.cancel()
                        return
        except (NotImplementedError, ValueError, RuntimeError):
            return  # not the main thread (tests, embedding): no signal handling

    async def _now_and_then(self) -> None:
        """Once a second: results reach the disk (also through quiet spells such as long retries), the
        journal gets a tick (a kill's time is then known to within a second), and the progress bar
        says what the run is waiting for."""
        assert self.writer is not None and self.journal is not None
        while True:
            await anyio.sleep(TICK_SECONDS)
            self.writer.flush()
            self.journal.tick()
            if self._aside:
                wait = max(0.0, min(job.next_at for job in self._aside.values()) - time.monotonic())
                self.progress.status(f"{len(self._aside)} in doubt, next look in {wait:.0f} s")
            else:
                self.progress.status("")

    async def _pipeline(self) -> None:
        workers = self.cfg.workers
        feed = Feed(room_below=max(2 * SLICE, 2 * workers))  # offers waiting: a couple of slices
        with self._abort:
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(self._worker, feed, tg)
                try:
                    await self._produce(feed)
                finally:
                    feed.close()

    def _job(self, prepared: Prepared) -> Job:
        """A new job; one the earlier run may have created already starts with a lookup, and its absence
        counts only after the settle window from that run's last send of it. (An update the earlier run
        sent is decided again from what the offer holds now: sandbox.decide.)"""
        job = Job(prepared, self.sender.budget())
        prior = self.prior
        if prior is not None and any(prior.in_doubt(r) and r not in prior.updates for r in job.rows):
            last_sent = max(prior.last_sent(r) for r in job.rows)
            job.check, job.next_at = True, time.monotonic()
            job.due = job.next_at + max(0.0, last_sent + self.cfg.settle - time.time())
        return job

    async def _produce(self, feed: Feed) -> None:
        assert self.loaded is not None
        ld = self.loaded
        # Read, validated and built here on the event loop, a slice at a time, not in a thread: a thread
        # running beside the event loop fights it for the GIL, and the requests stall in bursts (with
        # payloads built ahead the sending phase ran 1.00x the bare loop, with a reader thread 0.84x).
        # Pass 1 (load) already read an Excel sheet into memory; CSV chunks are small here.
        items = prepared_offers(ld, self.cfg.target.api, self.catalog, LOOP_CHUNK_ROWS)
        while not self.stop.is_set():
            batch: list[Prepared] = []
            try:
                rows = 0
                for prepared in items:  # a slice: SLICE rows, or one offer that has more
                    batch.append(prepared)
                    rows += len(prepared.rows)
                    if rows >= SLICE:
                        break
            except InputError as exc:
                self.halt(exc, f"unreadable input: {exc}")
                return
            if not batch:
                return
            ready = []
            for prepared in batch:
                if all(self.is_recorded(r.number) for r in prepared.rows):
                    continue  # settled by the earlier run and replayed
                if prepared.offer is None:
                    self.record(row_results(prepared, ld.cmap, "invalid"))
                elif (job := self._decide(prepared)) is not None:
                    ready.append(job)
            if self.stop.is_set():
                return  # the sweep records the rest as not attempted
            if sending := [r for job in ready if not job.check and job.existing is None for r in job.rows]:
                assert self.journal is not None
                # Write-ahead for the whole slice: any of them may be on the wire before the next flush.
                self.journal.sending(sending, attempt=1)
            await feed.put(ready)

    def _budgeted(self, job: Job) -> Job | None:
        """A create, if the sandbox can take one more offer (the guardrail, with what it holds)."""
        assert self.loaded is not None
        if self.budget is not None and (full := self.budget.take()):
            cmap = self.loaded.cmap
            job.prepared.problems.append(RowError(job.rows[0], cmap.column("name"), full))
            self.record(row_results(job.prepared, cmap, "invalid"))
            return None
        return job

    async def _worker(self, feed: Feed, tg: anyio.abc.TaskGroup) -> None:
        while (job := await feed.get()) is not None:
            first = job.rows[0]
            self._aside.pop(first, None)
            if self.stop.is_set():
                if job.check:  # sent before and perhaps stored: say so, resume looks it up
                    self._record(job, Result("failed", {"attempts": job.budget.attempts, "error": (
                        "interrupted before the offer could be looked up: it may exist; `bulkoffers resume` "
                        "looks it up before sending")}, in_doubt=True))
                continue  # never sent: the sweep records it
            started = time.monotonic()
            try:
                result = await self.sender.step(job, self._announcer(job))
            except anyio.get_cancelled_exc_class():
                if first in self._in_flight:  # otherwise the sweep records it
                    self._record(job, Result("failed", {"attempts": job.budget.attempts, "error": (
                        "aborted while the request was in flight: the offer may exist; "
                        "`bulkoffers resume` or `retry` looks it up before sending it again")}, in_doubt=True))
                raise
            self._in_flight.discard(first)
            if result is None:  # set aside: its answer was lost and it was not found yet
                self._aside[first] = job
                feed.later(job, tg, self.stop)
                continue
            if result.stop is not None:
                self.halt(result.stop)
            self._record(job, result, elapsed=time.monotonic() - started)

    def _announcer(self, job: Job) -> Any:
        rows, name = job.rows, job.prepared.name

        def announce(attempt: int) -> None:
            assert self.journal is not None
            if job.existing is not None:  # an update: what the offer held goes first, for rollback
                assert job.before is not None
                self.journal.sending(rows, attempt, name, update=(job.existing.id, job.before))
            elif attempt > 1:  # the first attempt of a create was announced with its slice (_produce)
                self.journal.sending(rows, attempt, name)  # before the POST: write-ahead
            self._in_flight.add(rows[0])  # stays there if cancelled: the worker records it as in doubt

        return announce

    def _record(self, job: Job, result: Result, elapsed: float = 0.0) -> None:
        assert self.loaded is not None
        fields = dict(result.fields)
        if result.outcome == "skipped":
            fields["error"] = NOT_ATTEMPTED + (self.stop_reason or "stopped")
        else:
            fields["elapsed_ms"] = int(elapsed * 1000)
        self.record(row_results(job.prepared, self.loaded.cmap, result.outcome, **fields), in_doubt=result.in_doubt,
                    sent=job.sent_wall if result.in_doubt else None, digest=result.digest)

    async def _read_sandbox(self) -> None:
        """Before the first send: every fallback offer of the sandbox (for --on-existing and the guardrail)
        and every placement (the preflight), page by page."""
        cfg = self.cfg
        want_offers = cfg.on_existing != "create" or cfg.preflight
        if not want_offers:
            return
        snapshot = await read_snapshot(self.sender, offers=True, placements=cfg.preflight)
        assert snapshot.offers is not None
        self.offers = snapshot.offers if cfg.on_existing != "create" else None
        if cfg.preflight:
            assert snapshot.placements is not None
            self.catalog = Catalog(snapshot.placements, cfg.credentials.sandbox)
            self.budget = OfferBudget(snapshot.offer_count)
        if self.offers is not None:
            self.progress.note(f"{len(self.offers)} offer names already in sandbox {cfg.credentials.sandbox!r}; "
                               f"rows whose offer name exists: --on-existing {cfg.on_existing}")

    def _decide(self, prepared: Prepared) -> Job | None:
        """What --on-existing makes of a valid offer: a job (create or update), or its rows recorded now."""
        assert self.loaded is not None and prepared.offer is not None and prepared.body is not None
        job = self._job(prepared)
        if job.check:  # the earlier run may have created it: look it up
            return job
        if self.offers is None:
            return self._budgeted(job)
        updated_before = self.prior is not None and any(r in self.prior.updates for r in job.rows)
        d = decide(prepared.body, prepared.offer.name, self.offers.get(prepared.offer.name, []),
                   self.cfg.on_existing, self.cfg.target.api, updated_before)
        if d.action == "create":
            return self._budgeted(job)
        if d.action == "update":
            assert d.existing is not None
            job.existing = d.existing
            prior = self.prior.updates.get(job.rows[0]) if self.prior is not None else None
            job.before = prior["before"] if prior else owned(d.existing.document, self.cfg.target.api, normalize=False)
            return job
        outcome = {"unchanged": "unchanged", "updated": "updated", "skip": "skipped", "fail": "failed"}[d.action]
        found = d.existing
        fields: dict[str, Any] = {"error": d.note, "id": found.id if found else "", "at_id": found.at_id if found else ""}
        if d.action == "updated":
            fields["changes"] = "(already so: an earlier attempt took effect)"
        digest = sent_digest(prepared.body, self.cfg.target.api) if d.action in ("unchanged", "updated") else None
        self.record(row_results(prepared, self.loaded.cmap, outcome, **fields), digest=digest)
        return None

    def _sweep(self) -> None:
        """Every row not yet in results (interrupted, stopped, unreadable tail) is recorded as not attempted."""
        assert self.loaded is not None and self.writer is not None
        ld = self.loaded
        if self.recorded_count >= ld.plan.rows:
            return
        reason = NOT_ATTEMPTED + (self.stop_reason or "run ended early")
        try:
            for row in ld.rows():
                if self.is_recorded(row.number):
                    continue
                self.record([RowResult(row.number, ld.cmap.key(row), ld.cmap.get(row, "name"), "skipped",
                                       error=reason, cells=row.cells)])
        except InputError:
            pass  # the unreadable tail was reported already; its rows cannot be listed


SLICE = 16  # rows prepared per turn of the event loop (about a millisecond of work)
LOOP_CHUNK_ROWS = 500  # CSV rows parsed at once while sending: under ~1 ms per chunk


class Feed:
    """Hands jobs from the producer to the workers: a deque filled a batch at a time and two events.
    (An anyio memory stream costs a send, a receive and their checkpoints per offer, which showed in
    profiles; workers here pop without awaiting while jobs are there.) Jobs set aside come back to the
    front at their time; the feed ends only when the producer is done and none is set aside."""

    def __init__(self, room_below: int) -> None:
        self._items: deque[Job] = deque()
        self._room_below = room_below
        self._more = anyio.Event()  # set when jobs arrive or the feed closes
        self._room = anyio.Event()  # set when the workers have taken the feed below room_below
        self._closed = False
        self.waiting = 0  # jobs set aside, to come back

    async def put(self, items: list[Job]) -> None:
        """Adds a batch; returns once the workers have left room for the next one, and always lets
        the event loop run in between (the producer works on the loop)."""
        self._items.extend(items)
        self._more.set()
        if len(self._items) < self._room_below:
            await anyio.lowlevel.checkpoint()
        while len(self._items) >= self._room_below:
            if self._room.is_set():
                self._room = anyio.Event()
            await self._room.wait()

    def later(self, job: Job, tg: anyio.abc.TaskGroup, stop: anyio.Event) -> None:
        """Brings `job` back to the front at `job.next_at`, or at once when the run stops."""
        self.waiting += 1

        async def bring_back() -> None:
            with anyio.move_on_after(max(0.0, job.next_at - time.monotonic())):
                await stop.wait()
            self.waiting -= 1
            self._items.appendleft(job)
            self._more.set()

        tg.start_soon(bring_back)

    def close(self) -> None:
        """No more new jobs: workers finish what is queued and set aside, then get None."""
        self._closed = True
        self._more.set()

    async def get(self) -> Job | None:
        while True:
            if self._items:
                if len(self._items) <= self._room_below:
                    self._room.set()
                return self._items.popleft()
            if self._closed and not self.waiting:
                return None
            if self._more.is_set():  # an old signal: every queued job is taken
                self._more = anyio.Event()
            await self._more.wait()


def import_file(cfg: ImportConfig, progress: Progress | None = None, prior: JournalState | None = None,
                redo_failed: bool = False, renumber: bool = False) -> Summary:
    """Synchronous entry point: runs one import (or continues one) and returns its summary."""
    return anyio.run(Importer(cfg, progress, prior, redo_failed, renumber).run)


__all__ = ["Importer", "import_file"]
