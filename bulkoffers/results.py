"""The results CSV (one line per input row) and failures CSV (original columns + error, ready to feed
back to `import`), the rollback report and payload dumps. The journal is in runrecord.py. Lines are flushed as rows finish; when the run
ends both files are rewritten in input-row order."""

from __future__ import annotations

import csv
import mmap
import os
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from .errors import ConfigError
from .redact import Redactor

Outcome = Literal["created", "updated", "unchanged", "failed", "invalid", "skipped"]
RESULT_COLUMNS = ("row", "offer_key", "name", "outcome", "id", "at_id", "http_status", "attempts", "error",
                  "elapsed_ms", "changes")
DONE = ("created", "updated", "unchanged")  # outcomes after which the row's offer exists with its content
NOT_ATTEMPTED = "not attempted: "
SOURCE_ROW = "source_row"  # failures.csv: the row in the run's input, so `retry --from` can match it


def _column(header: list[str], name: str) -> int:
    """Index of `name` in header (case-insensitive), appending it when absent."""
    for i, h in enumerate(header):
        if h.strip().lower() == name:
            return i
    header.append(name)
    return len(header) - 1


@dataclass(frozen=True)
class RowResult:
    row: int
    offer_key: str
    name: str
    outcome: Outcome
    id: str = ""
    at_id: str = ""
    http_status: int | None = None
    attempts: int = 0
    error: str = ""
    elapsed_ms: int = 0
    changes: str = ""  # updated: the fields the update changed
    cells: dict[str, str] = field(default_factory=dict, repr=False, compare=False)  # the source row

    @property
    def needs_rerun(self) -> bool:
        """Rows that belong in failures.csv: fix (if needed) and import again."""
        return self.outcome in ("failed", "invalid") or self.error.startswith(NOT_ATTEMPTED)

    def line(self) -> list[str]:
        return [str(self.row), self.offer_key, self.name, self.outcome, self.id, self.at_id,
                "" if self.http_status is None else str(self.http_status), str(self.attempts), self.error,
                str(self.elapsed_ms), self.changes]


@dataclass
class Summary:
    """What a run (or a dry run) did: rows and offers seen, outcomes counted, where the files went."""

    rows: int = 0
    offers: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # outcome → rows; among them "not_attempted"
    # (skipped, the run stopped first) and "may_exist" (failed, but an answer was lost: it may be there)
    elapsed: float = 0.0
    warnings: list[str] = field(default_factory=list)
    results: str = ""
    failures: str = ""
    pace: float | None = None  # the pace in force at the end (requests/s)
    rate_found: float | None = None  # the pace just under the API's limit, when the run met one (429s)
    auto: bool = False  # the pace was found (--rate auto), not fixed

    @property
    def created(self) -> int:
        return self.counts.get("created", 0)

    @property
    def all_done(self) -> bool:
        """Every row is known to exist once with its content (created, updated, unchanged), or was skipped
        on purpose because its offer existed already."""
        done = sum(self.counts.get(k, 0) for k in DONE)
        return self.rows > 0 and done + self.counts.get("skipped", 0) - self.counts.get("not_attempted", 0) == self.rows


def check_writable(*paths: Path, force: bool) -> None:
    for path in paths:
        if path.exists() and not force:
            raise ConfigError(f"{path} already exists", hint="pass --force to overwrite it, or choose another path")
        if not path.parent.exists():
            raise ConfigError(f"folder {path.parent} does not exist", hint="create it or choose another path")


