"""Pacing: one rate limiter shared by every worker (evenly spaced slots, never more than the pace in any
window), and the controller that sets the pace from the answers. The concurrency cap is separate (the
number of workers, engine.py). Clock and sleep are injectable, so tests step a fake clock.

The controller (`Pace`) serves both modes:
- fixed `--rate N`: the pace starts at N and never exceeds it;
- `--rate auto`: it starts low and doubles while answers come back clean (an epoch with 429s is
  repeated once before doubling ends), up to `--max-rate`.
It judges answers an epoch at a time: the answers to requests sent since its last change (so a burst
of 429s from one moment counts once). An epoch is congested when it holds more 429s than the share
that comes whatever the pace (a gateway shared with other clients answers some anyway) makes likely
(exact binomial odds under 1 in 1,000, at least three, two points above that share; or so over the
last two epochs), or when latency climbs to several times its best. Then the pace drops just under
the rate the server accepted (at most quartered: just after a limit falls, the server's window is
full of the old pace), and the epochs after the cut tell why the 429s came:
- they stopped: they were the pace's, and the limit is just above (`found`);
- fewer, but still too many: the limit is lower still, cut again;
- as many, and many: cut deeper (to 0.6 of the pace that met them) before deciding;
- as many, at a low share or down to that depth: they come whatever the pace; their share is
  learned as background and the pace restored. A random 429 so costs its request's slot (the request
  is retried after its own wait), not the pace.
Epochs at a pace known to be under the limit teach the background share too. The epoch after a cut
starts a second later: requests sent sooner still meet the server's window of the old pace.
Clean epochs raise the pace: after a limit is found, it stays just under it for ten epochs, then
probes 1% at a time within 10% of it (back under it at the first 429 where none come at random), in steps growing from 2% to 10% beyond (the limit may have
risen; 25% with no limit met, or once 20% above one without 429s, when it is forgotten).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from .config import RateLimit

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

AUTO_START = 5.0  # requests/s an auto pace starts at ("cautiously": half the fixed default)
MIN_ANSWERS = 10  # answers an epoch needs before it is judged in the cautious start
STEADY_ANSWERS = 30  # ... and after it (a share of 429s needs that many answers to mean something)
MIN_EPOCH = 1.0  # seconds an epoch lasts at least
UNDER = 0.95  # after a congested epoch: this share of the rate the server accepted
LATENCY_JUMP = 3.0  # congested: median latency this many times the best epoch's (and 0.2 s more)
DEEP = 0.6  # 429s that stay down to this share of the pace that met them come whatever the pace
DEEP_SHARE = 0.10  # ... looked for when more than this share stays after a cut (fewer: taken as background)
MAX_BACKGROUND = 0.25  # more 429s than this are never taken for ones that come whatever the pace
EXCESS_ODDS = 0.001  # an epoch's 429s are the pace's when random ones would be that unlikely
MAX_STEP = 0.10  # the most a clean epoch raises the pace after the cautious start, with a limit met
MAX_STEP_UNKNOWN = 0.25  # ... and with none met (yet, or for a while)
HOLD = 10  # clean epochs spent just under a limit once found, before probing above it again
GRACE = 1.0  # after a cut, requests sent this long still meet the server's window of the old pace: ignored


def _tail(n: int, k: int, p: float) -> float:
    """P(at least k of n answers are 429) when each one is with probability p."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@dataclass
class _Chain:
    """After a cut: what came before it, and the answers since (to tell whether the cut helped)."""

    pace: float
    accepted: float
    starting: bool  # the cautious start was on
    trigger_n: int
    trigger_k: int
    test_n: int = 0
    test_k: int = 0
    tests: int = 0

    def dropped(self, background: float) -> bool:
        """The share of 429s since the cut is clearly lower than the one that caused it and no higher
        than the background's."""
        return _clearly_lower(self.test_n, self.test_k, self.trigger_n, self.trigger_k) and \
            self.test_k / self.test_n <= background + 0.02


