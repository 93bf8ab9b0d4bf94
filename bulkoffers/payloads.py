"""Step 4 of the flow: an `Offer` → the JSON body each API flavor documents, and the comparison of a
body with an offer found on the server. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any

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


def matches(sent: Any, found: Any) -> bool:
    """Whether an offer found on the server carries everything we sent (it may add fields of its own)."""
    if isinstance(sent, dict):
        return isinstance(found, dict) and all(k in found and matches(v, found[k]) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(found, list) and len(sent) == len(found) and all(map(matches, sent, found))
    return bool(sent == found)