class _ByteCounter:
    """The file object behind csv.writer: encodes each line and returns its length in bytes, so
    `writerow` tells where every line starts without asking the file (`tell` on text files is slow)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        self._fh.write(data)
        return len(data)


class _SortedCsv:
    """A CSV streamed in completion order, rewritten in row order at close.

    Lines go through the file's buffer (the journal, not this file, is the crash-safe record) and
    reach the disk at least every FLUSH_EVERY seconds while rows finish, and on `flush()`. Each
    line's row and byte span are kept (16 bytes a line), so the final sort copies byte ranges through
    mmap instead of parsing the CSV back."""

    FLUSH_EVERY = 0.5

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self._fh: IO[bytes] = path.open("wb")
        self._csv = csv.writer(_ByteCounter(self._fh))
        self._start = self._csv.writerow(header)
        self._order = array("q")  # row of each line, in file order
        self._ends = array("q")  # byte offset where each line ends
        self._end = self._start
        self._fh.flush()
        self._flushed = time.monotonic()

    def write(self, row: int, values: list[str]) -> None:
        self._end += self._csv.writerow(values)
        self._order.append(row)
        self._ends.append(self._end)
        if (now := time.monotonic()) - self._flushed >= self.FLUSH_EVERY:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        self._fh.flush()
        self._flushed = time.monotonic() if now is None else now

    def close(self) -> None:
        self._fh.close()
        import numpy as np  # an import has it loaded already (pandas); a rollback loads it here

        order = np.frombuffer(self._order, dtype=np.int64)
        if len(order) < 2 or bool((order[1:] >= order[:-1]).all()):
            return
        lines = np.argsort(order, kind="stable")  # 8 bytes a line, not a Python list of them
        ends = self._ends
        tmp = self.path.with_name(self.path.name + ".tmp")
        with self.path.open("rb") as src, mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ) as mm, \
                tmp.open("wb") as out:
            out.write(mm[:self._start])
            for at in range(0, len(lines), 1 << 16):
                for i in lines[at:at + (1 << 16)].tolist():
                    out.write(mm[ends[i - 1] if i else self._start:ends[i]])
        os.replace(tmp, self.path)


class ResultsWriter:
    def __init__(self, results: Path, failures: Path, source_headers: list[str], redact: Redactor | None = None) -> None:
        self.results_path, self.failures_path = results, failures
        self._headers = list(source_headers)
        # A failures.csv fed back in already has these columns: reuse them instead of adding twins.
        fail_header = list(self._headers)
        self._row_col = _column(fail_header, SOURCE_ROW)
        self._error_col = _column(fail_header, "error")
        self._redact = redact or Redactor()
        self._fail_header = fail_header
        self._results = _SortedCsv(results, list(RESULT_COLUMNS))
        self._failures = _SortedCsv(failures, fail_header)
        self.counts: Counter[str] = Counter()
        self.failures_written = 0

    def write(self, result: RowResult, in_doubt: bool = False) -> None:
        """One row's line; `in_doubt`: it failed but may exist (counted as "may_exist")."""
        result_line = result.line()
        result_line[8] = self._redact(result_line[8])
        self._results.write(result.row, result_line)
        self.counts[result.outcome] += 1
        if result.error.startswith(NOT_ATTEMPTED):
            self.counts["not_attempted"] += 1
        if in_doubt and result.outcome == "failed":
            self.counts["may_exist"] += 1
        if result.needs_rerun:
            values = [result.cells.get(h, "") for h in self._headers] + [""] * 2
            values[self._row_col] = str(result.row)
            values[self._error_col] = result_line[8]
            self._failures.write(result.row, values[: len(self._fail_header)])
            self.failures_written += 1

    def flush(self) -> None:
        self._results.flush()
        self._failures.flush()

    def close(self) -> None:
        self._results.close()
        self._failures.close()
        if not self.failures_written:
            self.failures_path.unlink(missing_ok=True)  # no failures, no file to confuse anyone


class PayloadWriter:
    """`--payloads-out`: one JSON object per valid offer: its rows and the exact body that would be sent."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("wb")

    def write(self, rows: list[int], offer_key: str, body: dict[str, Any]) -> None:
        self._fh.write(orjson.dumps({"rows": rows, "offer_key": offer_key, "payload": body}) + b"\n")

    def close(self) -> None:
        self._fh.close()


ROLLBACK_COLUMNS = ("row", "name", "id", "at_id", "outcome", "http_status", "attempts", "error")


class RollbackWriter:
    """The rollback's own CSV: one line per created row of the run, in row order at the end."""

    def __init__(self, path: Path, redact: Redactor | None = None) -> None:
        self._csv = _SortedCsv(path, list(ROLLBACK_COLUMNS))
        self._redact = redact or Redactor()

    def write(self, row: int, name: str, offer_id: str, at_id: str, outcome: str, status: int | None,
              attempts: int, error: str) -> None:
        self._csv.write(row, [str(row), name, offer_id, at_id, outcome, "" if status is None else str(status),
                              str(attempts), self._redact(error)])

    def close(self) -> None:
        self._csv.close()


VERIFY_COLUMNS = ("row", "name", "id", "verified", "copies", "action", "detail")


class VerifyWriter:
    """`verify`'s CSV beside the results: one line per row the run created, its verdict, the other offers
    with its name and content, and what --fix did."""

    def __init__(self, path: Path, redact: Redactor | None = None) -> None:
        self._csv = _SortedCsv(path, list(VERIFY_COLUMNS))
        self._redact = redact or Redactor()

    def write(self, row: int, name: str, offer_id: str, status: str, copies: str, action: str, detail: str) -> None:
        self._csv.write(row, [str(row), name, offer_id, status, copies, action, self._redact(detail)])

    def __enter__(self) -> VerifyWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._csv.close()
