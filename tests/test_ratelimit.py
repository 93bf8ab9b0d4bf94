"""The rate limiter on a fake clock: no sleeping, exact figures."""

from __future__ import annotations

import time

import anyio
import pytest

from bulkoffers.config import RateLimit
from bulkoffers.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def starts(limiter: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    async def go() -> list[float]:
        out = []
        for _ in range(n):
            await limiter.acquire()
            out.append(clock.now)
        return out

    return anyio.run(go)


def test_evenly_spaced_without_burst_at_start() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rate=10, safety=0.0), clock, clock.sleep)
    times = starts(limiter, clock, 5)
    assert times == pytest.approx([100.0, 100.1, 100.2, 100.3, 100.4])


def test_never_more_than_rate_in_any_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rate=20), clock, clock.sleep)
    times = starts(limiter, clock, 200)
    worst = max(sum(1 for t in times if s - 1.0 < t <= s) for s in times)
    assert worst <= 20
    assert 200 / (times[-1] - times[0] + 1 / 20) >= 19.5  # and not much slower either


def test_429_pauses_everyone_and_slows_down_then_recovers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rate=10, safety=0.0), clock, clock.sleep)
    starts(limiter, clock, 1)
    limiter.penalize(2.0)
    assert limiter.rate == pytest.approx(7.5)
    nxt = starts(limiter, clock, 2)
    assert nxt[0] == pytest.approx(102.0) and nxt[1] - nxt[0] == pytest.approx(1 / 7.5)
    for _ in range(RateLimiter.RECOVER_AFTER):
        limiter.reward()
    assert limiter.rate == pytest.approx(10.0)
    limiter.reward()
    assert limiter.rate == 10.0


def test_a_burst_of_429s_from_one_moment_cuts_the_rate_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rate=10, safety=0.0), clock, clock.sleep)
    sent = starts(limiter, clock, 4)  # four requests in flight at the old pace
    for s in sent:
        limiter.penalize(0.5, sent_at=s)
    assert limiter.rate == pytest.approx(7.5)
    [later] = starts(limiter, clock, 1)  # sent after the cut: its 429 cuts again
    limiter.penalize(0.5, sent_at=later)
    assert limiter.rate == pytest.approx(7.5 * 0.75)


def test_a_stalled_event_loop_does_not_crowd_the_next_second() -> None:
    """Real clock: the loop blocks for 0.5 s while slots fall due; their late starts must not push any
    1-second window over the rate."""
    times: list[float] = []

    async def go() -> None:
        limiter = RateLimiter(RateLimit(rate=5, safety=0.02))

        async def one() -> None:
            times.append(await limiter.acquire())

        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(one)
            await anyio.sleep(0.01)
            time.sleep(0.5)  # the stall: blocks the whole event loop

    anyio.run(go)
    times.sort()
    worst = max(sum(1 for t in times if s <= t < s + 1.0) for s in times)
    assert len(times) == 12 and worst <= 5, [round(t - times[0], 3) for t in times]


def test_min_rate_floor() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rate=1, min_rate=0.5), clock, clock.sleep)
    for _ in range(10):
        limiter.penalize(0)
    assert limiter.rate == 0.5


def test_cancelled_waiter_gives_its_slot_back() -> None:
    async def go() -> float:
        limiter = RateLimiter(RateLimit(rate=1, safety=0.0))  # real clock: the waiter really waits
        await limiter.acquire()
        with anyio.move_on_after(0.05):
            await limiter.acquire()  # would wait ~1 s; cancelled
        before = anyio.current_time()
        await limiter.acquire()  # takes the freed slot, not the one after it
        return anyio.current_time() - before

    waited = anyio.run(go)
    assert waited < 1.0
