"""Strict body checks, as the real service does them: the first problem found, naming the field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

DPS_STATUSES = ("draft", "approved", "archived")
XCORE_STATUSES = ("draft", "pending", "rejected", "approved", "archived")
DPS_COMPONENT_TYPES = ("imagelink", "html", "text", "component-text", "json")
_XCORE_PREFIX = "https://ns.adobe.com/experience/offer-management/content-component-"
XCORE_COMPONENT_TYPES = tuple(_XCORE_PREFIX + t for t in ("imagelink", "html", "text", "json"))


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


def _languages(comp: dict[str, Any], key: str, where: str) -> None:
    langs = comp.get(key)
    if langs is not None and (not isinstance(langs, list) or not all(isinstance(x, str) for x in langs)):
        raise BodyError(f"{where}{key} must be an array of strings")


def content_bytes(components: list[dict[str, Any]], keys: tuple[str, ...]) -> int:
    return sum(len(str(c.get(k, "")).encode()) for c in components for k in keys if c.get(k) is not None)


@dataclass(frozen=True)
class Shape:
    """Where a flavor keeps each part of an offer, and which values it takes."""

    name: str
    status: str
    statuses: tuple[str, ...]
    representations: str
    channel: str
    placement: str
    components: str
    type: str
    types: tuple[str, ...]
    format: str
    language: str
    content_keys: tuple[str, ...]  # deliveryURL, linkURL, content: what counts against the guardrail

    def content_field(self, ctype: str) -> str:
        """The field a component of this type must carry."""
        image = ctype.endswith("imagelink")
        return self.content_keys[0] if image else self.content_keys[2]


DPS = Shape("name", "status", DPS_STATUSES, "representations", "channel", "placement", "components", "type",
            DPS_COMPONENT_TYPES, "format", "language", ("deliveryURL", "linkURL", "content"))
XCORE = Shape("xdm:name", "xdm:status", XCORE_STATUSES, "xdm:representations", "xdm:channel", "xdm:placement",
              "xdm:components", "@type", XCORE_COMPONENT_TYPES, "dc:format", "dc:language",
              ("xdm:deliveryURL", "xdm:linkURL", "xdm:content"))


def _validate(body: Any, shape: Shape, max_content: int) -> tuple[str, str]:
    """The checks both flavors share: name, status, representations, components, content guardrail."""
    if not isinstance(body, dict):
        raise BodyError("body must be a JSON object")
    name = _str(body, shape.name, "")
    status = _str(body, shape.status, "")
    if status not in shape.statuses:
        raise BodyError(f"{shape.status} '{status}' is not one of {', '.join(shape.statuses)}")
    total = 0
    for i, rep in enumerate(_list(body, shape.representations, "")):
        where = f"{shape.representations}[{i}]."
        if not isinstance(rep, dict):
            raise BodyError(f"{shape.representations}[{i}] must be an object")
        _str(rep, shape.channel, where)
        _str(rep, shape.placement, where)
        comps = _list(rep, shape.components, where)
        for j, comp in enumerate(comps):
            cw = f"{where}{shape.components}[{j}]."
            if not isinstance(comp, dict):
                raise BodyError(f"{cw[:-1]} must be an object")
            ctype = _str(comp, shape.type, cw)
            if ctype not in shape.types:
                raise BodyError(f"{cw}{shape.type} '{ctype}' is not one of {', '.join(shape.types)}")
            _str(comp, shape.format, cw)
            _str(comp, shape.content_field(str(ctype)), cw)
            _languages(comp, shape.language, cw)
        total += content_bytes(comps, shape.content_keys)
    if total > max_content:
        raise BodyError(f"{shape.representations} content is {total} bytes; the guardrail is {max_content} bytes")
    assert name is not None and status is not None
    return name, status


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
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise BodyError("tags must be an array of strings")
    return name, status


def validate_xcore(body: Any, max_content: int) -> tuple[str, str]:
    """Returns (name, status) of a valid xcore fallback-offer instance; raises BodyError otherwise."""
    return _validate(body, XCORE, max_content)
