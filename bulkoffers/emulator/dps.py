"""The DPS flavor under /data/core/dps: fallback offers (`/offers?offer-type=fallback`: create, list,
lookup, patch, delete) and placements (`/placements`: create, list, lookup). Shapes follow Adobe's
examples: list items and lookups carry `created`, `modified`, `etag`, `schemas`, `createdBy`, `id`
beside the offer's fields; creates and patches answer a receipt."""

from __future__ import annotations

import uuid
from typing import Any

import jsonpatch
from aiohttp import web

from .ims import authorised
from .query import exact_name, guardrail, json_body, query_docs
from .settings import COMPONENT_TYPES
from .state import STATE, Refused, State, find_offer
from .store import Placement, StoredOffer
from .validation import URI, BodyError

ROOT = "/data/core/dps"
OFFER_SCHEMA = "https://ns.adobe.com/experience/offer-management/fallback-offer;version=0.8"
PLACEMENT_SCHEMA = "https://ns.adobe.com/experience/offer-management/offer-placement;version=0.5"
_LINK = {"type": "application/json"}


def dps_view(o: StoredOffer) -> dict[str, Any]:
    return {"created": o.created, "modified": o.modified, "etag": o.etag, "schemas": [OFFER_SCHEMA],
            "createdBy": o.client_id, "lastModifiedBy": o.client_id, "id": o.id, **o.body}


def receipt(etag: int, item_id: str, created: str, modified: str, client_id: str, sandbox: str) -> dict[str, Any]:
    return {"etag": etag, "createdBy": client_id, "lastModifiedBy": client_id, "id": item_id,
            "sandboxId": str(uuid.uuid5(uuid.NAMESPACE_URL, sandbox)), "createdDate": created,
            "lastModifiedDate": modified, "createdByClientId": client_id, "lastModifiedByClientId": client_id}


def _check_offer_type(request: web.Request) -> None:
    if request.query.get("offer-type") != "fallback":
        raise BodyError("query parameter offer-type=fallback is required")


def _json_request(request: web.Request) -> None:
    if request.content_type != "application/json":
        raise Refused(415, "Unsupported Media Type", "Content-Type must be application/json")


@authorised
async def dps_create(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    state = request.app[STATE]
    _check_offer_type(request)
    _json_request(request)
    body = await json_body(request)
    name, status = state.valid_offer(body, sandbox, "dps")
    guardrail(request, sandbox)
    offer = state.store.insert(sandbox, "dps", name, status, body, client_id, state.faults.index_lag)
    return web.json_response(receipt(offer.etag, offer.id, offer.created, offer.modified, client_id, sandbox),
                             status=201)


@authorised
async def dps_list(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    _check_offer_type(request)
    store = request.app[STATE].store
    docs = [dps_view(o) for o in store.scan(sandbox, "dps", exact_name(request, "name"), visible_only=True)]
    found, links, total = query_docs(request, docs, ROOT, _LINK)
    return web.json_response({"results": found, "count": len(found), "total": total, "_links": links})


def _dps_offer(request: web.Request, sandbox: str) -> StoredOffer:
    _check_offer_type(request)
    return find_offer(request, sandbox, "dps")


@authorised
async def dps_get(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    return web.json_response(dps_view(_dps_offer(request, sandbox)))


@authorised
async def dps_patch(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    """A JSON Patch of the offer's fields; the answer is a receipt with the etag incremented. (Whether
    DPS honours If-Match is not documented: it is not checked here.)"""
    state = request.app[STATE]
    offer = _dps_offer(request, sandbox)
    _json_request(request)
    ops = await json_body(request)
    if not isinstance(ops, list):
        raise BodyError("a JSON Patch must be an array of operations")
    try:
        body = jsonpatch.JsonPatch(ops).apply(offer.body)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
        raise BodyError(f"JSON Patch cannot be applied: {exc}") from None
    name, status = state.valid_offer(body, sandbox, "dps")
    changed = state.store.update(offer, body, name, status, client_id)
    return web.json_response(receipt(changed.etag, changed.id, changed.created, changed.modified, client_id, sandbox))


@authorised
async def dps_delete(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    request.app[STATE].store.delete(_dps_offer(request, sandbox))
    return web.Response(status=200)


# ---- placements ------------------------------------------------------------------------------------


def placement_view(p: Placement) -> dict[str, Any]:
    return {"created": p.created, "modified": p.created, "etag": p.etag, "schemas": [PLACEMENT_SCHEMA],
            "id": p.id, "name": p.name, "description": p.description, "componentType": p.component_type,
            "channel": p.channel, "itemCount": 1, "allowDuplicatePlacements": False}


@authorised
async def placements_list(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    docs = [placement_view(p) for p in request.app[STATE].store.placements(sandbox)]
    found, links, total = query_docs(request, docs, ROOT, _LINK)
    return web.json_response({"results": found, "count": len(found), "total": total, "_links": links})


@authorised
async def placements_get(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    found = request.app[STATE].store.placement(sandbox, request.match_info["id"])
    if found is None or found.id != request.match_info["id"]:
        raise Refused(404, "Not Found", f"placement {request.match_info['id']} not found in sandbox {sandbox}")
    return web.json_response(placement_view(found))


def placement_spec(name: Any, channel: Any, kind: Any, description: Any, where: str = "") -> dict[str, str]:
    """A new placement's fields, checked as the service does (name, a channel URI, a component type)."""
    if not isinstance(name, str) or not name.strip():
        raise BodyError(f"{where}name is required")
    if not isinstance(channel, str) or not URI.fullmatch(channel):
        raise BodyError(f"{where}channel must be a channel URI")
    if kind not in COMPONENT_TYPES:
        raise BodyError(f"{where}componentType must be one of {', '.join(COMPONENT_TYPES)}")
    return {"name": name, "channel": channel, "component_type": kind, "description": str(description or "")}


def add_placement(state: State, sandbox: str, spec: dict[str, str]) -> Placement:
    if len(state.store.placements(sandbox)) >= state.config.max_placements:
        raise Refused(400, "Guardrail", f"sandbox {sandbox} already holds {state.config.max_placements} placements")
    return state.store.add_placement(sandbox, spec)


@authorised
async def placements_create(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    _json_request(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BodyError("body must be a JSON object")
    state = request.app[STATE]
    made = add_placement(state, sandbox, placement_spec(body.get("name"), body.get("channel"),
                                                        body.get("componentType"), body.get("description")))
    return web.json_response(receipt(made.etag, made.id, made.created, made.created, client_id, sandbox), status=201)
