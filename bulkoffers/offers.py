"""Step 2 of the flow: one offer's rows → a validated `Offer`, or the problems that keep it from being
sent (each naming its row, column and the fix). Pure functions and pydantic models, no I/O.
"""

from __future__ import annotations

import json
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from .columns import FIELDS, OFFER_FIELDS, REP_FIELDS, ColumnMap, normalize
from .config import Api
from .errors import RowError
from .reader import SourceRow
from .xdm import channel_uri, is_language_tag, is_uri

COMPONENT_ALIASES = {"imagelink": "imagelink", "image": "imagelink", "img": "imagelink", "html": "html",
                     "text": "text", "componenttext": "text", "plaintext": "text", "json": "json"}
DEFAULT_FORMATS = {"html": "text/html", "text": "text/plain", "json": "application/json"}
MAX_CONTENT_BYTES = 1024  # Adobe guardrail: representation content of one offer, all placements together
MAX_ATTRIBUTE_BYTES = 1024  # Adobe guardrail: "about 1 KB per offer"; no single attribute may exceed it
# C0 controls but tab, line feed and carriage return (which cells may hold), and DEL: never meant in an
# offer, and the API stores them as they are. Refused rather than stripped: a NUL in a name is a sign of
# a broken export, and the user should see the row, not a silently different name.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_OFFERS = 10_000  # Adobe guardrail: offers per sandbox
MAX_PLACEMENTS = 1_000  # Adobe guardrail: placements per sandbox
_MIME = re.compile(r"^[\w.+-]+/[\w.+-]+$")
_QUERY = re.compile(r"[?#]")
_LIST = re.compile(r"[,;]")
_HTTP_URL = re.compile(r"^https?://[^\s/?#@]+(?:[/?#]\S*)?$", re.I)
_IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
                "webp": "image/webp", "svg": "image/svg+xml", "avif": "image/avif"}


def image_format(url: str) -> str | None:
    """MIME type from the URL's file extension (query and fragment ignored)."""
    path = _QUERY.split(url, maxsplit=1)[0]
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _IMAGE_TYPES.get(ext) or (mimetypes.guess_type(path)[0] if ext else None)


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
    """The form Adobe's examples use, in UTC: 2022-06-10T00:30:00.000+00:00 (the same instant as the
    cell's, whatever offset it was written with; payloads.content_digest compares dates in this form)."""
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _split(text: str) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(p.strip() for p in _LIST.split(text) if p.strip())


# ---- row models ----------------------------------------------------------------------------------


class OfferFields(BaseModel):
    """The offer-level columns of the first row of an offer."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)
    api: Literal["dps", "xcore"] = "dps"
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
        if self.api == "xcore":  # xcore tags are the @ids of tags (xdm:tags items are URIs)
            bad = [t for t in self.tags if not is_uri(t)]
            if bad:
                raise ValueError(f"tags: {', '.join(map(repr, bad))} is not a URI (xcore tags are tag ids like "
                                 "xcore:tag:124e8e3fb8e4b7e4)")
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
            raise ValueError("is empty (use web, email, mobile, ... or a channel URI)")
        return channel_uri(v)

    @field_validator("placement", mode="before")
    @classmethod
    def _placement(cls, v: str) -> str:
        if not v:
            raise ValueError("is empty; give the placement (its id, or its name) the offer is shown in")
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
        bad = [x for x in langs if not is_language_tag(x)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} is not a BCP 47 language tag (use e.g. en, en-US, pt-BR, "
                             "comma separated)")
        return langs

    @model_validator(mode="after")
    def _component(self) -> RepFields:
        kind = self.component_type
        if self.api == "xcore" and ":" in self.placement and not is_uri(self.placement):
            # an id (a URI); a value without a colon is taken as a placement name, resolved by the preflight
            raise ValueError(f"placement: {self.placement!r} is not a URI (xcore placement ids look like "
                             "xcore:offer-placement:124e0be5699743d3; no spaces)")
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
    row: int = 0  # the row it came from

    @property
    def content_bytes(self) -> int:
        return sum(len(x.encode()) for x in (self.delivery_url, self.link_url, self.content) if x)


@dataclass(frozen=True)
class Representation:
    channel: str
    placement: str  # an id (or, until the preflight resolves it, a placement name)
    components: tuple[Component, ...]
    row: int = 0  # the first row it came from: problems found later name it


@dataclass(frozen=True)
class Offer:
    key: str
    fields: OfferFields
    representations: tuple[Representation, ...]

    @property
    def name(self) -> str:
        return self.fields.name


@dataclass
class Prepared:
    """One offer's rows after validation: `offer` is None when any row has a problem."""

    key: str
    rows: list[SourceRow]
    offer: Offer | None = None
    problems: list[RowError] = field(default_factory=list)
    body: dict[str, Any] | None = None  # the payload, built as the offer is prepared (source.with_payloads)
    data: bytes | None = None  # and its JSON bytes

    @property
    def name(self) -> str:
        return self.offer.name if self.offer else ""


