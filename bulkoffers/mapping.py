"""Columns → validated offers → payloads for DPS and xcore. Pure functions, no I/O.

Rows that share an `offer_key` (or, without that column, the same `name`) become one offer; rows of
one offer with the same channel and placement become one representation with several components.
"""

from __future__ import annotations

import json
import mimetypes
import re
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from .config import Api, MappingSpec
from .errors import ConfigError
from .reader import SourceRow

OFFER_FIELDS = ("name", "description", "status", "start_date", "end_date", "priority", "tags")
REP_FIELDS = ("channel", "placement", "component_type", "format", "delivery_url", "link_url", "content", "language")
FIELDS = ("offer_key", *OFFER_FIELDS, *REP_FIELDS)
BOOKKEEPING = {"error", "sourcerow"}  # columns a failures file adds: known, never offer data
CHANNELS = {c: f"https://ns.adobe.com/xdm/channel-types/{c}"
            for c in ("web", "email", "mobile", "push", "sms", "inapp", "code", "messaging", "offline", "other")}
# One constant for the text component: accepted as `text` or `component-text`, always sent as this.
DPS_TEXT_TYPE = "text"
XCORE_COMPONENT_PREFIX = "https://ns.adobe.com/experience/offer-management/content-component-"
XCORE_CONTENT_TYPE = ('application/schema-instance+json; version=1;  '
                      'schema="https://ns.adobe.com/experience/offer-management/fallback-offer;version=0.1"')
XCORE_ACCEPT = "application/vnd.adobe.platform.xcore.xdm.receipt+json; version=1"
COMPONENT_ALIASES = {"imagelink": "imagelink", "image": "imagelink", "img": "imagelink", "html": "html",
                     "text": "text", "componenttext": "text", "plaintext": "text", "json": "json"}
DEFAULT_FORMATS = {"html": "text/html", "text": "text/plain", "json": "application/json"}
MAX_CONTENT_BYTES = 1024  # Adobe guardrail: representation content of one offer, all placements together
MAX_OFFERS = 10_000  # Adobe guardrail: offers per sandbox
MAX_PLACEMENTS = 1_000  # Adobe guardrail: placements per sandbox
_LANG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_MIME = re.compile(r"^[\w.+-]+/[\w.+-]+$")
_QUERY = re.compile(r"[?#]")
_SEPARATORS = re.compile(r"[\s\-_]+")
_LIST = re.compile(r"[,;]")
_HTTP_URL = re.compile(r"^https?://[^\s/?#@]+(?:[/?#]\S*)?$", re.I)
_IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
                "webp": "image/webp", "svg": "image/svg+xml", "avif": "image/avif"}


def image_format(url: str) -> str | None:
    """MIME type from the URL's file extension (query and fragment ignored)."""
    path = _QUERY.split(url, maxsplit=1)[0]
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _IMAGE_TYPES.get(ext) or (mimetypes.guess_type(path)[0] if ext else None)


def normalize(header: str) -> str:
    """Header names match case-insensitively, ignoring spaces, dashes and underscores."""
    return _SEPARATORS.sub("", header).lower()


_CANONICAL = {normalize(f): f for f in FIELDS}
# A few spellings people use for the same columns.
_CANONICAL.update({"offername": "name", "title": "name", "key": "offer_key", "offerid": "offer_key",
                   "start": "start_date", "end": "end_date", "rank": "priority", "type": "component_type",
                   "componenttype": "component_type", "mimetype": "format", "url": "delivery_url",
                   "imageurl": "delivery_url", "deliveryurl": "delivery_url", "linkurl": "link_url",
                   "lang": "language", "languages": "language"})


