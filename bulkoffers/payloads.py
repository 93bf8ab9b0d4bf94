"""Step 4 of the flow: an `Offer` → the JSON body each API flavor documents, and the comparison of a
body with an offer found on the server. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import orjson

from .config import Api
from .offers import Component, Offer, iso

# One constant for the text component: accepted as `text` or `component-text`, always sent as this.
DPS_TEXT_TYPE = "text"
XCORE_COMPONENT_PREFIX = "https://ns.adobe.com/experience/offer-management/content-component-"



def dps_payload(offer: Offer) -> dict[str, Any]:
    f = offer.fields
    body: dict[str, Any] = {"name": f.name}
    if f.description:
        body["description"] = f.description
    body["status"] = f.status
    constraint: dict[str, Any] = {}
    if f.start_date:
        constraint["startDate"] = iso(f.start_date)
    if f.end_date:
        constraint["endDate"] = iso(f.end_date)
    constraint["profileConstraintType"] = "none"
    body["selectionConstraint"] = constraint
    body["representations"] = [
        {"components": [_dps_component(c) for c in r.components], "channel": r.channel, "placement": r.placement}
        for r in offer.representations
    ]
    if f.priority is not None:
        body["rank"] = {"priority": f.priority}
    if f.tags:
        body["tags"] = list(f.tags)
    return body


def _dps_component(c: Component) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if c.delivery_url:
        out["deliveryURL"] = c.delivery_url
    if c.link_url:
        out["linkURL"] = c.link_url
    if c.content is not None:
        out["content"] = c.content
    out["type"] = DPS_TEXT_TYPE if c.type == "text" else c.type
    out["format"] = c.format
    out["language"] = list(c.language)
    return out


def xcore_payload(offer: Offer) -> dict[str, Any]:
    """The legacy repository shape. Fallback offers there carry no dates or priority."""
    f = offer.fields
    body: dict[str, Any] = {"xdm:name": f.name, "xdm:status": f.status}
    if f.tags:
        body["xdm:tags"] = list(f.tags)
    body["xdm:representations"] = [
        {"xdm:components": [_xcore_component(c) for c in r.components], "xdm:channel": r.channel,
         "xdm:placement": r.placement}
        for r in offer.representations
    ]
    return body


def _xcore_component(c: Component) -> dict[str, Any]:
    out: dict[str, Any] = {"@type": XCORE_COMPONENT_PREFIX + c.type, "dc:format": c.format,
                           "dc:language": list(c.language)}
    if c.delivery_url:
        out["xdm:deliveryURL"] = c.delivery_url
    if c.link_url:
        out["xdm:linkURL"] = c.link_url
    if c.content is not None:
        out["xdm:content"] = c.content
    return out


def payload(offer: Offer, api: Api) -> dict[str, Any]:
    return dps_payload(offer) if api == "dps" else xcore_payload(offer)


def offer_name(payload: dict[str, Any]) -> str:
    return str(payload.get("name") or payload.get("xdm:name") or "")


# The fields bulkoffers writes, per flavor and level: an offer found on the server is compared on these
# only (the service adds its own: ids, etags, dates, repo:name on components, ...).
_DPS_OWNED: dict[str, Any] = {
    "name": None, "description": None, "status": None, "tags": None, "rank": {"priority": None},
    "selectionConstraint": {"startDate": "date", "endDate": "date", "profileConstraintType": None},
    "representations": [{"channel": None, "placement": None, "components": [{
        "type": "type", "format": None, "language": None, "deliveryURL": None, "linkURL": None, "content": None}]}],
}
_XCORE_OWNED: dict[str, Any] = {
    "xdm:name": None, "xdm:status": None, "xdm:tags": None,
    "xdm:representations": [{"xdm:channel": None, "xdm:placement": None, "xdm:components": [{
        "@type": None, "dc:format": None, "dc:language": None, "xdm:deliveryURL": None, "xdm:linkURL": None,
        "xdm:content": None}]}],
}


def owned(doc: Any, api: Api, normalize: bool = True) -> Any:
    """The part of an offer document that bulkoffers writes. Normalized (the default), equal content
    compares equal: empty values count as absent, dates as instants, `component-text` as `text`;
    without, the values are kept as the document has them (to write them back: rollback of updates)."""
    return _project(doc, _spec(api), normalize)


def _spec(api: Api) -> dict[str, Any]:
    return _DPS_OWNED if api == "dps" else _XCORE_OWNED


def _project(value: Any, spec: Any, normalize: bool = True) -> Any:
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return value
        out = {}
        for key, sub in spec.items():
            kept = _project(value.get(key), sub, normalize)
            if kept not in (None, "", [], {}):
                out[key] = kept
        return out
    if isinstance(spec, list):
        return [_project(v, spec[0], normalize) for v in value] if isinstance(value, list) else value
    if not normalize:
        return value
    if spec == "date" and isinstance(value, str):
        return _instant(value)
    if spec == "type" and value == "component-text":
        return DPS_TEXT_TYPE
    return value


@lru_cache(maxsize=4096)  # a file's dates repeat row after row
def _instant(value: str) -> str:
    """A date as the instant it names, in UTC, so equal instants written differently compare equal."""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return iso(when if when.tzinfo else when.replace(tzinfo=timezone.utc))  # naive: UTC, as the importer reads it


def same_content(sent: dict[str, Any], found: dict[str, Any], api: Api) -> bool:
    """Whether an offer on the server holds exactly the content a payload writes: the comparison of the
    lost-answer lookup, of `verify`, and of updates (nothing more, nothing less, on bulkoffers' fields)."""
    return bool(owned(sent, api) == owned(found, api))


# xcore lets no one change dc:format or dc:language in place (XDM marks them not user-editable, and the
# service answers 422): a change inside the representations replaces them all.
_WHOLE = {"dps": frozenset(), "xcore": frozenset({"xdm:representations"})}


def patch_ops(current: dict[str, Any], desired: dict[str, Any], api: Api) -> list[dict[str, Any]]:
    """The JSON Patch that turns the offer on the server (`current`) into `desired` on bulkoffers' fields
    only (the service's own fields are left alone): `add`, `replace` and `remove` with DPS paths like
    /representations/0/components/0/deliveryURL, or xcore paths under /_instance/. Values come from
    `desired` as it is; equal content (same_content) gives no operation."""
    ops: list[dict[str, Any]] = []
    _diff(current, desired, _spec(api), "/_instance" if api == "xcore" else "", ops, _WHOLE[api])
    return ops


def changed_fields(ops: list[dict[str, Any]]) -> list[str]:
    """The fields a patch changes, as the user reads them (`representations/0/components/0/content`)."""
    return [op["path"].removeprefix("/_instance").lstrip("/") for op in ops]


def _pointer(path: str, key: str | int) -> str:
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _diff(cur: Any, want: Any, spec: dict[str, Any], path: str, ops: list[dict[str, Any]],
          whole: frozenset[str]) -> None:
    for key, sub in spec.items():
        have = _project(cur.get(key), sub) if isinstance(cur, dict) else None
        need = _project(want.get(key), sub)
        at = _pointer(path, key)
        if need in (None, "", [], {}):
            if have not in (None, "", [], {}):
                ops.append({"op": "remove", "path": at})
            continue
        if have in (None, "", [], {}):
            ops.append({"op": "add", "path": at, "value": want[key]})
        elif have == need:
            continue
        elif key not in whole and isinstance(sub, dict) and isinstance(cur[key], dict):
            _diff(cur[key], want[key], sub, at, ops, whole)
        elif (key not in whole and isinstance(sub, list) and isinstance(cur[key], list)
              and len(cur[key]) == len(want[key]) and isinstance(sub[0], dict)):
            for i, (c, w) in enumerate(zip(cur[key], want[key])):
                if _project(c, sub[0]) != _project(w, sub[0]):
                    _diff(c, w, sub[0], _pointer(at, i), ops, whole)
        else:
            ops.append({"op": "replace", "path": at, "value": want[key]})


def content_digest(doc: dict[str, Any], api: Api) -> str:
    """A short fingerprint of an offer's content (its owned fields): what the journal keeps of each
    offer a run made, so `verify` can tell the run's content from changed content."""
    return hashlib.sha256(orjson.dumps(owned(doc, api), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def sent_digest(body: dict[str, Any], api: Api) -> str:
    """`content_digest` of a body this module built, without the projection (it cost ~10 µs of every
    row): such a body holds only owned fields, never an empty one, the text type as `text` and dates as
    `iso` writes them, which is the normalized form already. tests/test_mapping.py checks the two agree
    on every fixture."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def matches(sent: Any, found: Any) -> bool:
    """Whether `found` carries everything `sent` has (it may add fields of its own): a looser check than
    `same_content`, kept for tests of the payload shapes."""
    if isinstance(sent, dict):
        return isinstance(found, dict) and all(k in found and matches(v, found[k]) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(found, list) and len(sent) == len(found) and all(map(matches, sent, found))
    return bool(sent == found)
