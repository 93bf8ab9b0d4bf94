"""The DPS flavor: /data/core/dps/offers?offer-type=fallback (create, list, lookup, patch, delete)."""

from __future__ import annotations

import uuid
from typing import Any

import jsonpatch
from aiohttp import web

from .ims import authorised
from .query import guardrail, json_body, query_offers
from .state import STATE, error, find_offer
from .store import StoredOffer
from .validation import BodyError, validate_dps


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
    body = await json_body(request)
    name, status = validate_dps(body, state.config.max_content_bytes)
    if (blocked := guardrail(request, sandbox)) is not None:
        return blocked
    offer = state.store.insert(sandbox, "dps", name, status, body, client_id)
    return web.json_response({"etag": offer.etag, "createdBy": client_id, "lastModifiedBy": client_id,
                              "id": offer.id, "sandboxId": str(uuid.uuid5(uuid.NAMESPACE_URL, sandbox)),
                              "createdDate": offer.created, "lastModifiedDate": offer.modified,
                              "createdByClientId": client_id, "lastModifiedByClientId": client_id}, status=201)


@authorised
async def dps_list(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    _check_offer_type(request)
    page, links, total = query_offers(request, sandbox, dps_view, "name")
    return web.json_response({"results": page, "count": len(page), "total": total, "_links": links})


def _dps_offer(request: web.Request, sandbox: str) -> StoredOffer:
    _check_offer_type(request)
    return find_offer(request, sandbox)


@authorised
async def dps_get(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    return web.json_response(dps_view(_dps_offer(request, sandbox)))


@authorised
async def dps_patch(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    state = request.app[STATE]
    offer = _dps_offer(request, sandbox)
    if offer.flavor != "dps":
        return error(400, "Bad Request", "this offer was created through the xcore API; patch it there")
    ops = await json_body(request)
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
    request.app[STATE].store.delete(offer)
    return web.Response(status=200)
