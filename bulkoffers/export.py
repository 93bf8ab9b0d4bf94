"""`bulkoffers export`: the sandbox's fallback offers → a spreadsheet `import` reads back, and `copy`,
export and import in one run.

Each component becomes a row in exactly the columns import reads (`offer_key` is the offer's id, so the
rows of one offer stay one offer), followed by the read-only `id`, `at_id`, `etag` and `modified`,
which import recognises and ignores. Placements are written by name when their name is unique in the
sandbox (so another sandbox or API, where ids differ, maps them by name and channel in its preflight),
else by id. `offer_rows` is pure; `export_offers` lists every page through the attempt loop (paced,
retried) and streams rows to CSV or XLSX.
"""

from __future__ import annotations

import csv
import fnmatch
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .columns import FIELDS
from .config import Api, ApiConfig
from .errors import ConfigError, LookupFailed
from .xdm import CHANNEL_TYPES, short_channel

if TYPE_CHECKING:
    from .client import Found, PlacementInfo

READ_ONLY = ("id", "at_id", "etag", "modified")
EXPORT_COLUMNS = (*FIELDS, *READ_ONLY)
_XCORE_TYPE = "https://ns.adobe.com/experience/offer-management/content-component-"
STATUSES = ("draft", "approved", "archived")


@dataclass(frozen=True)
class OfferFilter:
    """`--filter`: `name=GLOB` (shell-style, `*` and `?`, case-sensitive) and/or `status=S`; an offer
    is exported when it matches every one given."""

    names: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()

    @classmethod
    def parse(cls, exprs: tuple[str, ...] | list[str]) -> OfferFilter:
        names: list[str] = []
        statuses: list[str] = []
        for expr in exprs:
            key, sep, value = expr.partition("=")
            key = key.strip().lower()
            if not sep or not value or key not in ("name", "status"):
                raise ConfigError(f"--filter {expr!r} is neither name=PATTERN nor status=STATUS",
                                  hint="e.g. --filter 'name=Spring*' --filter status=approved")
            if key == "status" and value.lower() not in STATUSES:
                raise ConfigError(f"--filter {expr!r}: {value!r} is not a status", hint=f"use {', '.join(STATUSES)}")
            (names if key == "name" else statuses).append(value if key == "name" else value.lower())
        return cls(tuple(names), tuple(statuses))

    def __call__(self, name: str, status: str) -> bool:
        return all(fnmatch.fnmatchcase(name, g) for g in self.names) and \
            all(status == s for s in self.statuses)


def placement_names(placements: list[PlacementInfo]) -> dict[str, str]:
    """Placement id → what an export writes for it: its name when no other placement of the sandbox has
    that name, else the id (a name two placements share would be a guess)."""
    counts: dict[str, int] = {}
    for p in placements:
        counts[p.name] = counts.get(p.name, 0) + 1
    return {p.id: p.name if p.name and counts[p.name] == 1 else p.id for p in placements}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _channel(uri: str) -> str:
    """web for the web channel's URI (as people write it in the spreadsheet); other URIs as they are."""
    short = short_channel(uri)
    return short if short in CHANNEL_TYPES else uri


def offer_rows(found: Found, api: Api, names: dict[str, str]) -> list[dict[str, str]]:
    """One row per component of an offer as the API shows it, in the columns import reads. An offer
    with no component still gets a row (import then says what is missing), so none is dropped."""
    doc = found.document
    x = api == "xcore"
    get = (lambda d, k: d.get("xdm:" + k)) if x else (lambda d, k: d.get(k))
    constraint = {} if x else doc.get("selectionConstraint") or {}
    rank = {} if x else doc.get("rank") or {}
    offer = {"offer_key": found.id, "name": found.name, "description": _text(None if x else doc.get("description")),
             "status": _text(get(doc, "status")), "start_date": _text(constraint.get("startDate")),
             "end_date": _text(constraint.get("endDate")), "priority": _text(rank.get("priority")),
             "tags": _text(get(doc, "tags")), "id": found.id, "at_id": found.at_id, "etag": _text(found.etag),
             "modified": found.modified}
    rows = []
    for rep in get(doc, "representations") or [{}]:
        placement = _text(get(rep, "placement"))
        where = {"channel": _channel(_text(get(rep, "channel"))), "placement": names.get(placement, placement)}
        for comp in get(rep, "components") or [{}]:
            if x:
                kind = str(comp.get("@type") or "").removeprefix(_XCORE_TYPE)
                fmt, lang = comp.get("dc:format"), comp.get("dc:language")
            else:
                kind = "text" if comp.get("type") == "component-text" else str(comp.get("type") or "")
                fmt, lang = comp.get("format"), comp.get("language")
            rows.append({**offer, **where, "component_type": kind, "format": _text(fmt),
                         "delivery_url": _text(get(comp, "deliveryURL")), "link_url": _text(get(comp, "linkURL")),
                         "content": _text(get(comp, "content")), "language": _text(lang)})
    return rows


