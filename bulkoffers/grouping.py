"""Step 3 of the flow: rows → offers across the whole file, in two passes. Pass 1 (`plan`) learns where
multi-row offers end and which names repeat; pass 2 (`prepare`) yields every offer as soon as its last
row has been read, validated, with the file-wide checks. Memory stays flat in the number of rows.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .columns import FIELDS, ColumnMap
from .errors import RowError
from .offers import MAX_OFFERS, MAX_PLACEMENTS, Context, Prepared, build_offer
from .reader import SourceRow



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
                prepared.problems.append(RowError(first.number, cmap.column("name"),
                                                 f"{name!r} is also the name of offer_key {other[0]!r} (row {other[1]}); "
                                                 "names must be unique or the run creates duplicate offers"))
        if not prepared.problems:
            offers += 1
            if offers > MAX_OFFERS:
                prepared.problems.append(RowError(first.number, cmap.column("name"),
                                                 f"offer #{offers} of this file; Adobe's guardrail is {MAX_OFFERS} "
                                                 "offers per sandbox: split the file across sandboxes"))
        if prepared.problems:
            prepared.offer = None
        yield prepared
