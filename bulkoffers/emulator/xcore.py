"""The legacy xcore flavor under /data/core/xcore: the decisioning container of each sandbox, and in it
fallback offers and placements (create, search, lookup, patch and put with If-Match, delete).

Headers are strict, as documented: a create needs the schema-instance Content-Type naming the schema
and the receipt Accept; a PATCH the patch Content-Type, a PUT the hal Content-Type; edits carry
`If-Match: {repo:etag}` (a stale one gets 409); deletes ask for the receipt. Search answers carry
`total` and `count` inside `_embedded`, and next links relative to /data/core/xcore.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import jsonpatch
from aiohttp import web

from .dps import add_placement, placement_spec
from .ims import authorised
from .query import exact_name, guardrail, json_body, query_docs
from .settings import FALLBACK_SCHEMA, PLACEMENT_SCHEMA
from .state import STATE, Refused, State
from .store import Placement, StoredOffer, now_iso
from .validation import BodyError

ROOT = "/data/core/xcore"
RECEIPT = "application/vnd.adobe.platform.xcore.xdm.receipt+json"
SCHEMA_INSTANCE = "application/schema-instance+json"
PATCH_TYPE = "application/vnd.adobe.platform.xcore.patch.hal+json"
HAL_TYPE = "application/vnd.adobe.platform.xcore.hal+json"
CONTAINER_SCHEMA = "https://ns.adobe.com/experience/xcore/container;version=0.1"
COMPONENT_PREFIX = "https://ns.adobe.com/experience/offer-management/content-component-"
_RESULTS = {"@type": "https://ns.adobe.com/experience/xcore/hal/results"}
# Properties the XDM schemas mark read-only or not user-editable: an edit that changes them gets 422.
_NOT_EDITABLE = ("@id", "dc:format", "dc:language", "repo:id", "repo:resolveURL")


def container_id(sandbox: str) -> str:
    """One decisioning container per sandbox, stable across restarts."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bulkoffers-emulator/{sandbox}"))


def _container(request: web.Request, sandbox: str) -> str:
    cid = container_id(sandbox)
    if request.match_info["container"] != cid:
        raise Refused(404, "Not Found", f"container {request.match_info['container']} not found in sandbox {sandbox}")
    return cid


def _repo(etag: int, created: str, modified: str, client_id: str) -> dict[str, Any]:
    return {"repo:etag": etag, "repo:createdDate": created, "repo:lastModifiedDate": modified,
            "repo:createdBy": client_id, "repo:lastModifiedBy": client_id, "repo:createdByClientId": client_id,
            "repo:lastModifiedByClientId": client_id}


def xcore_receipt(o: StoredOffer) -> dict[str, Any]:
    return {"instanceId": o.id, "@id": o.at_id, **_repo(o.etag, o.created, o.modified, o.client_id)}


def xcore_view(o: StoredOffer) -> dict[str, Any]:
    """A search result or lookup: the repository fields, and the offer under `_instance` with its @id;
    the service lists an empty `xdm:tags` when none were given."""
    cid = container_id(o.sandbox)
    instance = {"xdm:tags": [], **o.body, "@id": o.at_id}
    return {"instanceId": o.id, "schemas": [FALLBACK_SCHEMA], "productContexts": ["acp"],
            **_repo(o.etag, o.created, o.modified, o.client_id), "_instance": instance,
            "_links": {"self": {"href": f"/{cid}/instances/{o.id}", "@type": FALLBACK_SCHEMA}},
            "sandboxName": o.sandbox}


def placement_view(p: Placement) -> dict[str, Any]:
    cid = container_id(p.sandbox)
    return {"instanceId": p.instance_id, "schemas": [PLACEMENT_SCHEMA], "productContexts": ["acp"],
            **_repo(p.etag, p.created, p.created, "bulkoffers-emulator"),
            "_instance": {"xdm:name": p.name, "xdm:description": p.description,
                          "xdm:componentType": COMPONENT_PREFIX + p.component_type, "xdm:channel": p.channel,
                          "@id": p.at_id},
            "_links": {"self": {"href": f"/{cid}/instances/{p.instance_id}", "@type": PLACEMENT_SCHEMA}},
            "sandboxName": p.sandbox}


def _schema_of(content_type: str) -> str:
    """The schema a Content-Type names (`...; schema="URI"`; the URI itself holds a `;`), or ""."""
    found = re.search(r'schema="([^"]*)"', content_type) or re.search(r"schema=([^\s;]+(?:;version=[\d.]+)?)",
                                                                       content_type)
    return found.group(1) if found else ""


