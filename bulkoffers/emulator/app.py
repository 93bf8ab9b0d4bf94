"""The emulator's aiohttp.web application: IMS token endpoint, DPS and xcore Offer Library APIs,
faults, and an admin surface under /__emulator/ for tests and rehearsals.

Written from shared/offer-library-api.md, not from the client, so client bugs are not mirrored.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import secrets
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode

import jsonpatch
from aiohttp import web

from .settings import FALLBACK_SCHEMA, EmulatorConfig, Faults
from .store import Store, StoredOffer
from .validation import BodyError, validate_dps, validate_xcore

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

XCORE_ACCEPT = "application/vnd.adobe.platform.xcore.xdm.receipt+json"
XCORE_CONTENT_TYPE = "application/schema-instance+json"
_FILTER = re.compile(r"^(!?)([A-Za-z_@:.\-]+?)(==|!=|<=|>=|~|<|>)(.*)$", re.S)


def error(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    """An Adobe-style JSON error body."""
    body = {"type": f"https://ns.adobe.com/aep/errors/emulator-{status}", "title": title, "status": status,
            "detail": detail, "report": {"detail": detail}, **extra}
    return web.json_response(body, status=status)


@dataclass
class State:
    """Everything mutable the emulator keeps besides the offers."""

    config: EmulatorConfig
    store: Store
    faults: Faults
    rng: random.Random
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (client_id, expires_at)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    create_times: deque[float] = field(default_factory=deque)  # create arrivals in the last second
    max_creates_1s: int = 0
    creates_seen: int = 0
    first_create: float | None = None
    last_create: float | None = None
    api_times: deque[float] = field(default_factory=deque)  # accepted API requests in the last second

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.api_times.clear()


STATE = web.AppKey("state", State)


def _is_create(request: web.Request) -> bool:
    path = request.path.rstrip("/")
    return request.method == "POST" and (path == "/data/core/dps/offers" or path.endswith("/instances"))


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
    faulty = faults.scope == "all" or create
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
    if create and response.status in (200, 201) and faults.drop_rate and rng.random() < faults.drop_rate:
        state.injected["commit_then_drop"] += 1
        return _drop(request)
    if faulty and faults.slow_rate and rng.random() < faults.slow_rate:
        state.injected["slow"] += 1
        await asyncio.sleep(faults.slow_seconds)
    state.statuses[response.status] += 1
    return response


# ---- auth ------------------------------------------------------------------------------------------


async def ims_token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    cfg = state.config
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return web.json_response({"error": "unsupported_grant_type",
                                  "error_description": "grant_type must be client_credentials"}, status=400)
    if form.get("client_id") != cfg.client_id:
        return web.json_response({"error": "invalid_client", "error_description": "invalid client_id parameter"},
                                 status=400)
    if form.get("client_secret") != cfg.client_secret:
        return web.json_response({"error": "invalid_client", "error_description": "invalid client_secret parameter"},
                                 status=401)
    token = "emu-" + secrets.token_urlsafe(24)
    state.tokens[token] = (cfg.client_id, time.monotonic() + cfg.token_ttl)
    state.requests["token"] += 1
    return web.json_response({"access_token": token, "token_type": "bearer", "expires_in": cfg.token_ttl})


def _check_auth(request: web.Request) -> tuple[str, str] | web.Response:
    """(client_id, sandbox) of an authorised request, or the error the gateway would answer."""
    state = request.app[STATE]
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return error(401, "Unauthorized", "Oauth token is not valid", error_code="401013")
    entry = state.tokens.get(auth[7:].strip())
    if entry is None:
        return error(401, "Unauthorized", "Oauth token is not valid", error_code="401013")
    client_id, expires = entry
    if time.monotonic() >= expires:
        return error(401, "Unauthorized", "Oauth token has expired", error_code="401013")
    api_key = request.headers.get("x-api-key")
    if not api_key:
        return error(403, "Forbidden", "Api Key is required", error_code="403000")
    if api_key != client_id:
        return error(403, "Forbidden", "Api Key is invalid", error_code="403003")
    org = request.headers.get("x-gw-ims-org-id")
    if not org:
        return error(400, "Bad Request", "x-gw-ims-org-id header is required", error_code="400001")
    if org != state.config.org_id:
        return error(403, "Forbidden", f"Client is not allowed for IMS org {org}", error_code="403027")
    sandbox = request.headers.get("x-sandbox-name")
    if not sandbox:
        return error(400, "Bad Request", "x-sandbox-name header is required", error_code="400002")
    return client_id, sandbox


def authorised(fn: Callable[[web.Request, str, str], Awaitable[web.StreamResponse]]) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        checked = _check_auth(request)
        if isinstance(checked, web.Response):
            return checked
        return await fn(request, *checked)

    return wrapper


# ---- shared helpers ----------------------------------------------------------------------------------


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.text())
    except ValueError:
        raise BodyError("body is not valid JSON") from None


def parse_filters(values: list[str]) -> list[tuple[bool, str, str, str]]:
    """`property` expressions `[!]field op value`; repeated params and comma-joined lists are ANDed.
    A comma that does not start a new expression stays part of the value."""
    out: list[tuple[bool, str, str, str]] = []
    for raw in values:
        parts: list[str] = []
        for piece in raw.split(","):
            if parts and not _FILTER.match(piece):
                parts[-1] += "," + piece
            else:
                parts.append(piece)
        for part in parts:
            m = _FILTER.match(part)
            if not m:
                raise BodyError(f"property '{part}' is not of the form [!]field<op>value")
            neg, fname, op, value = m.groups()
            out.append((neg == "!", fname, op, value))
    return out


def _lookup(doc: dict[str, Any], path: str) -> Any:
    cur: Any = doc
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def _matches(doc: dict[str, Any], filters: list[tuple[bool, str, str, str]]) -> bool:
    for neg, fname, op, value in filters:
        actual = _lookup(doc, fname)
        text = "" if actual is None else str(actual)
        if op == "==":
            ok = actual is not None and text == value
        elif op == "!=":
            ok = text != value
        elif op == "~":
            try:
                ok = re.search(value, text) is not None
            except re.error:
                raise BodyError(f"property {fname}~{value}: not a valid regular expression") from None
        else:
            ok = actual is not None and {"<": text < value, ">": text > value, "<=": text <= value,
                                         ">=": text >= value}[op]
        if ok == neg:
            return False
    return True


def _page(request: web.Request, docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    cfg = request.app[STATE].config
    try:
        limit = int(request.query.get("limit", cfg.page_limit))
        start = int(request.query.get("start", "0") or 0)
    except ValueError:
        raise BodyError("limit and start must be integers") from None
    if not 1 <= limit <= cfg.max_page_limit:
        raise BodyError(f"limit must be between 1 and {cfg.max_page_limit}")
    page = docs[start:start + limit]
    links: dict[str, Any] = {"self": {"href": str(request.rel_url)}}
    if start + limit < len(docs):
        query = [(k, v) for k, v in request.query.items() if k != "start"] + [("start", str(start + limit))]
        links["next"] = {"href": f"{request.path}?{urlencode(query)}"}
    return page, links


def _sort(docs: list[dict[str, Any]], order_by: str | None) -> list[dict[str, Any]]:
    if not order_by:
        return docs
    for key in reversed([k for k in order_by.split(",") if k]):
        desc = key.startswith("-")
        fname = key.lstrip("-+")
        docs.sort(key=lambda d: str(_lookup(d, fname) or ""), reverse=desc)
    return docs


def _query(request: web.Request, sandbox: str, view: Callable[[StoredOffer], dict[str, Any]],
           name_field: str) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """List/search: `property` filters, `orderBy`, then one page. An exact name filter goes to the
    index; the rest are checked on the documents as the flavor shows them."""
    filters = parse_filters(request.query.getall("property", []))
    exact = next((v for neg, f, op, v in filters if f == name_field and op == "==" and not neg), None)
    docs = [d for d in map(view, request.app[STATE].store.scan(sandbox, exact)) if _matches(d, filters)]
    page, links = _page(request, _sort(docs, request.query.get("orderBy")))
    return page, links, len(docs)


def _guardrail(request: web.Request, sandbox: str) -> web.Response | None:
    cfg = request.app[STATE].config
    if request.app[STATE].store.count(sandbox) >= cfg.max_offers:
        return error(400, "Guardrail", f"sandbox {sandbox} already holds {cfg.max_offers} offers, the maximum",
                     error_code="OFFER-GUARDRAIL")
    return None


# ---- DPS ---------------------------------------------------------------------------------------------


def dps_view(o: StoredOffer) -> dict[str, Any]:
    doc: dict[str, Any] = dict(o.body) if o.flavor == "dps" else {"name": o.name, "status": o.status,
                                                                  "xcore": o.body}
    doc.update(id=o.id, etag=o.etag, createdDate=o.created, lastModifiedDate=o.modified, createdBy=o.client_id,
               lastModifiedBy=o.client_id, createdByClientId=o.client_id, lastModifiedByClientId=o.client_id)
    return doc


def _check_offer_type(request: web.Request) -> None:
    if request.query.get("offer-type") != "fallback":
        raise BodyError("query parameter offer-type=fallback is required")


@authorised
async def dps_create(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    state = request.app[STATE]
    _check_offer_type(request)
    if request.content_type != "application/json":
        return error(415, "Unsupported Media Type", "Content-Type must be application/json")
    body = await _json_body(request)
    name, status = validate_dps(body, state.config.max_content_bytes)
    if (blocked := _guardrail(request, sandbox)) is not None:
        return blocked
    offer = state.store.insert(sandbox, "dps", name, status, body, client_id)
    return web.json_response({"etag": offer.etag, "createdBy": client_id, "lastModifiedBy": client_id,
                              "id": offer.id, "sandboxId": str(uuid.uuid5(uuid.NAMESPACE_URL, sandbox)),
                              "createdDate": offer.created, "lastModifiedDate": offer.modified,
                              "createdByClientId": client_id, "lastModifiedByClientId": client_id}, status=201)


@authorised
async def dps_list(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    _check_offer_type(request)
    page, links, total = _query(request, sandbox, dps_view, "name")
    return web.json_response({"results": page, "count": len(page), "total": total, "_links": links})


def _dps_offer(request: web.Request, sandbox: str) -> StoredOffer | web.Response:
    _check_offer_type(request)
    offer = request.app[STATE].store.get(sandbox, request.match_info["id"])
    if offer is None:
        return error(404, "Not Found", f"offer {request.match_info['id']} not found in sandbox {sandbox}")
    return offer


@authorised
async def dps_get(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    offer = _dps_offer(request, sandbox)
    return offer if isinstance(offer, web.Response) else web.json_response(dps_view(offer))


@authorised
async def dps_patch(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    state = request.app[STATE]
    offer = _dps_offer(request, sandbox)
    if isinstance(offer, web.Response):
        return offer
    if offer.flavor != "dps":
        return error(400, "Bad Request", "this offer was created through the xcore API; patch it there")
    ops = await _json_body(request)
    if not isinstance(ops, list):
        raise BodyError("a JSON Patch must be an array of operations")
    try:
        body = jsonpatch.JsonPatch(ops).apply(offer.body)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
        raise BodyError(f"JSON Patch cannot be applied: {exc}") from None
    name, status = validate_dps(body, state.config.max_content_bytes)
    return web.json_response(dps_view(state.store.update(offer, body, name, status)))


@authorised
async def dps_delete(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    offer = _dps_offer(request, sandbox)
    if isinstance(offer, web.Response):
        return offer
    request.app[STATE].store.delete(offer)
    return web.Response(status=200)


# ---- xcore -------------------------------------------------------------------------------------------


def container_id(sandbox: str) -> str:
    """One decisioning container per sandbox, stable across restarts."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bulkoffers-emulator/{sandbox}"))


