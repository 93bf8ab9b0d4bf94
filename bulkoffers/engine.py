"""The import pipeline: reader → validation → bounded worker pool (rate limiter + concurrency cap +
retries) → results. One event loop (anyio) does the reading, validating and sending, a slice of
offers per turn; a bounded feed between producer and workers keeps memory flat in the number of rows.

Exactly-once rules: a create whose answer was lost (timeout, dropped connection) is looked up by name
before it is sent again; a row is written to results exactly once; rows never reached (Ctrl-C, a fatal
API error, an unreadable line) are swept into results as `skipped` / not attempted.
"""

from __future__ import annotations

import dataclasses
import random
import signal
import time
import gc
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from .answers import auth_hint, receipt_ids
from .config import ImportConfig
from .errors import BulkOffersError, ConfigError, FatalApiError, InputError, Interrupted, LookupFailed
from .grouping import prepare
from .offers import Prepared
from .ratelimit import RateLimiter
from .redact import Redactor
from .results import NOT_ATTEMPTED, ResultsWriter, RowResult, Summary, check_writable
from .runrecord import Journal, JournalState, check_input, journal_path, run_header
from .sender import Sender
from .source import Loaded, load, row_results, with_payloads

if TYPE_CHECKING:  # aiohttp loads with the client when a run starts: validate and dry runs never need it
    from .client import Found, OfferLibrary


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def advance(self, result: RowResult, rate: float) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self) -> None: ...


