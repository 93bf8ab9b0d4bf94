"""Rate limiting: evenly spaced request slots shared by every worker, with adaptive slow-down on 429.

The concurrency cap is a separate object (anyio.CapacityLimiter in engine.py). The clock and sleep are
injectable so tests step a fake clock instead of sleeping.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

from .config import RateLimit

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """`await acquire()` returns at the caller's slot. Slots are `interval` apart, the first one now (no
    burst at start). A 429 pauses every worker (`penalize`) and lowers the rate; successes bring it back."""

    RECOVER_AFTER = 20  # successes at the lowered rate before stepping back up
    SLOWDOWN = 0.75  # factor applied to the rate on each 429

    def __init__(self, limit: RateLimit, clock: Clock = time.monotonic, sleep: Sleep = anyio.sleep) -> None:
        self.limit = limit
        self._clock, self._sleep = clock, sleep
        self._rate = limit.rate
        self._next = -float("inf")
        self._streak = 0
        self._last_cut = -float("inf")
        self._last_start = -float("inf")
        self._starts: deque[float] = deque()  # recent start times, for the sliding-window rule
        self._epoch = 0

    @property
    def rate(self) -> float:
        """The rate in force now (lower than configured after a 429)."""
        return self._rate

    @property
    def _interval(self) -> float:
        return (1.0 + self.limit.safety) / self._rate

    async def acquire(self) -> float:
        """Waits for the caller's slot and returns the time it starts (pass it to `penalize` on a 429).

        Two rules: slots are booked `interval` apart (smooth pacing), and no more than `rate` starts
        fall in any window of 1 s + safety, counted when they really happen. The second rule catches
        what the first cannot: when the event loop stalls, several booked slots fall due at once, and
        without it those late starts would crowd into the next second."""
        while True:
            epoch = self._epoch
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
            if slot > now:
                try:
                    await self._sleep(slot - now)
                except BaseException:
                    # A cancelled waiter gives its slot back when nobody has booked behind it.
                    if self._epoch == epoch and self._next == slot + self._interval:
                        self._next = slot
                    raise
                now = self._clock()
            while (wait := self._window_wait(now)) > 0:
                await self._sleep(wait)
                now = self._clock()
            if self._epoch == epoch:  # a 429 while we waited voids the booking: book again
                self._starts.append(now)
                self._last_start = now
                return now

    def _window_wait(self, now: float) -> float:
        """Seconds until one more start fits in the sliding window (0 when it fits now)."""
        window = 1.0 + self.limit.safety
        starts = self._starts
        while starts and starts[0] <= now - window:
            starts.popleft()
        cap = max(1, math.floor(self._rate + 1e-9))
        if len(starts) < cap:
            return 0.0
        return starts[len(starts) - cap] + window - now

    def penalize(self, wait: float, sent_at: float | None = None) -> None:
        """A 429: nobody starts before `wait` seconds from now, and the pace drops. A request sent
        before the last slow-down was paced by the old rate: its 429 pauses but does not cut again,
        so a burst of 429s from one moment counts once."""
        now = self._clock()
        if sent_at is None or sent_at > self._last_cut:
            self._rate = max(self.limit.min_rate, self._rate * self.SLOWDOWN)
            self._last_cut = now
        self._epoch += 1  # every booked slot is void: waiters book again at the new pace
        self._next = max(now + wait, self._last_start + self._interval)
        self._streak = 0

    def reward(self) -> None:
        """A success: after a streak of them, step the rate back towards the configured one."""
        if self._rate >= self.limit.rate:
            return
        self._streak += 1
        if self._streak >= self.RECOVER_AFTER:
            self._streak = 0
            self._rate = min(self.limit.rate, self._rate / self.SLOWDOWN)