def _container(request: web.Request, sandbox: str) -> web.Response | None:
    if request.match_info["container"] != container_id(sandbox):
        return error(404, "Not Found", f"container {request.match_info['container']} not found in sandbox {sandbox}")
    return None


def xcore_receipt(o: StoredOffer) -> dict[str, Any]:
    return {"instanceId": o.id, "@id": o.at_id, "repo:etag": o.etag, "repo:createdDate": o.created,
            "repo:lastModifiedDate": o.modified, "repo:createdBy": o.client_id, "repo:lastModifiedBy": o.client_id,
            "repo:createdByClientId": o.client_id, "repo:lastModifiedByClientId": o.client_id}


def xcore_view(o: StoredOffer) -> dict[str, Any]:
    instance = dict(o.body) if o.flavor == "xcore" else {"xdm:name": o.name, "xdm:status": o.status}
    instance["@id"] = o.at_id
    return {**xcore_receipt(o), "schemas": [FALLBACK_SCHEMA], "_instance": instance}


@authorised
async def xcore_containers(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    cid = container_id(sandbox)
    item = {"instanceId": cid, "schemas": ["https://ns.adobe.com/experience/xcore/container;version=0.1"],
            "productContexts": ["acp"], "repo:sandboxName": sandbox,
            "_instance": {"containerType": "decisioning", "repo:name": sandbox, "dc:title": sandbox}}
    return web.json_response({"_embedded": {"https://ns.adobe.com/experience/xcore/container": [item]},
                              "_links": {"self": {"href": str(request.rel_url)}}})


@authorised
async def xcore_create(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    state = request.app[STATE]
    if (missing := _container(request, sandbox)) is not None:
        return missing
    ctype = request.headers.get("Content-Type", "")
    if not (ctype.split(";")[0].strip() == XCORE_CONTENT_TYPE and f'schema="{FALLBACK_SCHEMA}"' in ctype):
        return error(415, "Unsupported Media Type",
                     f'Content-Type must be {XCORE_CONTENT_TYPE}; version=1; schema="{FALLBACK_SCHEMA}"')
    if XCORE_ACCEPT not in request.headers.get("Accept", ""):
        return error(406, "Not Acceptable", f"Accept must be {XCORE_ACCEPT}; version=1")
    body = await _json_body(request)
    name, status = validate_xcore(body, state.config.max_content_bytes)
    if (blocked := _guardrail(request, sandbox)) is not None:
        return blocked
    offer = state.store.insert(sandbox, "xcore", name, status, body, client_id)
    return web.json_response(xcore_receipt(offer), status=201,
                             content_type="application/vnd.adobe.platform.xcore.xdm.receipt+json")


def _xcore_instance(request: web.Request, sandbox: str) -> StoredOffer | web.Response:
    if (missing := _container(request, sandbox)) is not None:
        return missing
    offer = request.app[STATE].store.get(sandbox, request.match_info["id"])
    if offer is None:
        return error(404, "Not Found", f"instance {request.match_info['id']} not found")
    return offer


@authorised
async def xcore_get(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    offer = _xcore_instance(request, sandbox)
    return offer if isinstance(offer, web.Response) else web.json_response(xcore_view(offer))


@authorised
async def xcore_delete(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    offer = _xcore_instance(request, sandbox)
    if isinstance(offer, web.Response):
        return offer
    request.app[STATE].store.delete(offer)
    return web.Response(status=202)


@authorised
async def xcore_search(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    if (missing := _container(request, sandbox)) is not None:
        return missing
    if request.query.get("schema") != FALLBACK_SCHEMA:
        raise BodyError(f"query parameter schema={FALLBACK_SCHEMA} is required")
    page, links, total = _query(request, sandbox, xcore_view, "_instance.xdm:name")
    return web.json_response({"containerId": container_id(sandbox), "_embedded": {"results": page},
                              "count": len(page), "total": total, "_links": links})


# ---- admin -------------------------------------------------------------------------------------------


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


async def admin_offers(request: web.Request) -> web.Response:
    sandbox = request.query.get("sandbox", "prod")
    return web.json_response([{"id": o.id, "@id": o.at_id, "name": o.name, "status": o.status, "flavor": o.flavor,
                               "body": o.body} for o in request.app[STATE].store.scan(sandbox)])


@web.middleware
async def body_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BodyError as exc:
        return error(400, "Bad Request", str(exc), error_code="OFFER-VALIDATION")


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    config = config or EmulatorConfig()
    app = web.Application(middlewares=[api_middleware, body_errors], client_max_size=1024 * 1024)
    store = Store(config.db)
    app[STATE] = State(config=config, store=store, faults=config.faults, rng=random.Random(config.faults.seed))

    async def close_store(app: web.Application) -> None:
        store.close()

    app.on_cleanup.append(close_store)
    app.router.add_post("/ims/token/v3", ims_token)
    app.router.add_post("/data/core/dps/offers", dps_create)
    app.router.add_get("/data/core/dps/offers", dps_list)
    app.router.add_get("/data/core/dps/offers/{id}", dps_get)
    app.router.add_patch("/data/core/dps/offers/{id}", dps_patch)
    app.router.add_delete("/data/core/dps/offers/{id}", dps_delete)
    app.router.add_get("/data/core/xcore/", xcore_containers)
    app.router.add_post("/data/core/xcore/{container}/instances", xcore_create)
    app.router.add_get("/data/core/xcore/{container}/instances/{id}", xcore_get)
    app.router.add_delete("/data/core/xcore/{container}/instances/{id}", xcore_delete)
    app.router.add_get("/data/core/xcore/{container}/queries/core/search", xcore_search)
    app.router.add_get("/__emulator/stats", admin_stats)
    app.router.add_post("/__emulator/faults", admin_faults)
    app.router.add_post("/__emulator/reset", admin_reset)
    app.router.add_get("/__emulator/offers", admin_offers)
    return app
