"""Step 1 of the flow: the spreadsheet's headers → bulkoffers' fields. Pure, no I/O.

Headers match case-insensitively, ignoring spaces, dashes and underscores; a mapping file adds
names of its own and constant defaults for empty cells.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .config import MappingSpec
from .errors import ConfigError, MissingName
from .reader import SourceRow

OFFER_FIELDS = ("name", "description", "status", "start_date", "end_date", "priority", "tags")
REP_FIELDS = ("channel", "placement", "component_type", "format", "delivery_url", "link_url", "content", "language")
FIELDS = ("offer_key", *OFFER_FIELDS, *REP_FIELDS)
# Columns bulkoffers itself writes that are never offer data: a failures file's error and source_row, and
# the read-only columns of `export` (the offer's id, @id, etag and last change). Recognised and ignored.
BOOKKEEPING = {"error", "sourcerow", "id", "atid", "etag", "modified"}
_SEPARATORS = re.compile(r"[\s\-_]+")


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
        raise MissingName(f"no 'name' column among: {', '.join(headers)}",
                          hint="add a name column, or map yours with --mapping (see README, 'Mapping files')")
    return ColumnMap(header_of, defaults, tuple(unknown))


def has_name_column(headers: list[str], spec: MappingSpec = MappingSpec()) -> bool:
    explicit = {normalize(h): f for h, f in spec.columns}
    return any((explicit.get(normalize(h)) or _CANONICAL.get(normalize(h))) == "name" for h in headers) or \
        any(f == "name" for f, _ in spec.defaults)