@dataclass(frozen=True)
class ColumnMap:
    header_of: dict[str, str]  # canonical field → header in the file
    defaults: dict[str, str]  # canonical field → constant used when the cell is empty
    unknown: tuple[str, ...]  # headers that map to nothing (reported once, never silently dropped)
    _specs: dict[tuple[str, ...], tuple[tuple[str, str | None, str], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def get(self, row: SourceRow, fname: str) -> str:
        header = self.header_of.get(fname)
        value = row.cells.get(header, "").strip() if header else ""
        return value or self.defaults.get(fname, "")

    def values(self, row: SourceRow, fields: tuple[str, ...] = FIELDS) -> dict[str, str]:
        """Several fields of a row at once (the hot path: one dict lookup per field)."""
        specs = self._specs.get(fields)
        if specs is None:  # (field, header or None, default) worked out once per tuple of fields
            specs = self._specs[fields] = tuple((f, self.header_of.get(f), self.defaults.get(f, "")) for f in fields)
        cells = row.cells
        return {f: (cells.get(h, "").strip() if h else "") or d for f, h, d in specs}

    def column(self, fname: str) -> str:
        """The column name to show the user for a field."""
        return self.header_of.get(fname, fname)

    def key(self, row: SourceRow) -> str:
        return self.get(row, "offer_key") or self.get(row, "name")


def resolve_columns(headers: list[str], spec: MappingSpec = MappingSpec()) -> ColumnMap:
    explicit = {normalize(h): f for h, f in spec.columns}
    for h, f in spec.columns:
        if f not in FIELDS:
            raise ConfigError(f"mapping file: column {h!r} maps to unknown field {f!r}",
                              hint=f"fields are: {', '.join(FIELDS)}")
    defaults = dict(spec.defaults)
    for f in defaults:
        if f not in FIELDS:
            raise ConfigError(f"mapping file: default for unknown field {f!r}", hint=f"fields are: {', '.join(FIELDS)}")
    header_of: dict[str, str] = {}
    unknown: list[str] = []
    for header in headers:
        norm = normalize(header)
        fname = explicit.get(norm) or _CANONICAL.get(norm)
        if fname is None:
            if norm not in BOOKKEEPING:
                unknown.append(header)
        elif fname in header_of:
            raise ConfigError(f"columns {header_of[fname]!r} and {header!r} both map to {fname}",
                              hint="rename or remove one of them, or map one elsewhere with --mapping")
        else:
            header_of[fname] = header
    if "name" not in header_of and "name" not in defaults:
        raise ConfigError(f"no 'name' column among: {', '.join(headers)}",
                          hint="add a name column, or map yours with --mapping (see README, 'Mapping files')")
    return ColumnMap(header_of, defaults, tuple(unknown))


# ---- parsing of single cells ------------------------------------------------------------------------

_DATE_FORMATS = ("%Y/%m/%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y", "%Y%m%d", "%d-%b-%Y", "%b %d %Y", "%d %b %Y")
_TIME_FORMATS = ("", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p")


@lru_cache(maxsize=4096)  # a sheet's dates repeat row after row; datetimes are immutable
def parse_when(text: str) -> tuple[datetime, bool]:
    """(aware datetime, date_only). Naive values are UTC. Slashed dates are US month/day unless the
    first number is over 12."""
    text = text.strip()
    found = _parse_datetime(text)
    if found is None:
        raise ValueError(f"{text!r} is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)")
    parsed, date_only = found
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed, date_only


def _parse_datetime(text: str) -> tuple[datetime, bool] | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")), len(text) <= 10
    except ValueError:
        pass
    for dfmt in _DATE_FORMATS:
        for tfmt in _TIME_FORMATS:
            try:
                return datetime.strptime(text, dfmt + tfmt), tfmt == ""
            except ValueError:
                continue
    return None


@lru_cache(maxsize=4096)
def iso(dt: datetime) -> str:
    """The form Adobe's examples use: 2022-06-10T00:30:00.000+00:00."""
    return dt.isoformat(timespec="milliseconds")


def _split(text: str) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(p.strip() for p in _LIST.split(text) if p.strip())


# ---- row models ----------------------------------------------------------------------------------


class OfferFields(BaseModel):
    """The offer-level columns of the first row of an offer."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)
    name: str
    description: str | None = None
    status: Literal["draft", "approved", "archived"]
    start_date: datetime | None = None
    end_date: datetime | None = None
    priority: int | None = None
    tags: tuple[str, ...] = ()

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or not v.strip():
            raise ValueError("is empty; every offer needs a name")
        return v

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, v: str) -> str | None:
        return v or None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: str) -> str:
        low = v.strip().lower()
        if low not in ("draft", "approved", "archived"):
            raise ValueError(f"{v!r} is not a status (use draft, approved or archived)")
        return low

    @field_validator("start_date", mode="before")
    @classmethod
    def _start(cls, v: str) -> datetime | None:
        return parse_when(v)[0] if v else None

    @field_validator("end_date", mode="before")
    @classmethod
    def _end(cls, v: str) -> datetime | None:
        if not v:
            return None
        when, date_only = parse_when(v)
        # A date alone means the whole of that day is included.
        return when.replace(hour=23, minute=59, second=59, microsecond=999000) if date_only else when

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, v: str) -> int | None:
        if not v:
            return None
        try:
            number = float(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a whole number") from None
        if not number.is_integer() or number < 0:
            raise ValueError(f"{v!r} is not a whole number of 0 or more")
        return int(number)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v: str) -> tuple[str, ...]:
        return _split(v)

    @model_validator(mode="after")
    def _dates(self) -> OfferFields:
        if self.start_date and self.end_date and self.end_date <= self.start_date:
            raise ValueError("end_date: must be after start_date")
        return self


class RepFields(BaseModel):
    """The representation/component columns of one row."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)
    api: Literal["dps", "xcore"]
    channel: str
    placement: str
    component_type: Literal["imagelink", "html", "text", "json"]
    format: str = ""
    delivery_url: str | None = None
    link_url: str | None = None
    content: str | None = None
    language: tuple[str, ...] = ("en",)

    @field_validator("channel", mode="before")
    @classmethod
    def _channel(cls, v: str) -> str:
        if not v:
            raise ValueError(f"is empty (use one of {', '.join(CHANNELS)} or a channel URI)")
        if v.lower() in CHANNELS:
            return CHANNELS[v.lower()]
        if v.startswith("https://ns.adobe.com/xdm/channel-types/"):
            return v
        raise ValueError(f"{v!r} is not a channel (use one of {', '.join(CHANNELS)} or a channel URI)")

    @field_validator("placement", mode="before")
    @classmethod
    def _placement(cls, v: str) -> str:
        if not v:
            raise ValueError("is empty; give the placement id the offer is shown in")
        return v

    @field_validator("component_type", mode="before")
    @classmethod
    def _ctype(cls, v: str) -> str:
        kind = COMPONENT_ALIASES.get(normalize(v or ""))
        if kind is None:
            raise ValueError(f"{v!r} is not a component type (use imagelink, html, text or json)")
        return kind

    @field_validator("delivery_url", "link_url", mode="before")
    @classmethod
    def _url(cls, v: str) -> str | None:
        if not v:
            return None
        if not _HTTP_URL.match(v):  # a regex: urlparse costs more than the rest of the row
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, v: str) -> str | None:
        return v or None

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, v: str) -> tuple[str, ...]:
        langs = _split(v) if v else ("en",)
        bad = [x for x in langs if not _LANG.match(x)]
        if bad:
            raise ValueError(f"{', '.join(bad)!r} is not a language code (use e.g. en or en-US, comma separated)")
        return langs

    @model_validator(mode="after")
    def _component(self) -> RepFields:
        kind = self.component_type
        if self.api == "xcore" and not self.placement.startswith("xcore:offer-placement:"):
            raise ValueError(f"placement: {self.placement!r} is not an xcore placement id "
                             "(xcore:offer-placement:...)")
        if kind == "imagelink":
            if not self.delivery_url:
                raise ValueError("delivery_url: is empty; an imagelink component needs the image URL")
        else:
            if not self.content:
                raise ValueError(f"content: is empty; a {kind} component needs content")
            if self.delivery_url:
                raise ValueError("delivery_url: only imagelink components have one; clear it or set "
                                 "component_type to imagelink")
            if kind == "json":
                try:
                    json.loads(self.content)
                except ValueError:
                    raise ValueError("content: is not valid JSON for a json component") from None
        if self.format:
            if not _MIME.match(self.format):
                raise ValueError(f"format: {self.format!r} is not a MIME type like image/png")
        else:
            fmt = DEFAULT_FORMATS.get(kind)
            if kind == "imagelink":
                fmt = image_format(self.delivery_url or "")
                if not fmt:
                    raise ValueError("format: cannot tell it from the URL; fill the format column (e.g. image/png)")
            object.__setattr__(self, "format", fmt)
        return self


# ---- offers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    type: str
    format: str
    language: tuple[str, ...]
    delivery_url: str | None = None
    link_url: str | None = None
    content: str | None = None

    @property
    def content_bytes(self) -> int:
        return sum(len(x.encode()) for x in (self.delivery_url, self.link_url, self.content) if x)


@dataclass(frozen=True)
class Representation:
    channel: str
    placement: str
    components: tuple[Component, ...]


@dataclass(frozen=True)
class Offer:
    key: str
    fields: OfferFields
    representations: tuple[Representation, ...]

    @property
    def name(self) -> str:
        return self.fields.name


@dataclass(frozen=True)
class Problem:
    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.message}"


