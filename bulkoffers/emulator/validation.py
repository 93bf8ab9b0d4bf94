"""Strict body checks, as the real service makes them: the first problem found, naming the field.

Written from Adobe's XDM schemas (fallback-offer → offer → offer-representation, in adobe/xdm) and
the request examples in shared/offer-library-api.md, not from bulkoffers' client: an offer needs a
name and a status; each representation a channel (a URI), a placement and components; each component
a type and a format. Content fields are optional (Adobe's xcore create example has an HTML component
with no content). Tags, channels and xcore placements are URIs; languages are BCP 47 tags.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DPS_STATUSES = ("draft", "approved", "archived")
XCORE_STATUSES = ("draft", "pending", "rejected", "approved", "archived")
DPS_COMPONENT_TYPES = ("imagelink", "html", "text", "component-text", "json")
_XCORE_PREFIX = "https://ns.adobe.com/experience/offer-management/content-component-"
XCORE_COMPONENT_TYPES = tuple(_XCORE_PREFIX + t for t in ("imagelink", "html", "text", "json"))

# RFC 5646 (BCP 47), section 2.1: the grammar the schema's dc:language pattern spells out.
_LANGUAGE = r"(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4}|[A-Za-z]{5,8})"
_LANGTAG = (_LANGUAGE + r"(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
            r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
            r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*(?:-x(?:-[A-Za-z0-9]{1,8})+)?")
_GRANDFATHERED = ("en-GB-oed", "i-ami", "i-bnn", "i-default", "i-enochian", "i-hak", "i-klingon", "i-lux",
                  "i-mingo", "i-navajo", "i-pwn", "i-tao", "i-tay", "i-tsu", "sgn-BE-FR", "sgn-BE-NL", "sgn-CH-DE",
                  "art-lojban", "cel-gaulish", "no-bok", "no-nyn", "zh-guoyu", "zh-hakka", "zh-min", "zh-min-nan",
                  "zh-xiang")
LANGUAGE_TAG = re.compile(rf"(?:{_LANGTAG}|x(?:-[A-Za-z0-9]{{1,8}})+|{'|'.join(map(re.escape, _GRANDFATHERED))})")
# RFC 3986, section 3: scheme ":" then only URI characters (no spaces): JSON Schema's "uri" format.
URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})*")
# The schema's dc:format pattern; JSON Schema patterns are searched, not anchored.
FORMAT = re.compile(r"\w+/[-.\w]+(?:\+[-.\w]+)?")


class BodyError(ValueError):
    """A 400: the message names the offending field."""


def _str(obj: dict[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise BodyError(f"{where}{key} is required")
        return None
    if not isinstance(value, str):
        raise BodyError(f"{where}{key} must be a string")
    if required and not value.strip():
        raise BodyError(f"{where}{key} must not be empty")
    return value


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        raise BodyError(f"{where}{key} is required")
    if not isinstance(value, list) or not value:
        raise BodyError(f"{where}{key} must be a non-empty array")
    return value


def _uri(value: str | None, field: str) -> None:
    if value is not None and not URI.fullmatch(value):
        raise BodyError(f"{field} '{value}' is not a URI")


def _date(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise BodyError(f"{field} must be a date-time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BodyError(f"{field} '{value}' is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise BodyError(f"{field} '{value}' needs a time zone offset")
    return parsed


def content_bytes(components: list[dict[str, Any]], keys: tuple[str, ...]) -> int:
    return sum(len(str(c.get(k, "")).encode()) for c in components for k in keys if c.get(k) is not None)


@dataclass(frozen=True)
class Shape:
    """Where a flavor keeps each part of an offer, and which values it takes."""

    name: str
    status: str
    statuses: tuple[str, ...]
    tags: str
    representations: str
    channel: str
    placement: str
    components: str
    type: str
    types: tuple[str, ...]
    format: str
    language: str
    content_keys: tuple[str, ...]  # deliveryURL, linkURL, content: what counts against the guardrail
    uri_placements: bool  # xcore placements are @ids (URIs); DPS placements are plain ids
    uri_tags: bool


DPS = Shape("name", "status", DPS_STATUSES, "tags", "representations", "channel", "placement", "components",
            "type", DPS_COMPONENT_TYPES, "format", "language", ("deliveryURL", "linkURL", "content"), False, False)
XCORE = Shape("xdm:name", "xdm:status", XCORE_STATUSES, "xdm:tags", "xdm:representations", "xdm:channel",
              "xdm:placement", "xdm:components", "@type", XCORE_COMPONENT_TYPES, "dc:format", "dc:language",
              ("xdm:deliveryURL", "xdm:linkURL", "xdm:content"), True, True)


def component_kind(shape: Shape, ctype: str) -> str:
    """imagelink, html, text or json, whatever the flavor's spelling."""
    kind = ctype.removeprefix(_XCORE_PREFIX)
    return "text" if kind == "component-text" else kind


