"""The emulator's aiohttp.web application: routes of IMS, the DPS and xcore Offer Library APIs and the
admin surface, behind the fault middleware.

Written from shared/offer-library-api.md and Adobe's documentation, not from the client, so client bugs
are not mirrored. One module per part: ims (tokens, gateway checks), faults, query (filters and paging),
dps, xcore, admin; state holds what they share.
"""

from __future__ import annotations

import random

from aiohttp import web

from . import admin, dps, xcore
from .faults import Handler, api_middleware
from .ims import ims_token
from .settings import EmulatorConfig
from .state import STATE, Refused, State, error
from .store import Store
from .validation import BodyError
from .xcore import container_id

__all__ = ["create_app", "container_id", "STATE", "State"]


@web.middleware
async def body_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Handlers refuse by raising: a 400 naming the field (BodyError), or any other Refused answer."""
    try:
        return await handler(request)
    except BodyError as exc:
        return error(400, "Bad Request", str(exc), error_code="OFFER-VALIDATION")
    except Refused as exc:
        return exc.response()


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    config = config or EmulatorConfig()
    app = web.Application(middlewares=[api_middleware, body_errors], client_max_size=1024 * 1024)
    store = Store(config.db, config.placements)
    app[STATE] = State(config=config, store=store, faults=config.faults, rng=random.Random(config.faults.seed))

    async def close_store(app: web.Application) -> None:
        store.close()

    app.on_cleanup.append(close_store)
    app.router.add_post("/ims/token/v3", ims_token)
    app.router.add_post("/data/core/dps/offers", dps.dps_create)
    app.router.add_get("/data/core/dps/offers", dps.dps_list)
    app.router.add_get("/data/core/dps/offers/{id}", dps.dps_get)
    app.router.add_patch("/data/core/dps/offers/{id}", dps.dps_patch)
    app.router.add_delete("/data/core/dps/offers/{id}", dps.dps_delete)
    app.router.add_post("/data/core/dps/placements", dps.placements_create)
    app.router.add_get("/data/core/dps/placements", dps.placements_list)
    app.router.add_get("/data/core/dps/placements/{id}", dps.placements_get)
    app.router.add_get("/data/core/xcore/", xcore.xcore_containers)
    app.router.add_post("/data/core/xcore/{container}/instances", xcore.xcore_create)
    app.router.add_get("/data/core/xcore/{container}/instances/{id}", xcore.xcore_get)
    app.router.add_patch("/data/core/xcore/{container}/instances/{id}", xcore.xcore_patch)
    app.router.add_put("/data/core/xcore/{container}/instances/{id}", xcore.xcore_put)
    app.router.add_delete("/data/core/xcore/{container}/instances/{id}", xcore.xcore_delete)
    app.router.add_get("/data/core/xcore/{container}/queries/core/search", xcore.xcore_search)
    app.router.add_get("/__emulator/stats", admin.admin_stats)
    app.router.add_post("/__emulator/faults", admin.admin_faults)
    app.router.add_post("/__emulator/reset", admin.admin_reset)
    app.router.add_get("/__emulator/offers", admin.admin_offers)
    app.router.add_post("/__emulator/offers", admin.admin_plant)
    app.router.add_get("/__emulator/placements", admin.admin_placements)
    return app
