"""The spreadsheet side of a run: open the input and map its columns, make pass 1 (the grouping plan,
which also hashes the file), then prepare offers with their payloads. `validate` is all of it without
the network: the dry run.
"""

from __future__ import annotations

import time
from dataclasses import replace
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .columns import ColumnMap, MissingName, has_name_column, resolve_columns
from .config import Api, ImportConfig
from .errors import ConfigError, InputError
from .grouping import Plan, plan, prepare
from .offers import MAX_PLACEMENTS, Context, Prepared
from .payloads import payload
from .reader import SourceRow, Table
from .results import SOURCE_ROW, PayloadWriter, RowResult, Summary
from .sandbox import Catalog, OfferBudget, Snapshot, decide, preflight


@dataclass
class Loaded:
    table: Table
    cmap: ColumnMap
    plan: Plan
    ctx: Context
    warnings: list[str]
    renumber: bool = False

    def rows(self, chunk_rows: int | None = None) -> Iterator[SourceRow]:
        return rows_of(self.table, self.renumber, chunk_rows)


def rows_of(table: Table, renumber: bool, chunk_rows: int | None = None) -> Iterator[SourceRow]:
    rows = table.rows(chunk_rows)
    return renumbered(rows, table.path) if renumber else rows


def renumbered(rows: Iterator[SourceRow], path: Path) -> Iterator[SourceRow]:
    """Rows of a failures file carry their row in the original input (`source_row`): use it, so
    `retry --from` results land on the run's own rows."""
    for row in rows:
        cell = next((v for k, v in row.cells.items() if k.strip().lower() == SOURCE_ROW), "")
        if not cell.strip().isdigit():
            raise ConfigError(f"{path}: row {row.number} has no {SOURCE_ROW} number",
                              hint="retry --from takes the failures file of the same run, with its source_row column")
        yield SourceRow(int(cell), row.cells)


def load(cfg: ImportConfig, renumber: bool = False) -> Loaded:
    """Open the input, map its columns and make pass 1 (grouping plan)."""
    warnings: list[str] = []
    table = Table(cfg.input, cfg.read)
    if table.kind == "csv" and cfg.read.sheet is not None:
        warnings.append(f"{cfg.input}: --sheet is for workbooks; a CSV has one table, read as it is")
    table, cmap = _columns(table, cfg, warnings)
    unknown = _repeated_columns(table, cmap, warnings)
    if unknown:
        warnings.append(f"{table.where()}: column(s) not used: {', '.join(repr(h) for h in unknown)} "
                        "(map them with --mapping if they hold offer data)")
    the_plan = plan(rows_of(table, renumber), cmap)
    warnings += table.warnings
    if the_plan.rows == 0:
        raise InputError(f"{table.where()}: has a header row and no rows of offers under it",
                         hint="add the offers under the header" + (", or choose the sheet with --sheet NAME"
                                                                   if table.kind == "excel" else ""))
    if cfg.target.api == "xcore":
        for f in ("description", "start_date", "end_date", "priority"):
            if f in the_plan.filled:
                warnings.append(f"{cfg.input}: column {cmap.column(f)!r} is not part of the xcore fallback-offer "
                                "schema and is not sent (use --api dps to send it)")
    if the_plan.placements > MAX_PLACEMENTS:
        warnings.append(f"{cfg.input}: more than {MAX_PLACEMENTS:,} distinct placements; Adobe's guardrail is "
                        f"{MAX_PLACEMENTS:,} per sandbox")
    return Loaded(table, cmap, the_plan, Context(cfg.target.api, cfg.default_status), warnings, renumber)


def _columns(table: Table, cfg: ImportConfig, warnings: list[str]) -> tuple[Table, ColumnMap]:
    """Maps the columns. A workbook whose first sheet has no name column (notes, a cover sheet) is read
    from the only sheet that has one, with a warning; with several, the user names it."""
    try:
        return table, resolve_columns(table.headers, cfg.mapping)
    except MissingName as exc:
        if table.kind != "excel" or cfg.read.sheet is not None:
            raise MissingName(f"{table.where()}: {exc.args[0]}", hint=exc.hint) from None
        first, sheets = table.sheet_name(), table.sheet_names()
        fits = []
        for name in sheets[1:]:
            other = Table(cfg.input, replace(cfg.read, sheet=name))
            if has_name_column(other.headers, cfg.mapping):
                fits.append(other)
        listed = ", ".join(repr(n) for n in sheets)
        if len(fits) != 1:
            which = "several sheets have one" if fits else "no other sheet has one either"
            raise MissingName(f"{cfg.input}: the first sheet, {first!r}, has no 'name' column, and {which} "
                             f"(sheets: {listed})", hint="name the sheet of offers with --sheet NAME") from None
        table = fits[0]
        warnings.append(f"{cfg.input}: read sheet {table.sheet_name()!r}, the only one with a name column (the first "
                        f"sheet, {first!r}, has none; sheets: {listed}); pass --sheet to choose another")
        return table, resolve_columns(table.headers, cfg.mapping)