@dataclass
class Prepared:
    """One offer's rows after validation: `offer` is None when any row has a problem."""

    key: str
    rows: list[SourceRow]
    offer: Offer | None = None
    problems: list[Problem] = field(default_factory=list)
    body: dict[str, Any] | None = None  # the payload, built as the offer is prepared (engine.with_payloads)
    data: bytes | None = None  # and its JSON bytes

    @property
    def name(self) -> str:
        return self.offer.name if self.offer else ""


def _problems(exc: ValidationError, row: int, cmap: ColumnMap) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = str(err["loc"][0]) if err["loc"] else ""
        msg = str(err.get("ctx", {}).get("error", err["msg"]))
        if not loc and ": " in msg and msg.split(": ", 1)[0] in FIELDS:
            loc, msg = msg.split(": ", 1)  # model-level checks name their field first
            msg = msg.replace("start_date", cmap.column("start_date"))
        if err["type"] == "missing":
            msg = "is missing"
        out.append(Problem(row, cmap.column(loc) if loc else "row", msg))
    return out


@dataclass(frozen=True)
class Context:
    api: Api = "dps"
    default_status: str = "approved"


def build_offer(key: str, rows: list[SourceRow], cmap: ColumnMap, ctx: Context) -> Prepared:
    """Validates one offer's rows and assembles it. Offer-level columns come from the first row; a later
    row may leave them empty but may not contradict them."""
    prepared = Prepared(key, rows)
    first = rows[0]
    first_values = cmap.values(first, OFFER_FIELDS)
    values = dict(first_values)
    values["status"] = values["status"] or ctx.default_status
    offer_fields: OfferFields | None = None
    try:
        offer_fields = OfferFields.model_validate(values)
    except ValidationError as exc:
        prepared.problems += _problems(exc, first.number, cmap)
    reps: dict[tuple[str, str], list[Component]] = {}
    for row in rows:
        if row is not first:
            for f, value in cmap.values(row, OFFER_FIELDS).items():
                if value and value != first_values[f]:
                    prepared.problems.append(Problem(row.number, cmap.column(f),
                                                     f"{value!r} differs from row {first.number}'s "
                                                     f"{first_values[f]!r} for the same offer {key!r}; "
                                                     "leave it empty or make them equal"))
        try:
            rep = RepFields.model_validate({"api": ctx.api, **cmap.values(row, REP_FIELDS)})
        except ValidationError as exc:
            prepared.problems += _problems(exc, row.number, cmap)
            continue
        reps.setdefault((rep.channel, rep.placement), []).append(Component(
            rep.component_type, rep.format, rep.language, rep.delivery_url, rep.link_url, rep.content))
    if prepared.problems or offer_fields is None:
        return prepared
    representations = tuple(Representation(ch, pl, tuple(comps)) for (ch, pl), comps in reps.items())
    size = sum(c.content_bytes for r in representations for c in r.components)
    if size > MAX_CONTENT_BYTES:
        prepared.problems.append(Problem(first.number, cmap.column("content"),
                                         f"the offer's content and URLs add up to {size} bytes; Adobe's guardrail "
                                         f"is {MAX_CONTENT_BYTES} bytes per offer across all placements"))
        return prepared
    prepared.offer = Offer(key, offer_fields, representations)
    return prepared