def _require_receipt(request: web.Request) -> None:
    if RECEIPT not in request.headers.get("Accept", ""):
        raise Refused(406, "Not Acceptable", f"Accept must be {RECEIPT}; version=1")


@authorised
async def xcore_containers(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    """The containers the credential can see: one decisioning container for each sandbox the emulator
    knows, each naming its sandbox, the requested one among them (not necessarily first)."""
    store = request.app[STATE].store
    store.sandbox(sandbox)
    items = [{"instanceId": container_id(name), "schemas": [CONTAINER_SCHEMA], "productContexts": ["acp"],
              **_repo(1, "2019-06-03T04:17:33.684Z", "2019-06-03T04:17:33.684Z", client_id),
              "repo:sandboxName": name,
              "_instance": {"containerType": "decisioning", "repo:name": f"{name} container", "dataCenter": "VA7"},
              "_links": {"self": {"href": f"/containers/{container_id(name)}"}}}
             for name in store.sandboxes()]
    from .query import matches_filters, parse_filters

    filters = parse_filters(request.query.getall("property", []))
    items = [i for i in items if matches_filters(i, filters)]
    return web.json_response({"_embedded": {"https://ns.adobe.com/experience/xcore/container": items},
                              "_links": {"self": {"href": str(request.rel_url)}}})


@authorised
async def xcore_create(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    state = request.app[STATE]
    _container(request, sandbox)
    ctype = request.headers.get("Content-Type", "")
    schema = _schema_of(ctype)
    if ctype.split(";")[0].strip() != SCHEMA_INSTANCE or schema not in (FALLBACK_SCHEMA, PLACEMENT_SCHEMA):
        raise Refused(415, "Unsupported Media Type",
                      f'Content-Type must be {SCHEMA_INSTANCE}; version=1; schema="{FALLBACK_SCHEMA}" '
                      f'(or the placement schema {PLACEMENT_SCHEMA})')
    _require_receipt(request)
    body = await json_body(request)
    if schema == PLACEMENT_SCHEMA:
        if not isinstance(body, dict):
            raise BodyError("body must be a JSON object")
        kind = str(body.get("xdm:componentType", "")).removeprefix(COMPONENT_PREFIX)
        made = add_placement(state, sandbox, placement_spec(body.get("xdm:name"), body.get("xdm:channel"), kind,
                                                            body.get("xdm:description"), "xdm:"))
        return web.json_response({"instanceId": made.instance_id, "@id": made.at_id,
                                  **_repo(made.etag, made.created, made.created, client_id)},
                                 status=201, content_type=RECEIPT)
    name, status = state.valid_offer(body, sandbox, "xcore")
    guardrail(request, sandbox)
    offer = state.store.insert(sandbox, "xcore", name, status, body, client_id, state.faults.index_lag)
    return web.json_response(xcore_receipt(offer), status=201, content_type=RECEIPT)


def _instance(request: web.Request, sandbox: str) -> StoredOffer | Placement:
    _container(request, sandbox)
    ref = request.match_info["id"]
    store = request.app[STATE].store
    found: StoredOffer | Placement | None = store.get(sandbox, "xcore", ref)
    if found is None:
        placement = store.placement(sandbox, ref)
        found = placement if placement is not None and ref in (placement.instance_id, placement.at_id) else None
    if found is None:
        raise Refused(404, "Not Found", f"instance {ref} not found in sandbox {sandbox}")
    return found


def _offer_instance(request: web.Request, sandbox: str) -> StoredOffer:
    found = _instance(request, sandbox)
    if isinstance(found, Placement):
        raise Refused(405, "Method Not Allowed", "placements cannot be changed or deleted here")
    return found


@authorised
async def xcore_get(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    found = _instance(request, sandbox)
    return web.json_response(placement_view(found) if isinstance(found, Placement) else xcore_view(found))


def _check_edit(request: web.Request, offer: StoredOffer, content_type: str) -> None:
    if request.headers.get("Content-Type", "").split(";")[0].strip() != content_type:
        raise Refused(415, "Unsupported Media Type", f'Content-Type must be {content_type}; version=1; '
                                                     f'schema="{FALLBACK_SCHEMA}"')
    _require_receipt(request)
    etag = request.headers.get("If-Match")
    if etag is None:
        raise Refused(428, "Precondition Required", "If-Match: {repo:etag} is required to change an instance")
    if etag.strip().strip('"') != str(offer.etag):
        raise Refused(409, "Conflict", f"If-Match {etag} is stale: the instance is at repo:etag {offer.etag}")


def _not_editable_changed(old: Any, new: Any, path: str = "") -> str | None:
    """The path of a property the schema does not let users change, if `new` changes one."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old.keys() & new.keys():
            if key in _NOT_EDITABLE and old[key] != new[key]:
                return f"{path}/{key}"
            if (found := _not_editable_changed(old[key], new[key], f"{path}/{key}")) is not None:
                return found
    if isinstance(old, list) and isinstance(new, list):
        for i, (a, b) in enumerate(zip(old, new)):
            if (found := _not_editable_changed(a, b, f"{path}/{i}")) is not None:
                return found
    return None


def _replace(state: State, offer: StoredOffer, instance: Any, sandbox: str, client_id: str) -> web.Response:
    """The offer's new `_instance` (with or without its @id) after an edit: valid, and no property
    changed that the schema does not let users change (422)."""
    if not isinstance(instance, dict):
        raise BodyError("_instance must be an object")
    if (path := _not_editable_changed({**offer.body, "@id": offer.at_id}, {"@id": offer.at_id, **instance})):
        raise Refused(422, "Unprocessable Entity", f"/_instance{path} is not user-editable")
    body = {k: v for k, v in instance.items() if k != "@id"}
    name, status = state.valid_offer(body, sandbox, "xcore")
    changed = state.store.update(offer, body, name, status, client_id)
    return web.json_response(xcore_receipt(changed), content_type=RECEIPT)


@authorised
async def xcore_patch(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    """A JSON Patch (add, replace, remove) with paths under /_instance/."""
    offer, ops = await _edit(request, sandbox, PATCH_TYPE)
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise BodyError("a JSON Patch must be an array of operations")
    for op in ops:
        if op.get("op") not in ("add", "replace", "remove"):
            raise BodyError(f"op '{op.get('op')}' is not supported (add, replace, remove)")
        if not str(op.get("path", "")).startswith("/_instance/"):
            raise BodyError(f"path '{op.get('path')}' must be under /_instance/")
    try:
        doc = jsonpatch.JsonPatch(ops).apply({"_instance": {**offer.body, "@id": offer.at_id}})
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
        raise BodyError(f"JSON Patch cannot be applied: {exc}") from None
    return _replace(request.app[STATE], offer, doc.get("_instance"), sandbox, client_id)


@authorised
async def xcore_put(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    """A whole new `_instance` for the offer: body `{"_instance": {...}, "_links": {}}`."""
    offer, doc = await _edit(request, sandbox, HAL_TYPE)
    if not isinstance(doc, dict) or not isinstance(doc.get("_instance"), dict):
        raise BodyError("_instance is required")
    return _replace(request.app[STATE], offer, doc["_instance"], sandbox, client_id)


async def _edit(request: web.Request, sandbox: str, content_type: str) -> tuple[StoredOffer, Any]:
    """What PATCH and PUT check first: the offer exists, the request's Content-Type and If-Match fit it;
    then its JSON body."""
    offer = _offer_instance(request, sandbox)
    _check_edit(request, offer, content_type)
    return offer, await json_body(request)


@authorised
async def xcore_delete(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    offer = _offer_instance(request, sandbox)
    _require_receipt(request)
    request.app[STATE].store.delete(offer)
    return web.Response(status=202)


@authorised
async def xcore_search(request: web.Request, client_id: str, sandbox: str) -> web.StreamResponse:
    cid = _container(request, sandbox)
    schema = request.query.get("schema")
    store = request.app[STATE].store
    if schema == FALLBACK_SCHEMA:
        docs = [xcore_view(o) for o in
                store.scan(sandbox, "xcore", exact_name(request, "_instance.xdm:name"), visible_only=True)]
    elif schema == PLACEMENT_SCHEMA:
        docs = [placement_view(p) for p in store.placements(sandbox)]
    else:
        raise BodyError(f"query parameter schema={FALLBACK_SCHEMA} (or {PLACEMENT_SCHEMA}) is required")
    found, links, total = query_docs(request, docs, ROOT, _RESULTS)
    return web.json_response({"containerId": cid, "schemaNs": schema, "requestTime": now_iso(),
                              "_embedded": {"results": found, "total": total, "count": len(found)},
                              "_links": links})
