"""The list/search language both flavors share, as Adobe documents it: `property` filters, `orderBy`,
`limit`, and paging with next links; and the guardrail on offers per sandbox.

Filters: `property=EXPR[,EXPR...]`, repeatable; all expressions are ANDed. Every comma starts a new
expression (so a value cannot hold a comma). An expression is `[!]field[op]value` with op one of
`== != <= >= < > ~`, or a bare `[!]field`, true when the field is present; `~` is a regular expression
that must match the whole value. Next links are relative to the API root (`/data/core/dps` or
`/data/core/xcore`), as in Adobe's examples.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .state import STATE, Refused

Filter = tuple[bool, str, str | None, str]  # (negated, field path, operator or None for presence, value)
_OPERATORS = ("==", "!=", "<=", ">=", "~", "<", ">")
_OPERATOR = re.compile("|".join(re.escape(op) for op in _OPERATORS))


async def json_body(request: web.Request) -> Any:
    from .validation import BodyError

    try:
        return json.loads(await request.text())
    except ValueError:
        raise BodyError("body is not valid JSON") from None


def parse_filters(values: list[str]) -> list[Filter]:
    """Each `property` value split on every comma; each expression at its first operator."""
    out: list[Filter] = []
    for raw in values:
        for expr in raw.split(","):
            negated = expr.startswith("!")
            expr = expr[1:] if negated else expr
            found = _OPERATOR.search(expr)
            if found is None:
                out.append((negated, expr, None, ""))  # a bare field: is it there?
            else:
                out.append((negated, expr[:found.start()], found.group(), expr[found.end():]))
    return out


def lookup(doc: dict[str, Any], path: str) -> Any:
    cur: Any = doc
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def _holds(actual: Any, op: str | None, value: str, field: str) -> bool:
    if op is None:
        return actual is not None
    text = "" if actual is None else str(actual)
    if op == "==":
        return actual is not None and text == value
    if op == "!=":
        return text != value
    if op == "~":
        try:
            return actual is not None and re.fullmatch(value, text) is not None
        except re.error:
            raise Refused(400, "Bad Request", f"property {field}~{value}: not a valid regular expression") from None
    return actual is not None and {"<": text < value, ">": text > value, "<=": text <= value, ">=": text >= value}[op]


def matches_filters(doc: dict[str, Any], filters: list[Filter]) -> bool:
    return all(_holds(lookup(doc, field), op, value, field) != negated for negated, field, op, value in filters)


def page(request: web.Request, docs: list[dict[str, Any]], root: str, link_type: dict[str, str]
         ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One page, and its self and next links relative to `root` (the API's base path)."""
    cfg = request.app[STATE].config
    try:
        limit = int(request.query.get("limit", cfg.page_limit))
        start = int(request.query.get("start", "0") or 0)
    except ValueError:
        raise Refused(400, "Bad Request", "limit and start must be integers") from None
    if not 1 <= limit <= cfg.max_page_limit:
        raise Refused(400, "Bad Request", f"limit must be between 1 and {cfg.max_page_limit}")
    found = docs[start:start + limit]
    path = request.path.removeprefix(root)
    links: dict[str, Any] = {"self": {"href": f"{path}?{urlencode(list(request.query.items()))}", **link_type}}
    if start + limit < len(docs):
        query = [(k, v) for k, v in request.query.items() if k != "start"] + [("start", str(start + limit))]
        links["next"] = {"href": f"{path}?{urlencode(query)}", **link_type}
    return found, links


def sort_docs(docs: list[dict[str, Any]], order_by: str | None) -> list[dict[str, Any]]:
    if not order_by:
        return docs
    for key in reversed([k for k in order_by.split(",") if k]):
        desc = key.startswith("-")
        fname = key.lstrip("-+")
        docs.sort(key=lambda d: str(lookup(d, fname) or ""), reverse=desc)
    return docs


def query_docs(request: web.Request, docs: list[dict[str, Any]], root: str, link_type: dict[str, str]
               ) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """List/search over documents as the flavor shows them: filters, `orderBy`, then one page."""
    filters = parse_filters(request.query.getall("property", []))
    chosen = [d for d in docs if matches_filters(d, filters)]
    order_by = request.query.get("orderBy") or request.query.get("orderby")
    found, links = page(request, sort_docs(chosen, order_by), root, link_type)
    return found, links, len(chosen)


def exact_name(request: web.Request, name_field: str) -> str | None:
    """An `==` filter on the name, if there is one: the store narrows by it (an index)."""
    filters = parse_filters(request.query.getall("property", []))
    return next((v for neg, f, op, v in filters if f == name_field and op == "==" and not neg), None)


def guardrail(request: web.Request, sandbox: str) -> None:
    cfg = request.app[STATE].config
    if request.app[STATE].store.count(sandbox) >= cfg.max_offers:
        raise Refused(400, "Guardrail", f"sandbox {sandbox} already holds {cfg.max_offers} offers, the maximum",
                      error_code="OFFER-GUARDRAIL")


Viewer = Callable[[Any], dict[str, Any]]