def _problems(exc: ValidationError, row: int, cmap: ColumnMap) -> list[RowError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = str(err["loc"][0]) if err["loc"] else ""
        msg = str(err.get("ctx", {}).get("error", err["msg"]))
        if not loc and ": " in msg and msg.split(": ", 1)[0] in FIELDS:
            loc, msg = msg.split(": ", 1)  # model-level checks name their field first
            msg = msg.replace("start_date", cmap.column("start_date"))
        if err["type"] == "missing":
            msg = "is missing"
        out.append(RowError(row, cmap.column(loc) if loc else "row", msg))
    return out


@dataclass(frozen=True)
class Context:
    api: Api = "dps"
    default_status: str = "approved"


def cell_problems(row: SourceRow, cmap: ColumnMap) -> list[RowError]:
    """Problems of the row's cells themselves, whatever their column: a formula the reader could not
    read, a control character, more than the guardrail's 1 KB. (Checked on the whole row first: the
    per-cell pass runs only for a row that has one.)"""
    cells = row.cells
    if not row.notes and not _CONTROL.search(joined := "".join(cells.values())) and \
            len(joined) <= MAX_ATTRIBUTE_BYTES // 4:
        return []
    out = []
    notes = row.notes or {}
    for header in cmap.header_of.values():
        if header in notes:
            out.append(RowError(row.number, header, notes[header]))
            continue
        value = cells.get(header, "")
        if (bad := _CONTROL.search(value)) is not None:
            out.append(RowError(row.number, header, f"holds the control character U+{ord(bad[0]):04X} at position "
                                                    f"{bad.start() + 1}; remove it (control characters are not sent)"))
        elif len(value) > MAX_ATTRIBUTE_BYTES // 4 and (size := len(value.strip().encode())) > MAX_ATTRIBUTE_BYTES:
            out.append(RowError(row.number, header, f"is {size:,} bytes; Adobe's guardrail is about 1 KB "
                                                    f"({MAX_ATTRIBUTE_BYTES:,} bytes) per offer attribute: shorten it"))
    return out


def build_offer(key: str, rows: list[SourceRow], cmap: ColumnMap, ctx: Context) -> Prepared:
    """Validates one offer's rows and assembles it. Offer-level columns come from the first row; a later
    row may leave them empty but may not contradict them."""
    prepared = Prepared(key, rows)
    flagged: set[tuple[int, str]] = set()  # (row, column) a cell problem names: not reported twice
    for row in rows:
        for problem in cell_problems(row, cmap):
            prepared.problems.append(problem)
            flagged.add((problem.row, problem.column))

    def unflagged(found: list[RowError]) -> list[RowError]:
        return [p for p in found if (p.row, p.column) not in flagged] if flagged else found

    first = rows[0]
    first_values = cmap.values(first, OFFER_FIELDS)
    values: dict[str, str] = {**first_values, "api": ctx.api}
    values["status"] = values["status"] or ctx.default_status
    offer_fields: OfferFields | None = None
    try:
        offer_fields = OfferFields.model_validate(values)
    except ValidationError as exc:
        prepared.problems += unflagged(_problems(exc, first.number, cmap))
    reps: dict[tuple[str, str], list[Component]] = {}
    rep_rows: dict[tuple[str, str], int] = {}
    for row in rows:
        if row is not first:
            for f, value in cmap.values(row, OFFER_FIELDS).items():
                if value and value != first_values[f]:
                    prepared.problems.append(RowError(row.number, cmap.column(f),
                                                     f"{value!r} differs from row {first.number}'s "
                                                     f"{first_values[f]!r} for the same offer {key!r}; "
                                                     "leave it empty or make them equal"))
        try:
            rep = RepFields.model_validate({"api": ctx.api, **cmap.values(row, REP_FIELDS)})
        except ValidationError as exc:
            prepared.problems += unflagged(_problems(exc, row.number, cmap))
            continue
        rep_rows.setdefault((rep.channel, rep.placement), row.number)
        reps.setdefault((rep.channel, rep.placement), []).append(Component(
            rep.component_type, rep.format, rep.language, rep.delivery_url, rep.link_url, rep.content, row.number))
    if prepared.problems or offer_fields is None:
        return prepared
    representations = tuple(Representation(ch, pl, tuple(comps), rep_rows[(ch, pl)]) for (ch, pl), comps in reps.items())
    size = sum(c.content_bytes for r in representations for c in r.components)
    if size > MAX_CONTENT_BYTES:
        prepared.problems.append(RowError(first.number, cmap.column("content"),
                                         f"the offer's content and URLs add up to {size} bytes; Adobe's guardrail "
                                         f"is {MAX_CONTENT_BYTES} bytes per offer across all placements"))
        return prepared
    prepared.offer = Offer(key, offer_fields, representations)
    return prepared