class NoProgress:
    def start(self, total: int) -> None: ...
    def advance(self, result: RowResult, rate: float) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self) -> None: ...


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
        self.existing: dict[str, Found] = {}
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
        self._abort: anyio.CancelScope  # the second Ctrl-C cancels requests in flight
        self._in_flight: set[int] = set()  # first row of each offer whose POST is on the wire

    # ---- bookkeeping ---------------------------------------------------------------------------------

    def record(self, results: list[RowResult], replayed: bool = False, in_doubt: bool = False) -> None:
        assert self.writer is not None
        for r in results:
            if self.is_recorded(r.row):
                continue  # exactly once, whatever happens
            if r.row >= len(self.recorded):
                self.recorded.extend(b"\0" * (r.row + 1 - len(self.recorded)))
            self.recorded[r.row] = 1
            self.recorded_count += 1
            if self.journal is not None and not replayed:
                self.journal.done(r, in_doubt)
            self.writer.write(r)
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
            self.sender = Sender(lib, self.limiter, cfg.retry, stopping=self.stop.is_set, rng=self._rng)
            if cfg.skip_existing:
                await self._list_existing(lib)
            if self.prior is None:
                journal_path(cfg.results).unlink(missing_ok=True)  # --force: a new run, a new journal
            self.journal = Journal(journal_path(cfg.results), redact)
            mode = "retry" if self.redo_failed else "resume" if self.prior else "import"
            self.journal.start(run_header(cfg, lib.container_id, mode, loaded.table.digest or "",
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
                    tg.start_soon(self._flush_now_and_then)
                    await self._pipeline()
                    tg.cancel_scope.cancel()  # stops the signal watcher
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._sweep)
                    if self.prior is not None:  # rows of the earlier run this input did not include
                        self.record([self.prior.result(r) for r in sorted(self.prior.done)
                                     if not self.is_recorded(r)], replayed=True)
                    self.writer.close()
                    self.journal.close()
                    self.progress.close()
        summary = Summary(rows=self.recorded_count, offers=loaded.plan.offers, counts=dict(self.writer.counts),
                          elapsed=time.monotonic() - start, warnings=loaded.warnings, results=str(cfg.results),
                          failures=str(cfg.failures) if self.writer.failures_written else "")
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

    async def _pipeline(self) -> None:
        workers = self.cfg.workers
        feed = Feed(room_below=max(2 * SLICE, 2 * workers))  # offers waiting: a couple of slices
        with self._abort:
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(self._worker, feed)
                try:
                    await self._produce(feed)
                finally:
                    feed.close()

    async def _produce(self, feed: Feed) -> None:
        assert self.loaded is not None
        ld = self.loaded
        # Read, validated and built here on the event loop, a slice at a time, not in a thread: a thread
        # running beside the event loop fights it for the GIL, and the requests stall in bursts (with
        # payloads built ahead the sending phase ran 1.00x the bare loop, with a reader thread 0.84x).
        # Pass 1 (load) already read an Excel sheet into memory; CSV chunks are small here.
        items = with_payloads(prepare(ld.rows(LOOP_CHUNK_ROWS), ld.cmap, ld.plan, ld.ctx), self.cfg.target.api)
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
                elif (found := self.existing.get(prepared.offer.name)) is not None:
                    self.record(row_results(prepared, ld.cmap, "skipped", id=found.id, at_id=found.at_id,
                                             error="exists already (--skip-existing): not sent"))
                else:
                    ready.append(prepared)
            if self.stop.is_set():
                return  # the sweep records the rest as not attempted
            if ready:
                assert self.journal is not None
                # Write-ahead for the whole slice: any of them may be on the wire before the next flush.
                self.journal.sending([r.number for p in ready for r in p.rows], attempt=1)
            await feed.put(ready)

    async def _flush_now_and_then(self) -> None:
        """Results reach the disk while rows finish; this also covers the quiet spells (long retries)."""
        assert self.writer is not None
        while True:
            await anyio.sleep(1.0)
            self.writer.flush()

    async def _worker(self, feed: Feed) -> None:
        assert self.loaded is not None
        cmap = self.loaded.cmap
        while (prepared := await feed.get()) is not None:
            if self.stop.is_set():
                continue  # drained; the sweep records these
            started = time.monotonic()
            try:
                outcome, kw = await self._send_offer(prepared)
            except anyio.get_cancelled_exc_class():
                if prepared.rows[0].number in self._in_flight:  # otherwise the sweep records it
                    self.record(row_results(prepared, cmap, "failed", error=(
                        "aborted while the request was in flight: the offer may exist; "
                        "`bulkoffers resume` or `retry` looks it up before sending it again")), in_doubt=True)
                raise
            kw["elapsed_ms"] = int((time.monotonic() - started) * 1000)
            in_doubt = kw.pop("in_doubt", False)
            self.record(row_results(prepared, cmap, outcome, **kw), in_doubt=in_doubt)

    async def _send_offer(self, prepared: Prepared) -> tuple[str, dict[str, Any]]:
        """Send one offer with retries. Returns (outcome, result fields). Whenever the offer may exist
        (an earlier run, or an answer lost in this one), it is looked up by name before any send."""
        assert prepared.offer is not None and prepared.body is not None  # with_payloads built it
        rows = [r.number for r in prepared.rows]
        budget = self.sender.budget()
        in_doubt = self.prior is not None and any(self.prior.in_doubt(r) for r in rows)

        def announce(attempt: int) -> None:
            if attempt > 1:  # the first attempt was announced with its slice (_produce)
                assert self.journal is not None and prepared.offer is not None
                self.journal.sending(rows, attempt, prepared.offer.name)  # before the POST: write-ahead
            self._in_flight.add(rows[0])  # stays there if cancelled: the worker records it as in doubt

        while True:
            if in_doubt:
                try:
                    found = await self.sender.find(prepared.body)
                except LookupFailed as exc:
                    return "failed", {"attempts": budget.attempts, "http_status": None, "in_doubt": True, "error": (
                        f"the answer was lost and looking the offer up failed ({exc}): it may exist; "
                        "`bulkoffers retry` looks again before sending")}
                if found is not None:
                    return "created", {"id": found.id, "at_id": found.at_id, "attempts": budget.attempts,
                                       "http_status": None, "error": ""}
            tried = await self.sender.create(prepared.body, prepared.data, announce, budget)
            self._in_flight.discard(rows[0])
            answer = tried.answer
            status = answer.status if answer is not None else None
            if tried.outcome == "lost":
                assert answer is not None
                in_doubt = True
                wait = self.sender.wait(answer, tried.attempts)
                if not budget.exhausted(self.cfg.retry, wait):
                    await anyio.sleep(wait)
                    continue  # looked up at the top before the next send
                tried = dataclasses.replace(tried, outcome="gave_up")
            break
        if tried.outcome == "ok":
            assert answer is not None
            offer_id, at_id = receipt_ids(answer.body)
            return "created", {"id": offer_id, "at_id": at_id, "attempts": tried.attempts, "http_status": status,
                               "error": ""}
        if tried.outcome == "stopped" and not tried.attempts:
            return "skipped", {"error": NOT_ATTEMPTED + (self.stop_reason or "stopped")}
        if tried.outcome == "stopped":
            return "failed", {"attempts": tried.attempts, "http_status": status, "in_doubt": in_doubt,
                              "error": f"{tried.reason}; stopped before the next retry"}
        if tried.outcome == "fatal":
            assert answer is not None
            self.halt(FatalApiError(f"the API refused the credentials: {tried.reason} ({auth_hint(answer)})",
                                    status=status))
            return "failed", {"attempts": tried.attempts, "http_status": status, "error": tried.reason}
        if tried.outcome == "refused" and status in (404, 405):
            # No row makes the create endpoint vanish: the target itself is wrong; stop before every row fails.
            where = "--container-id" if self.cfg.target.api == "xcore" else "--base-url"
            self.halt(FatalApiError(f"the create endpoint answered {tried.reason}: check {where} and --sandbox",
                                    status=status))
            return "failed", {"attempts": tried.attempts, "http_status": status, "error": tried.reason}
        if tried.outcome == "refused":
            return "failed", {"attempts": tried.attempts, "http_status": status, "error": tried.reason}
        # gave up: retries ran out; if an answer was lost on the way, the offer may be there
        in_doubt = in_doubt or tried.in_doubt
        if in_doubt:
            try:
                found = await self.sender.find(prepared.body)
            except LookupFailed:
                found = None
            if found is not None:
                return "created", {"id": found.id, "at_id": found.at_id, "attempts": tried.attempts,
                                   "http_status": None, "error": ""}
        note = " (an answer was lost: the offer may exist)" if in_doubt else ""
        return "failed", {"attempts": tried.attempts, "http_status": status, "in_doubt": in_doubt,
                          "error": f"{tried.reason} after {tried.attempts} attempts{note}"}

    async def _list_existing(self, lib: OfferLibrary) -> None:
        """--skip-existing: every fallback offer of the sandbox by name, page by page."""
        try:
            async for found in self.sender.pages(lambda: lib.list_page(limit=100)):
                for item in found:
                    self.existing.setdefault(item.name, item)
        except LookupFailed as exc:
            raise ConfigError(f"cannot list the sandbox's offers for --skip-existing: {exc}") from exc
        self.progress.note(f"--skip-existing: {len(self.existing)} offer names already in sandbox "
                           f"{self.cfg.credentials.sandbox!r}")

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
    """Hands prepared offers from the producer to the workers: a deque filled a batch at a time and
    two events. (An anyio memory stream costs a send, a receive and their checkpoints per offer,
    which showed in profiles; workers here pop without awaiting while offers are there.)"""

    def __init__(self, room_below: int) -> None:
        self._items: deque[Prepared] = deque()
        self._room_below = room_below
        self._more = anyio.Event()  # set when offers arrive or the feed closes
        self._room = anyio.Event()  # set when the workers have taken the feed below room_below
        self._closed = False

    async def put(self, items: list[Prepared]) -> None:
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

    def close(self) -> None:
        """No more offers: workers finish what is queued, then get None."""
        self._closed = True
        self._more.set()

    async def get(self) -> Prepared | None:
        while True:
            if self._items:
                if len(self._items) <= self._room_below:
                    self._room.set()
                return self._items.popleft()
            if self._closed:
                return None
            if self._more.is_set():  # an old signal: every queued offer is taken
                self._more = anyio.Event()
            await self._more.wait()


def import_file(cfg: ImportConfig, progress: Progress | None = None, prior: JournalState | None = None,
                redo_failed: bool = False, renumber: bool = False) -> Summary:
    """Synchronous entry point: runs one import (or continues one) and returns its summary."""
    return anyio.run(Importer(cfg, progress, prior, redo_failed, renumber).run)


__all__ = ["Importer", "import_file"]