def _repeated_columns(table: Table, cmap: ColumnMap, warnings: list[str]) -> list[str]:
    """A header written twice (pandas reads the second as `Name.1`): refused when it is offer data,
    since either copy could be meant; otherwise named once. Returns the unknown columns left to report."""
    renamed = {h: table.written[h] for h in cmap.unknown if table.written.get(h, h) != h}
    for written, letters in table.repeated.items():
        columns = " and ".join(letters) if len(letters) == 2 else ", ".join(letters)
        used = next((f for f, h in cmap.header_of.items() if table.written.get(h) == written), None)
        if used is not None:
            raise InputError(f"{table.where()}: column {written!r} appears {len(letters)} times (columns {columns})",
                             hint=f"keep one {written!r} column: rename or remove the others") from None
        warnings.append(f"{table.where()}: column {written!r} appears {len(letters)} times (columns {columns}); "
                        "none of them is used")
    return [h for h in cmap.unknown if h not in renamed and table.written.get(h, h) not in table.repeated]


def row_results(prepared: Prepared, cmap: ColumnMap, outcome: str, **kw: Any) -> list[RowResult]:
    """One result per source row of an offer; each invalid row names its own problem."""
    out = []
    for row in prepared.rows:
        error = kw.get("error", "")
        if outcome == "invalid":
            first = prepared.problems[0]
            error = "; ".join(f"{p.column}: {p.message}" for p in prepared.problems if p.row == row.number) or \
                f"another row of this offer is invalid (row {first.row}, {first.column})"
        out.append(RowResult(row.number, prepared.key, cmap.get(row, "name") or prepared.name, outcome,  # type: ignore[arg-type]
                             **{**kw, "error": error}, cells=row.cells))
    return out


def validate(cfg: ImportConfig, on_line: Callable[[str], None], sandbox: Snapshot | None = None) -> Summary:
    """`bulkoffers validate` / `import --dry-run`: sends nothing. Reports every problem, one line each, and
    writes payloads. Given what the sandbox holds (`validate --online`), also says per offer what an
    import would do to it under --on-existing: create, update (the fields), unchanged, skip or fail."""
    start = time.monotonic()
    loaded = load(cfg)
    summary = Summary(rows=loaded.plan.rows, warnings=loaded.warnings)
    counts = {"valid": 0, "invalid": 0}
    writer = PayloadWriter(cfg.payloads_out) if cfg.payloads_out else None
    api = cfg.target.api
    catalog = Catalog(sandbox.placements, cfg.credentials.sandbox) if sandbox and sandbox.placements is not None \
        else None
    budget = OfferBudget(sandbox.offer_count) if sandbox and sandbox.offers is not None else None
    where_from = loaded.table.where()  # the file, and for a workbook its sheet
    try:
        for prepared in prepared_offers(loaded, api, catalog):
            rows = [r.number for r in prepared.rows]
            if prepared.offer is None:
                counts["invalid"] += len(rows)
                for p in prepared.problems:
                    on_line(f"{where_from}: {p}")
                continue
            body = prepared.body
            assert body is not None
            if sandbox is not None and sandbox.offers is not None:
                d = decide(body, prepared.offer.name, sandbox.offers.get(prepared.offer.name, []), cfg.on_existing, api)
                if d.action == "create" and budget is not None and (full := budget.take()):
                    counts["invalid"] += len(rows)
                    on_line(f"{where_from}: row {rows[0]}, {loaded.cmap.column('name')}: {full}")
                    continue
                counts[d.action] = counts.get(d.action, 0) + len(rows)
                what = {"update": f"update ({d.changes})", "create": "create", "unchanged": "unchanged"}.get(
                    d.action, f"{d.action}: {d.note}")
                where = f"row {rows[0]}" if len(rows) == 1 else f"rows {', '.join(map(str, rows))}"
                on_line(f"{where_from}: {where}, {prepared.offer.name!r}: {what}")
            counts["valid"] += len(rows)
            summary.offers += 1
            if writer:
                writer.write(rows, prepared.key, body)
    finally:
        if writer:
            writer.close()
    summary.counts = counts
    summary.elapsed = time.monotonic() - start
    return summary


def prepared_offers(loaded: Loaded, api: Api, catalog: Catalog | None = None,
                    chunk_rows: int | None = None) -> Iterator[Prepared]:
    """Pass 2: every offer of the file, validated, checked against the sandbox's placements when they
    were read (preflight: names become ids), with its payload built."""
    items = prepare(loaded.rows(chunk_rows), loaded.cmap, loaded.plan, loaded.ctx)
    if catalog is not None:
        items = _checked(items, catalog, loaded.cmap)
    return with_payloads(items, api)


def _checked(items: Iterator[Prepared], catalog: Catalog, cmap: ColumnMap) -> Iterator[Prepared]:
    for prepared in items:
        preflight(prepared, catalog, cmap)
        yield prepared


def with_payloads(items: Iterator[Prepared], api: Api) -> Iterator[Prepared]:
    """Builds and encodes each valid offer's payload as the offer is prepared, so workers only send
    (and a retry sends the very same bytes)."""
    for prepared in items:
        if prepared.offer is not None:
            prepared.body = payload(prepared.offer, api)
            prepared.data = orjson.dumps(prepared.body)
        yield prepared