# ---- payloads ----------------------------------------------------------------------------------------


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


# ---- grouping across the whole file, in two passes -----------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What pass 1 learned: where multi-row offers end, which names repeat, how many rows."""

    last_row: dict[int, int]  # hash(key) → row number of its last row, only for keys on several rows
    repeated_names: frozenset[int]  # hash(name) for names used by more than one offer_key
    rows: int
    offers: int
    placements: int
    filled: frozenset[str] = frozenset()  # fields that hold a value in at least one row


def plan(rows: Iterable[SourceRow], cmap: ColumnMap) -> Plan:
    """One pass over the file. Memory stays small: 8 bytes a row for key hashes (16 with offer keys and
    8 for row numbers), counted with numpy's sort-based unique, and dicts only for keys that repeat."""
    import numpy as np  # already loaded with pandas; C-speed unique without a dict per row

    keys, names, numbers = array("q"), array("q"), array("q")
    placements: set[str] = set()
    by_key = "offer_key" in cmap.header_of
    filled: set[str] = set()
    watch = [f for f in FIELDS if f in cmap.header_of]
    for row in rows:
        if watch:
            filled.update(f for f in watch if cmap.get(row, f))
            watch = [f for f in watch if f not in filled]
        keys.append(hash(cmap.key(row)))
        numbers.append(row.number)
        if by_key:
            names.append(hash(cmap.get(row, "name")))
        if len(placements) <= MAX_PLACEMENTS:
            placements.add(cmap.get(row, "placement"))
    k = np.frombuffer(keys, dtype=np.int64) if keys else np.empty(0, dtype=np.int64)
    uniq, counts = np.unique(k, return_counts=True)
    multi = uniq[counts > 1]
    last_row: dict[int, int] = {}
    if multi.size:
        nums = np.frombuffer(numbers, dtype=np.int64)
        for idx in np.nonzero(np.isin(k, multi))[0].tolist():  # rows of multi-row offers only
            last_row[int(k[idx])] = int(nums[idx])
    repeated: frozenset[int] = frozenset()
    if by_key and keys:
        n = np.frombuffer(names, dtype=np.int64)
        named = n != hash("")
        pairs = np.empty(int(named.sum()), dtype=[("name", "i8"), ("key", "i8")])
        pairs["name"], pairs["key"] = n[named], k[named]
        pair_names = np.unique(pairs)["name"]  # one entry per distinct (name, key)
        names_u, name_counts = np.unique(pair_names, return_counts=True)
        repeated = frozenset(names_u[name_counts > 1].tolist())
    return Plan(last_row, repeated, len(keys), int(uniq.size), len(placements), frozenset(filled))