def _component(comp: Any, shape: Shape, where: str) -> None:
    if not isinstance(comp, dict):
        raise BodyError(f"{where[:-1]} must be an object")
    ctype = _str(comp, shape.type, where)
    if ctype not in shape.types:
        raise BodyError(f"{where}{shape.type} '{ctype}' is not one of {', '.join(shape.types)}")
    fmt = _str(comp, shape.format, where)
    if not FORMAT.search(str(fmt)):
        raise BodyError(f"{where}{shape.format} '{fmt}' is not a media type like image/png")
    langs = comp.get(shape.language)
    if langs is not None:
        if not isinstance(langs, list) or not all(isinstance(x, str) for x in langs):
            raise BodyError(f"{where}{shape.language} must be an array of strings")
        for lang in langs:
            if not LANGUAGE_TAG.fullmatch(lang):
                raise BodyError(f"{where}{shape.language} '{lang}' is not a BCP 47 language tag")
    for key in shape.content_keys:
        _str(comp, key, where, required=False)


def _validate(body: Any, shape: Shape, max_content: int) -> tuple[str, str]:
    """The checks both flavors share: name, status, tags, representations, components, content guardrail."""
    if not isinstance(body, dict):
        raise BodyError("body must be a JSON object")
    name = _str(body, shape.name, "")
    status = _str(body, shape.status, "")
    if status not in shape.statuses:
        raise BodyError(f"{shape.status} '{status}' is not one of {', '.join(shape.statuses)}")
    tags = body.get(shape.tags)
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise BodyError(f"{shape.tags} must be an array of strings")
        for tag in tags if shape.uri_tags else ():
            _uri(tag, shape.tags + "[]")
    total = 0
    for i, rep in enumerate(_list(body, shape.representations, "")):
        where = f"{shape.representations}[{i}]."
        if not isinstance(rep, dict):
            raise BodyError(f"{shape.representations}[{i}] must be an object")
        _uri(_str(rep, shape.channel, where), where + shape.channel)
        placement = _str(rep, shape.placement, where)
        if shape.uri_placements:
            _uri(placement, where + shape.placement)
        comps = _list(rep, shape.components, where)
        for j, comp in enumerate(comps):
            _component(comp, shape, f"{where}{shape.components}[{j}].")
        total += content_bytes(comps, shape.content_keys)
    if total > max_content:
        raise BodyError(f"{shape.representations} content is {total} bytes; the guardrail is {max_content} bytes")
    assert name is not None and status is not None
    return name, status


def check_placements(body: dict[str, Any], shape: Shape, placement_of: Callable[[str], Any]) -> None:
    """Each representation names a different placement that exists in the sandbox, with the placement's
    channel and component type. `placement_of(ref)` returns the placement (with .id, .at_id, .channel,
    .component_type) or None."""
    seen: dict[str, int] = {}
    for i, rep in enumerate(body[shape.representations]):
        where = f"{shape.representations}[{i}]."
        ref = rep[shape.placement]
        found = placement_of(ref)
        if found is None or (found.at_id if shape.uri_placements else found.id) != ref:
            raise BodyError(f"{where}{shape.placement} '{ref}' is not a placement of this sandbox")
        if ref in seen:
            raise BodyError(f"{where}{shape.placement} '{ref}' is used by representation {seen[ref]} too; "
                            "each representation needs its own placement")
        seen[ref] = i
        if rep[shape.channel] != found.channel:
            raise BodyError(f"{where}{shape.channel} '{rep[shape.channel]}' is not the channel of placement "
                            f"'{ref}' ({found.channel})")
        for j, comp in enumerate(rep[shape.components]):
            kind = component_kind(shape, comp[shape.type])
            if kind != found.component_type:
                raise BodyError(f"{where}{shape.components}[{j}].{shape.type} '{comp[shape.type]}' does not fit "
                                f"placement '{ref}', which takes {found.component_type} components")


def validate_dps(body: Any, max_content: int) -> tuple[str, str]:
    """Returns (name, status) of a valid DPS fallback offer; raises BodyError otherwise."""
    name, status = _validate(body, DPS, max_content)
    _str(body, "description", "", required=False)
    sc = body.get("selectionConstraint")
    if sc is not None:
        if not isinstance(sc, dict):
            raise BodyError("selectionConstraint must be an object")
        start = _date(sc["startDate"], "selectionConstraint.startDate") if "startDate" in sc else None
        end = _date(sc["endDate"], "selectionConstraint.endDate") if "endDate" in sc else None
        if start and end and end <= start:
            raise BodyError("selectionConstraint.endDate must be after selectionConstraint.startDate")
    rank = body.get("rank")
    if rank is not None:
        prio = rank.get("priority") if isinstance(rank, dict) else None
        if not isinstance(prio, int) or isinstance(prio, bool):
            raise BodyError("rank.priority must be an integer")
    return name, status


def validate_xcore(body: Any, max_content: int) -> tuple[str, str]:
    """Returns (name, status) of a valid xcore fallback-offer instance; raises BodyError otherwise."""
    return _validate(body, XCORE, max_content)


def valid_offer(body: Any, flavor: str, max_content: int, placement_of: Callable[[str], Any]) -> tuple[str, str]:
    """A create or edit body of either flavor: its name and status, or BodyError naming what is wrong
    (its placements must be the sandbox's, as `placement_of` finds them)."""
    name, status = (validate_dps if flavor == "dps" else validate_xcore)(body, max_content)
    check_placements(body, DPS if flavor == "dps" else XCORE, placement_of)
    return name, status
