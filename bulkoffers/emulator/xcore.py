"""The legacy xcore flavor: /data/core/xcore/{container} (container lookup, create, search, lookup, delete)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from .ims import authorised
from .query import guardrail, json_body, query_offers
from .settings import FALLBACK_SCHEMA
from .state import STATE, Refused, error, find_offer
from .store import StoredOffer
from .validation import BodyError, validate_xcore

XCORE_ACCEPT = "application/vnd.adobe.platform.xcore.xdm.receipt+json"
XCORE_CONTENT_TYPE = "application/schema-instance+json"


def container_id(sandbox: str) -> str:
    """One decisioning container per sandbox, stable across restarts."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bulkoffers-emulator/{sandbox}"))


def _container(request: web.Request, sandbox: str) -> None:
    if request.match_info["container"] != container_id(sandbox):
        raise Refused(404, "Not Found", f"container {request.match_info['container']} not found in sandbox {sandbox}")


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
    _container(request, sandbox)
    ctype = request.headers.get("Content-Type", "")
    if not (ctype.split(";")[0].strip() == XCORE_CONTENT_TYPE and f'schema="{FALLBACK_SCHEMA}"' in ctype):
        return error(415, "Unsupported Media Type",
                     f'Content-Type must be {XCORE_CONTENT_TYPE}; version=1; schema="{FALLBACK_SCHEMA}"')
    if XCORE_ACCEPT not in request.headers.get("Accept", ""):
        return error(406, "Not Acceptable", f"Accept must be {XCORE_ACCEPT}; version=1")
    body = await json_body(request)
    name, status = validate_xcore(body, state.config.max_content_bytes)
    if (blocked := guardrail(request, sandbox)) is not None:
        return blocked
    offer = state.store.insert(sandbox, "xcore", name, status, body, client_id)
    return web.json_response(xcore_receipt(offer), status=201,
                             content_type="application/vnd.adobe.platform.xcore.xdm.receipt+json")


def _xcore_instance(request: web.Request, sandbox: str) -> StoredOffer:
    _container(request, sandbox)
    return find_offer(request, sandbox, "instance")


@authorised
async def xcore_get(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    return web.json_response(xcore_view(_xcore_instance(request, sandbox)))


@authorised
async def xcore_delete(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    offer = _xcore_instance(request, sandbox)
    request.app[STATE].store.delete(offer)
    return web.Response(status=202)


@authorised
async def xcore_search(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    _container(request, sandbox)
    if request.query.get("schema") != FALLBACK_SCHEMA:
        raise BodyError(f"query parameter schema={FALLBACK_SCHEMA} is required")
    page, links, total = query_offers(request, sandbox, xcore_view, "_instance.xdm:name")
    return web.json_response({"containerId": container_id(sandbox), "_embedded": {"results": page},
                              "count": len(page), "total": total, "_links": links})
