"""The results CSV (one line per input row) and failures CSV (original columns + error, ready to feed
back to `import`). The only writer of output files. Lines are flushed as rows finish; when the run
ends both files are rewritten in input-row order."""

from __future__ import annotations

import csv
import json
import os
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from .errors import ConfigError

Outcome = Literal["created", "failed", "invalid", "skipped"]
RESULT_COLUMNS = ("row", "offer_key", "name", "outcome", "id", "at_id", "http_status", "attempts", "error",
                  "elapsed_ms")
NOT_ATTEMPTED = "not attempted: "


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
    cells: dict[str, str] = field(default_factory=dict, repr=False, compare=False)  # the source row

    @property
    def needs_rerun(self) -> bool:
        """Rows that belong in failures.csv: fix (if needed) and import again."""
        return self.outcome in ("failed", "invalid") or self.error.startswith(NOT_ATTEMPTED)

    def line(self) -> list[str]:
        return [str(self.row), self.offer_key, self.name, self.outcome, self.id, self.at_id,
                "" if self.http_status is None else str(self.http_status), str(self.attempts), self.error,
                str(self.elapsed_ms)]


class Redactor:
    """Replaces secret values wherever text leaves the process."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


def check_writable(*paths: Path, force: bool) -> None:
    for path in paths:
        if path.exists() and not force:
            raise ConfigError(f"{path} already exists", hint="pass --force to overwrite it, or choose another path")
        if not path.parent.exists():
            raise ConfigError(f"folder {path.parent} does not exist", hint="create it or choose another path")


class _SortedCsv:
    """A CSV streamed in completion order, rewritten in row order at close."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self._fh: IO[str] = path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._fh)
        self._csv.writerow(header)
        self._order = array("q")
        self._fh.flush()

    def write(self, row: int, values: list[str]) -> None:
        self._csv.writerow(values)
        self._fh.flush()
        self._order.append(row)

    def close(self) -> None:
        self._fh.close()
        if list(self._order) == sorted(self._order):
            return
        with self.path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            lines = sorted(zip(self._order, reader), key=lambda pair: pair[0])
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(line for _, line in lines)
        os.replace(tmp, self.path)


class ResultsWriter:
    def __init__(self, results: Path, failures: Path, source_headers: list[str], redact: Redactor = Redactor()) -> None:
        self.results_path, self.failures_path = results, failures
        self._headers = list(source_headers)
        # A failures.csv fed back in already has an error column: reuse it instead of adding a second.
        self._error_col = next((i for i, h in enumerate(self._headers) if h.strip().lower() == "error"), None)
        fail_header = self._headers + ([] if self._error_col is not None else ["error"])
        self._redact = redact
        self._results = _SortedCsv(results, list(RESULT_COLUMNS))
        self._failures = _SortedCsv(failures, fail_header)
        self.counts: Counter[str] = Counter()
        self.failures_written = 0

    def write(self, result: RowResult) -> None:
        result_line = result.line()
        result_line[8] = self._redact(result_line[8])
        self._results.write(result.row, result_line)
        self.counts[result.outcome] += 1
        if result.error.startswith(NOT_ATTEMPTED):
            self.counts["not_attempted"] += 1
        if result.needs_rerun:
            values = [result.cells.get(h, "") for h in self._headers]
            if self._error_col is not None:
                values[self._error_col] = result_line[8]
            else:
                values.append(result_line[8])
            self._failures.write(result.row, values)
            self.failures_written += 1

    def close(self) -> None:
        self._results.close()
        self._failures.close()
        if not self.failures_written:
            self.failures_path.unlink(missing_ok=True)  # no failures, no file to confuse anyone


class PayloadWriter:
    """`--payloads-out`: one JSON object per valid offer: its rows and the exact body that would be sent."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("w", encoding="utf-8")

    def write(self, rows: list[int], offer_key: str, body: dict[str, Any]) -> None:
        self._fh.write(json.dumps({"rows": rows, "offer_key": offer_key, "payload": body}, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._fh.close()