@dataclass
class ExportSummary:
    offers: int = 0  # exported
    rows: int = 0
    listed: int = 0  # offers the sandbox has (before --filter)
    out: str = ""
    by_id: int = 0  # placements written by id (their name is not unique in the sandbox)
    warnings: list[str] = field(default_factory=list)


class _Sheet:
    """Rows streamed to OUT: CSV (UTF-8 with a BOM, so Excel opens it as UTF-8) or XLSX (text cells)."""

    def __init__(self, out: Path) -> None:
        self.out, suffix = out, out.suffix.lower()
        if suffix == ".csv":
            self._fh = out.open("w", newline="", encoding="utf-8-sig")
            self._csv: Any = csv.writer(self._fh)
            self._csv.writerow(EXPORT_COLUMNS)
        elif suffix in (".xlsx", ".xlsm"):
            from openpyxl import Workbook

            self._book = Workbook(write_only=True)
            self._ws = self._book.create_sheet("offers")
            self._ws.append(list(EXPORT_COLUMNS))
            self._csv = None
        else:
            raise ConfigError(f"cannot export to {suffix or 'a file without suffix'}", hint="use .csv or .xlsx")

    def write(self, row: dict[str, str]) -> None:
        values = [row.get(c, "") for c in EXPORT_COLUMNS]
        if self._csv is not None:
            self._csv.writerow(values)
            return
        from openpyxl.cell import WriteOnlyCell

        cells = []
        for v in values:
            cell = WriteOnlyCell(self._ws, value=v)
            cell.data_type = "s"  # text, even "=1+1": content is never a formula
            cells.append(cell)
        self._ws.append(cells)

    def close(self) -> None:
        if self._csv is not None:
            self._fh.close()
        else:
            self._book.save(self.out)


def export_offers(api: ApiConfig, out: Path, keep: OfferFilter = OfferFilter(), force: bool = False,
                  progress: Callable[[int, int | None], None] | None = None) -> ExportSummary:
    """Lists every fallback offer of the sandbox (every page, paced and retried) and writes those
    `keep` matches to OUT. `progress(offers_listed, total)` after each page."""
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists", hint="pass --force to overwrite it, or choose another file")
    return anyio.run(_export, api, out, keep, progress)


async def _export(api: ApiConfig, out: Path, keep: OfferFilter,
                  progress: Callable[[int, int | None], None] | None) -> ExportSummary:
    from .client import open_library
    from .ratelimit import RateLimiter
    from .sandbox import read_snapshot
    from .sender import Sender

    summary = ExportSummary(out=str(out))
    async with open_library(api) as lib:
        sender = Sender(lib, RateLimiter(api.rate), api.retry)
        snap = await read_snapshot(sender, offers=False, placements=True)
        names = placement_names(snap.placements or [])
        summary.by_id = sum(1 for k, v in names.items() if k == v)
        sheet = _Sheet(out)
        try:
            async for found in _every_offer(sender, progress):
                summary.listed += 1
                rows = offer_rows(found, api.target.api, names)
                if not keep(found.name, rows[0]["status"]):
                    continue
                for row in rows:
                    sheet.write(row)
                summary.offers += 1
                summary.rows += len(rows)
        finally:
            sheet.close()
    if summary.by_id:
        summary.warnings.append(f"{summary.by_id} placements are written by id: another placement of the sandbox "
                                "has the same name (a copy to another sandbox needs the ids mapped by hand)")
    return summary


async def _every_offer(sender: Any, progress: Callable[[int, int | None], None] | None) -> AsyncIterator[Found]:
    listed = 0
    lib = sender.lib
    try:
        async for page in sender.pages(lambda: lib.list_page(limit=100)):
            for found in page:
                yield found
            listed += len(page)
            if progress is not None:
                progress(listed, None)  # (no total: the count shows offers listed so far)
    except LookupFailed as exc:
        where = "--container-id" if lib.target.api == "xcore" else "--base-url"
        raise ConfigError(f"cannot list the sandbox's offers: {exc}", hint=f"check {where} and --sandbox") from exc


def copy_offers(source: ApiConfig, cfg: Any, keep: OfferFilter = OfferFilter(), progress: Any = None,
                on_export: Callable[[ExportSummary], None] | None = None) -> tuple[ExportSummary, Any | None]:
    """`bulkoffers copy`: exports the offers of `source` (a sandbox and API) to `cfg.input`, then imports
    that file as `cfg` says (the target sandbox and API; its preflight maps placements by name and
    channel), with one journal beside `cfg.results`, so resume, verify and rollback work as for any
    import. Returns both summaries; the import's errors end it as an import's do. When no offer was
    exported (an empty sandbox, or none matched `keep`) nothing is imported: the import's summary is
    None and the empty export file is removed (no run began, so no file of one is left)."""
    from .engine import import_file

    exported = export_offers(source, cfg.input, keep, force=cfg.force)
    if on_export is not None:
        on_export(exported)
    if exported.offers == 0:
        cfg.input.unlink(missing_ok=True)
        return exported, None
    return exported, import_file(cfg, progress)
