"""The fault middleware: latency, resets, rate limits, server errors, commit-then-drop and slow answers,
each switched on by `Faults` and counted in the stats."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .state import STATE, State, error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_create(request: web.Request) -> bool:
    """A request that creates an offer (DPS, or an xcore instance of the fallback-offer schema)."""
    if request.method != "POST":
        return False
    path = request.path.rstrip("/")
    return path == "/data/core/dps/offers" or (path.endswith("/instances") and
                                               "fallback-offer" in request.headers.get("Content-Type", ""))


def _record_create(state: State, now: float) -> None:
    # Sliding window (now - 1 s, now]: the largest number of create requests that arrived in any 1 s.
    times = state.create_times
    times.append(now)
    while times and times[0] <= now - 1.0:
        times.popleft()
    state.creates_seen += 1
    state.first_create = state.first_create if state.first_create is not None else now
    state.last_create = now
    state.max_creates_1s = max(state.max_creates_1s, len(times))


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer (reset before processing, or commit-then-drop)."""
    if request.transport is not None:
        request.transport.abort()
    # The body is never sent: the transport is gone.
    return web.Response(status=599)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    if not request.path.startswith("/data/"):
        return await handler(request)
    now = time.monotonic()
    create = _is_create(request)
    state.requests["api"] += 1
    if create:
        state.requests["create"] += 1
        _record_create(state, now)
    faults, rng = state.faults, state.rng
    faulty = faults.scope == "all" or (create if faults.scope == "create" else request.method == "GET")
    if faulty and (faults.latency_ms or faults.jitter_ms):
        await asyncio.sleep((faults.latency_ms + rng.uniform(0, faults.jitter_ms)) / 1000)
    if faulty and faults.reset_rate and rng.random() < faults.reset_rate:
        state.injected["reset"] += 1
        return _drop(request)
    if faulty and faults.rate_limit is not None:
        times, now = state.api_times, time.monotonic()
        while times and times[0] <= now - 1.0:
            times.popleft()
        if len(times) >= faults.rate_limit:
            state.injected["429"] += 1
            state.statuses[429] += 1
            headers = {}
            if faults.retry_after:
                headers["Retry-After"] = str(max(1, math.ceil(times[0] + 1.0 - now)))
            body = {"type": "https://ns.adobe.com/aep/errors/429", "title": "Too Many Requests", "status": 429,
                    "detail": f"more than {faults.rate_limit:g} requests per second"}
            return web.json_response(body, status=429, headers=headers)
        times.append(now)
    if faulty and faults.throttle_rate and rng.random() < faults.throttle_rate:
        state.injected["429"] += 1
        state.injected["random_429"] += 1
        state.statuses[429] += 1
        return error(429, "Too Many Requests", "the gateway is busy (not your pace)")
    if faulty and faults.error_rate and rng.random() < faults.error_rate:
        status = rng.choice((500, 502, 503))
        state.injected[str(status)] += 1
        state.statuses[status] += 1
        return error(status, "Server Error", "injected fault")
    try:
        response = await handler(request)
    except ConnectionResetError:  # the client went away mid-request (killed importer): nothing to answer
        state.requests["client_gone"] += 1
        return _drop(request)
    edit = request.method in ("PATCH", "PUT")  # an offer's update (the only edits the API has)
    if (create or edit) and response.status in (200, 201) and faults.drop_rate and rng.random() < faults.drop_rate:
        state.injected["commit_then_drop"] += 1
        return _drop(request)
    if faulty and faults.slow_rate and rng.random() < faults.slow_rate:
        state.injected["slow"] += 1
        await asyncio.sleep(faults.slow_seconds)
    state.statuses[response.status] += 1
    return response