def _clearly_lower(n2: int, k2: int, n1: int, k1: int) -> bool:
    """k2 of n2 is a clearly lower share than k1 of n1: a two-proportion z of 2.5."""
    pooled = (k1 + k2) / (n1 + n2)
    spread = math.sqrt(max(pooled * (1 - pooled), 1e-9) * (1 / n1 + 1 / n2))
    return (k1 / n1 - k2 / n2) / spread >= 2.5


@dataclass
class _Epoch:
    """What an epoch's answers say: counts, the rate the server accepted, latency, and whether 429s (or
    latency) exceeded what comes anyway (`trigger`: the counts that showed it, maybe over two epochs)."""

    n: int
    throttled: int
    share: float
    accepted: float
    latency: float
    slow: bool
    high: bool
    trigger: tuple[int, int]


class Pace:
    """Decides the pace from answers, epoch by epoch (see the module docstring). Pure state and
    arithmetic on an injected clock."""

    def __init__(self, limit: RateLimit, clock: Clock = time.monotonic) -> None:
        self.limit, self._clock = limit, clock
        self.auto = limit.auto
        self.ceiling = limit.rate
        self.rate = min(self.ceiling, AUTO_START) if self.auto else self.ceiling
        self.background = 0.0  # share of 429s that come whatever the pace
        self.slow_start = self.auto  # doubling until the first congestion
        self._step = 0.02
        self._hold = 0  # clean epochs left before probing above a limit just found
        self._sure = False  # the limit found was clear (probed above 1% at a time) or only likely
        self._doubt = False  # the cautious start's last epoch had 429s (one more such ends it)
        self._epoch_start = clock()
        self._latencies: list[float] = []  # of the epoch's answers (their count is the epoch's size)
        self._throttled = 0  # 429s among them (kept as they come: an epoch at a high pace holds thousands)
        self._first_sent: float | None = None
        self._last_sent = 0.0
        self._chain: _Chain | None = None  # after a cut
        self._previous: tuple[int, int] | None = None  # (answers, 429s) of the epoch before, if clean
        self._best_latency: float | None = None
        self.congestions = 0
        self.found: float | None = None  # the pace just under the limit, once one was met

    def observe(self, sent_at: float, throttled: bool, latency: float) -> bool:
        """One answer to a request started at `sent_at`. Returns True when the pace changed."""
        if sent_at < self._epoch_start:
            return False  # paced by an earlier decision: says nothing about this one
        latencies = self._latencies
        latencies.append(latency)
        self._throttled += throttled
        if self._first_sent is None or sent_at < self._first_sent:
            self._first_sent = sent_at
        if sent_at > self._last_sent:
            self._last_sent = sent_at
        if len(latencies) < (MIN_ANSWERS if self.slow_start else min(STEADY_ANSWERS, max(MIN_ANSWERS, self.rate))):
            return False
        now = self._clock()
        if now - self._epoch_start < MIN_EPOCH:  # a short epoch is judged only when 429s overwhelm it
            if self._throttled * 2 <= len(self._latencies):
                return False
        return self._decide(now)

    def _decide(self, now: float) -> bool:
        """Judges the epoch that just ended and sets the pace for the next one."""
        n = len(self._latencies)
        throttled = self._throttled
        # Each request holds one slot: n requests span n intervals, not the n - 1 between first and last.
        span = max(self._last_sent - (self._first_sent or self._last_sent), (n - 1) / self.rate) + 1 / self.rate
        latency = statistics.median(self._latencies)
        best = self._best_latency
        slow = best is not None and latency > LATENCY_JUMP * best and latency > best + 0.2
        epoch = _Epoch(n, throttled, throttled / n, (n - throttled) / span, latency, slow,
                       self._excess(n, throttled) or slow, (n, throttled))
        if self._chain is None and not epoch.high and self._previous is not None:  # small excess, two epochs running
            epoch.trigger = (n + self._previous[0], throttled + self._previous[1])
            epoch.high = self._excess(*epoch.trigger)
        self._previous = (n, throttled) if self._chain is None else None
        before = self.rate
        if self._chain is None:
            self._judge(epoch)
        else:
            self._judge_after_cut(epoch, self._chain)
        return self._new_epoch(now, before)

    def _judge(self, epoch: _Epoch) -> None:
        """An epoch with no cut under test: cut, step back from a probe, or grow."""
        found = self.found
        if not epoch.high and epoch.throttled and self._sure and found and self.rate > found * 1.001 \
                and self.background < 0.01:
            # A probe above a limit found met 429s where none come at random: back under it at once rather
            # than wait for enough of them to be sure (a few probes a minute would cost 2-3% of requests).
            self.rate, self._hold, self._step, self._previous = found, HOLD, 0.01, None
        elif epoch.high:  # cut: just under what the server accepted, and at least by a tenth
            self.congestions += 1
            self._chain = _Chain(self.rate, epoch.accepted, self.slow_start, *epoch.trigger)
            self.slow_start = False
            self._cut(epoch.accepted)
        else:
            self._clean(epoch.share, epoch.latency, epoch.slow)
            if self.slow_start and epoch.throttled >= 2:
                # 429s, if not clearly the pace's: the same pace again, and no more doubling if again
                self.slow_start, self._doubt = not self._doubt, not self._doubt
            else:
                self._doubt = False
                self.rate = min(self.ceiling, self.rate * (1 + self._growth()))

    def _judge_after_cut(self, epoch: _Epoch, chain: _Chain) -> None:
        """An epoch after a cut: the cut helped (a limit found), the limit is lower still, or the 429s come
        whatever the pace (background); or one more epoch is needed to tell."""
        n, throttled, accepted = epoch.n, epoch.throttled, epoch.accepted
        high = epoch.high and (self._excess(n, throttled) or epoch.slow)  # (not the two-epoch rule: no evidence here)
        if high and (epoch.slow or self.rate > 0.85 * chain.pace or accepted > 0.9 * chain.accepted
                     or epoch.share > MAX_BACKGROUND or _clearly_lower(n, throttled, chain.trigger_n, chain.trigger_k)):
            chain.test_n = chain.test_k = chain.tests = 0
            self._cut(accepted)  # still too fast (the limit fell further, or the first cut was shallow)
            return
        # (As many 429s as before the cut, and the server accepts less, as it fell with the pace: a sign
        # they come whatever the pace, counted with the other epochs since the cut rather than trusted
        # alone. Fewer but still too many, or more than any background: the limit is lower still.)
        chain.test_n, chain.test_k, chain.tests = chain.test_n + n, chain.test_k + throttled, chain.tests + 1
        since = chain.test_k / chain.test_n
        clear = chain.dropped(self.background)
        if clear or (chain.tests >= 3 and chain.test_k == 0 and self.background < 0.02):
            # The cut stopped the 429s: they were the pace's. (Or three epochs without a 429 where none come
            # at random after a small trigger: likely, not sure, so the pace does not linger under it.)
            self._chain = None
            self.found = self.rate
            self._step = 0.01
            self._hold = HOLD if clear else 0
            self._sure = clear
            log.debug("pace %.1f/s: the 429s stopped after the cut, the limit is just above", self.rate)
            self._clean(epoch.share, epoch.latency, epoch.slow)
        elif chain.tests < 3:
            return  # not clear yet: another epoch at this pace
        elif _clearly_lower(chain.test_n, chain.test_k, chain.trigger_n, chain.trigger_k):
            # Fewer 429s since the cut, but more than the background: the limit is lower still.
            chain.trigger_n, chain.trigger_k = chain.test_n, chain.test_k
            chain.test_n = chain.test_k = chain.tests = 0
            self._cut(accepted)
        elif self.rate > DEEP * chain.pace and since > DEEP_SHARE:
            # As many 429s as before the cut, and many: they come whatever the pace, or the limit fell
            # far below it. Slower still tells which (a pace limit stops them, random 429s stay).
            chain.test_n = chain.test_k = chain.tests = 0
            self.rate = max(self.limit.min_rate, self.rate * 0.8)
        else:
            self._background(since)  # 429s stayed whatever the pace: they come anyway

    def _background(self, share: float) -> None:
        assert self._chain is not None
        self.background = min(MAX_BACKGROUND, max(self.background, share))
        log.debug("429s came whatever the pace (%.1f%%): pace back to %.1f/s", 100 * share, self._chain.pace)
        self.rate, self.slow_start = self._chain.pace, self._chain.starting
        self._chain = None

    def _excess(self, n: int, throttled: int) -> bool:
        """More 429s than the background share explains: at least three, a share 2 points above it, and
        a count the background would reach by chance less than once in a thousand epochs (the exact
        binomial tail: at 40 answers a normal approximation is far too kind to 5 or 6 random 429s)."""
        b = self.background
        return throttled >= 3 and throttled / n > b + 0.02 and _tail(n, throttled, max(b, 0.005)) < EXCESS_ODDS

    def _cut(self, accepted: float) -> None:
        self._previous = None
        # At most quartered at once: right after the limit falls, the server's window is still full of the
        # old pace and accepts next to nothing for a moment, which says little of the new limit.
        self.rate = max(self.limit.min_rate, self.rate * 0.25, min(self.rate * 0.9, UNDER * accepted))
        self._step = 0.01

    def _clean(self, share: float, latency: float, slow: bool) -> None:
        """A clean epoch teaches the best latency and, at a pace known to be under any limit met, the
        background share of 429s (slowly; above that pace a few 429s may be the pace's own, and in the
        cautious start an epoch is too short to tell)."""
        if not self.slow_start and (self.found is None or self.rate <= self.found * 1.001):
            self.background = min(MAX_BACKGROUND, self.background + 0.2 * (share - self.background))
        if not slow and (self._best_latency is None or latency < self._best_latency):
            self._best_latency = latency

    def _growth(self) -> float:
        """How much a clean epoch raises the pace: doubling in the cautious start; near a limit met
        before, 1% at a time; otherwise steps growing from 2% to 10% (the limit may have risen)."""
        if self.slow_start:
            return 1.0
        if self._hold > 0:  # just settled under a limit: stay a while before probing above it again
            self._hold -= 1
            return 0.0
        if self.found and self.rate > 1.2 * self.found / UNDER:
            self.found, self._sure = None, False  # far above it without a 429 too many: the limit rose or went
        limit = self.found / UNDER if self.found and self._sure else None
        if limit is not None and 0.97 * limit <= self.rate <= 1.1 * limit:
            self._step = 0.01
            return 0.01
        # Far from any limit met, larger steps: from a cautious start that ended early (a few random 429s)
        # the pace reaches a --max-rate of 50 in a dozen epochs, not thirty.
        self._step = min(MAX_STEP if self.found else MAX_STEP_UNKNOWN, max(0.02, self._step * 2))
        return self._step

    def _new_epoch(self, now: float, before: float) -> bool:
        if self.rate != before:  # (-v) why the pace moved: the epoch that decided it
            n = len(self._latencies)
            log.debug("pace %.1f -> %.1f/s: %d of %d answers 429, background %.1f%%%s", before, self.rate,
                      self._throttled, n, 100 * self.background,
                      f", limit found: {self.found:.1f}/s" if self.found else "")
        self._epoch_start = now + (GRACE if self.rate < before else 0.0)
        self._latencies = []
        self._throttled = 0
        self._first_sent = None
        self._last_sent = now
        return self.rate != before