def group(rows: Iterable[SourceRow], cmap: ColumnMap, plan: Plan) -> Iterator[tuple[str, list[SourceRow]]]:
    """Yields (key, rows) per offer as soon as its last row has been read."""
    pending: dict[str, list[SourceRow]] = {}
    for row in rows:
        key = cmap.key(row)
        h = hash(key)
        last = plan.last_row.get(h)
        if last is None:
            yield key, [row]
            continue
        pending.setdefault(key, []).append(row)
        if row.number == last:
            for k in [k for k in pending if hash(k) == h]:
                yield k, pending.pop(k)
    yield from pending.items()  # only reachable if the file changed between passes


def prepare(rows: Iterable[SourceRow], cmap: ColumnMap, plan_: Plan, ctx: Context) -> Iterator[Prepared]:
    """Every row of the file exactly once, grouped into offers and validated, with file-wide checks:
    names repeated across offer keys, and the sandbox guardrail on offers."""
    names: dict[str, tuple[str, int]] = {}
    offers = 0
    for key, rows_ in group(rows, cmap, plan_):
        prepared = build_offer(key, rows_, cmap, ctx)
        first = rows_[0]
        name = cmap.get(first, "name")
        if name and hash(name) in plan_.repeated_names:
            other = names.setdefault(name, (key, first.number))
            if other[0] != key:
                prepared.problems.append(Problem(first.number, cmap.column("name"),
                                                 f"{name!r} is also the name of offer_key {other[0]!r} (row {other[1]}); "
                                                 "names must be unique or the run creates duplicate offers"))
        if not prepared.problems:
            offers += 1
            if offers > MAX_OFFERS:
                prepared.problems.append(Problem(first.number, cmap.column("name"),
                                                 f"offer #{offers} of this file; Adobe's guardrail is {MAX_OFFERS} "
                                                 "offers per sandbox: split the file across sandboxes"))
        if prepared.problems:
            prepared.offer = None
        yield prepared
