"""The list/search language both flavors share: `property` filters, `orderBy`, paging with next links,
and the guardrail on offers per sandbox. Written from the API document, not from the client."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .state import STATE, error
from .store import StoredOffer
from .validation import BodyError

_FILTER = re.compile(r"^(!?)([A-Za-z_@:.\-]+?)(==|!=|<=|>=|~|<|>)(.*)$", re.S)


async def json_body(request: web.Request) -> Any:
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


def lookup(doc: dict[str, Any], path: str) -> Any:
    cur: Any = doc
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def matches_filters(doc: dict[str, Any], filters: list[tuple[bool, str, str, str]]) -> bool:
    for neg, fname, op, value in filters:
        actual = lookup(doc, fname)
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


def page(request: web.Request, docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    cfg = request.app[STATE].config
    try:
        limit = int(request.query.get("limit", cfg.page_limit))
        start = int(request.query.get("start", "0") or 0)
    except ValueError:
        raise BodyError("limit and start must be integers") from None
    if not 1 <= limit <= cfg.max_page_limit:
        raise BodyError(f"limit must be between 1 and {cfg.max_page_limit}")
    found = docs[start:start + limit]
    links: dict[str, Any] = {"self": {"href": str(request.rel_url)}}
    if start + limit < len(docs):
        query = [(k, v) for k, v in request.query.items() if k != "start"] + [("start", str(start + limit))]
        links["next"] = {"href": f"{request.path}?{urlencode(query)}"}
    return found, links


def sort_docs(docs: list[dict[str, Any]], order_by: str | None) -> list[dict[str, Any]]:
    if not order_by:
        return docs
    for key in reversed([k for k in order_by.split(",") if k]):
        desc = key.startswith("-")
        fname = key.lstrip("-+")
        docs.sort(key=lambda d: str(lookup(d, fname) or ""), reverse=desc)
    return docs


def query_offers(request: web.Request, sandbox: str, view: Callable[[StoredOffer], dict[str, Any]],
           name_field: str) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """List/search: `property` filters, `orderBy`, then one page. An exact name filter goes to the
    index; the rest are checked on the documents as the flavor shows them."""
    filters = parse_filters(request.query.getall("property", []))
    exact = next((v for neg, f, op, v in filters if f == name_field and op == "==" and not neg), None)
    docs = [d for d in map(view, request.app[STATE].store.scan(sandbox, exact)) if matches_filters(d, filters)]
    found, links = page(request, sort_docs(docs, request.query.get("orderBy")))
    return found, links, len(docs)


def guardrail(request: web.Request, sandbox: str) -> web.Response | None:
    cfg = request.app[STATE].config
    if request.app[STATE].store.count(sandbox) >= cfg.max_offers:
        return error(400, "Guardrail", f"sandbox {sandbox} already holds {cfg.max_offers} offers, the maximum",
                     error_code="OFFER-GUARDRAIL")
    return None
