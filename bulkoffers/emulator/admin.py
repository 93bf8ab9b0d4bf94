"""The admin surface under /__emulator/ for tests and rehearsals: stats, faults, reset, offers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .settings import Faults
from .state import STATE, State, error


def stats(state: State) -> dict[str, Any]:
    return {
        "sandboxes": state.store.sandbox_stats(),
        "requests": dict(state.requests),
        "statuses": {str(k): v for k, v in sorted(state.statuses.items())},
        "faults_injected": dict(state.injected),
        "creates_seen": state.creates_seen,
        "max_creates_per_second": state.max_creates_1s,
        # seconds from the first create request to the last: (creates_seen - 1) / span is the achieved rate
        "create_span_seconds": (state.last_create - state.first_create) if state.first_create is not None
        and state.last_create is not None else 0.0,
        "faults": state.faults.as_dict(),
    }


async def admin_stats(request: web.Request) -> web.Response:
    return web.json_response(stats(request.app[STATE]))


async def admin_faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        faults = Faults.from_dict(await request.json())
    except (ValueError, TypeError) as exc:
        return error(400, "Bad Request", str(exc))
    state.set_faults(faults)
    return web.json_response(faults.as_dict())


async def admin_reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.store.clear()
    state.requests.clear()
    state.statuses.clear()
    state.injected.clear()
    state.create_times.clear()
    state.api_times.clear()
    state.max_creates_1s = state.creates_seen = 0
    state.first_create = state.last_create = None
    return web.json_response({"reset": True})


async def admin_plant(request: web.Request) -> web.Response:
    """Stores an offer behind any client's back (tests of `verify`): {"sandbox", "flavor", "body",
    "client_id", "created"}; no checks, no faults. Answers what a lookup by id would show."""
    from .dps import dps_view
    from .xcore import xcore_view

    data = await request.json()
    state = request.app[STATE]
    flavor = data.get("flavor", "dps")
    body = data["body"]
    name = str(body.get("name") or body.get("xdm:name"))
    status = str(body.get("status") or body.get("xdm:status"))
    offer = state.store.insert(data.get("sandbox", "prod"), flavor, name, status, body,
                               data.get("client_id", state.config.client_id), created=data.get("created"))
    return web.json_response(dps_view(offer) if flavor == "dps" else xcore_view(offer))


async def admin_offers(request: web.Request) -> web.Response:
    sandbox = request.query.get("sandbox", "prod")
    return web.json_response([{"id": o.id, "@id": o.at_id, "name": o.name, "status": o.status, "flavor": o.flavor,
                               "body": o.body} for o in request.app[STATE].store.scan(sandbox)])


async def admin_placements(request: web.Request) -> web.Response:
    sandbox = request.query.get("sandbox", "prod")
    return web.json_response([{"id": p.id, "@id": p.at_id, "instanceId": p.instance_id, "name": p.name,
                               "channel": p.channel, "componentType": p.component_type}
                              for p in request.app[STATE].store.placements(sandbox)])