class RateLimiter:
    """`await acquire()` returns at the caller's slot. Slots are `interval` apart at the pace in force,
    the first one now (no burst at start); `observe` feeds every answer to the pace controller."""

    def __init__(self, limit: RateLimit, clock: Clock = time.monotonic, sleep: Sleep = anyio.sleep) -> None:
        self.limit = limit
        self._clock, self._sleep = clock, sleep
        self.pace = Pace(limit, clock)
        # The margin keeps a fixed --rate's promise against clock jitter; a found pace needs none (the
        # server's own answers set it).
        self._safety = 0.0 if limit.auto else limit.safety
        self._next = -float("inf")
        self._last_start = -float("inf")
        self._starts: deque[float] = deque()  # recent start times, for the sliding-window rule
        self._epoch = 0  # bumped on every change of pace
        self._queue: anyio.Lock | None = None

    @property
    def rate(self) -> float:
        """The pace in force now."""
        return self.pace.rate


    @property
    def _interval(self) -> float:
        return (1.0 + self._safety) / self.pace.rate

    async def acquire(self) -> float:
        """Waits for the caller's slot and returns the time it starts (pass it to `observe`).

        Waiters queue (FIFO) and only the first books a slot, so a change of pace applies to everyone
        behind it at once. Two rules: slots are `interval` apart (smooth pacing, counted from the slot
        booked, so a late wake-up does not slow the pace), and no more than the pace's worth of starts
        fall in any window of 1 s + safety, counted when they really happen. The second rule catches
        what the first cannot: when the event loop stalls, several slots fall due at once, and without
        it those late starts would crowd into the next second."""
        now = self._clock()
        if (self._queue is None or not self._queue.locked()) and self._next <= now and self._window_wait(now) <= 0:
            return self._book(now, now)  # nobody waiting and the slot is free: no lock, no trip through the loop
        if self._queue is None:
            # Made here: it belongs to the event loop that runs the import. fast_acquire: a free lock is
            # taken without a trip through the event loop (two per request otherwise).
            self._queue = anyio.Lock(fast_acquire=True)
        async with self._queue:
            while True:
                now = self._clock()
                booked = self._epoch
                slot = max(now, self._next)
                if slot > now:
                    await self._sleep(slot - now)  # cancelled here: nothing was booked, the slot stays free
                    if booked != self._epoch:
                        continue  # the pace changed while we slept: the slot moves with it
                    now = self._clock()
                if (wait := self._window_wait(now)) > 0:
                    await self._sleep(wait)
                    continue
                return self._book(slot, now)

    def _book(self, slot: float, now: float) -> float:
        """A start at `now` for the slot booked at `slot`; the next slot an interval after it (or after
        now, less one interval of catching up, when the start came late)."""
        self._next = max(slot, now - self._interval) + self._interval
        self._starts.append(now)
        self._last_start = now
        return now

    def _window_wait(self, now: float) -> float:
        """Seconds until one more start fits in the sliding window (0 when it fits now)."""
        window = 1.0 + self._safety
        starts = self._starts
        while starts and starts[0] <= now - window:
            starts.popleft()
        cap = max(1, math.floor(self.pace.rate + 1e-9))
        if len(starts) < cap:
            return 0.0
        return starts[len(starts) - cap] + window - now

    def observe(self, sent_at: float, throttled: bool, latency: float = 0.0, pause: float = 0.0) -> None:
        """An answer to a request started at `sent_at` (429 or not). When the pace slows down, booked
        slots are void and every waiter books again at the new pace; `pause` (the server's Retry-After on
        a 429 of a congested epoch) keeps every start back that long."""
        before = self.pace.rate
        if self.pace.observe(sent_at, throttled, latency):
            # Void the bookings either way: made at the old spacing, they would keep it for every waiter
            # already in line (a hundred workers booked 0.2 s apart hold 20 s of the old pace).
            now = self._clock()
            self._epoch += 1
            held = pause if throttled and self.pace.rate < before else 0.0
            self._next = max(now + held, self._last_start + self._interval)
