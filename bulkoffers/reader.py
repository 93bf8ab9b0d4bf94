"""Spreadsheet → rows. The only module that imports pandas.

Every cell arrives as text: `NA`, `None`, `null` and leading zeros survive, empty cells are "",
Excel dates become ISO dates. CSVs stream in chunks; each row keeps the number the user sees in
the spreadsheet (header = row 1), so messages can point at it.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from .config import ReadOptions
from .errors import InputError

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
# Used when python-calamine is missing: pandas' own engine per format.
_FALLBACK_ENGINES = {".xlsx": "openpyxl", ".xlsm": "openpyxl", ".xls": "xlrd", ".ods": "odf"}


@dataclass(frozen=True)
class SourceRow:
    number: int  # as the user sees it: the header is row 1
    cells: dict[str, str]  # header → text


def detect_encoding(path: Path) -> str:
    """utf-8-sig when the whole file decodes as UTF-8 (BOM or not), else cp1252, else latin-1.
    Checked incrementally so a large file is never held in memory."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        return "utf-8-sig"
    except UnicodeDecodeError:
        pass
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                chunk.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined (0x81, 0x8d, ...)
        return "latin-1"


def sniff_delimiter(path: Path, encoding: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    with path.open(encoding=encoding, newline="") as fh:
        sample = fh.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def excel_text(value: Any) -> str:
    """An Excel cell as the user reads it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(timespec="seconds" if not value.microsecond else "milliseconds")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 1 as 1.0
    # pandas may hand back its own Timestamp/NaT types for date cells
    if type(value).__name__ == "Timestamp":
        return excel_text(value.to_pydatetime())
    if type(value).__name__ == "NaTType":
        return ""
    return str(value)


class _Hashing(io.RawIOBase):
    """A binary file that hashes what is read through it, so the pass that reads the input anyway
    also gives its SHA-256 (the run record's input identity) without a read of its own."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fh = path.open("rb")
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._fh.readinto(buffer)
        if n:
            self.sha256.update(memoryview(buffer)[:n])
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


class Table:
    """A readable spreadsheet: `headers`, and `rows()` which may be iterated more than once.
    `digest` is the file's SHA-256, known once one pass has read the whole file."""

    def __init__(self, path: Path, options: ReadOptions = ReadOptions()) -> None:
        self.path, self.options = path, options
        self._sheet: Any = None  # an Excel sheet, once read
        self.digest: str | None = None
        suffix = path.suffix.lower()
        if not path.exists():
            raise InputError(f"{path}: no such file")
        if path.is_dir():
            raise InputError(f"{path}: is a folder, not a spreadsheet")
        if suffix in CSV_SUFFIXES:
            self.kind = "csv"
            self.encoding = detect_encoding(path)
            self.delimiter = options.delimiter or sniff_delimiter(path, self.encoding)
        elif suffix in EXCEL_SUFFIXES:
            self.kind = "excel"
            self.engine = options.excel_engine or self._excel_engine(suffix)
        else:
            raise InputError(f"{path}: unsupported file type {suffix or '(none)'}",
                             hint="use .csv, .tsv, .txt, .xlsx, .xlsm, .xls or .ods")
        self.headers = self._read_headers()

    @staticmethod
    def _excel_engine(suffix: str) -> str:
        try:
            import python_calamine  # noqa: F401  (fast Rust reader for every Excel/ODF format)
            return "calamine"
        except ImportError:
            return _FALLBACK_ENGINES[suffix]

    def _read_headers(self) -> list[str]:
        if self.kind == "csv":
            frame = self._csv_reader(nrows=0)
        else:
            frame = self._excel_frame(nrows=0)
        headers = [str(h).strip() for h in frame.columns]
        if not headers or all(h.startswith("Unnamed:") or not h for h in headers):
            raise InputError(f"{self.path}: no header row found", hint="the first row must name the columns")
        return headers

    def _csv_reader(self, source: Any = None, **kwargs: Any) -> Any:
        import pandas as pd

        try:
            return pd.read_csv(
                source or self.path, sep=self.delimiter, dtype=str, keep_default_na=False, na_filter=False,
                encoding=self.encoding, skip_blank_lines=False, engine="c", **kwargs,
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"{self.path}: cannot read as CSV: {str(exc).strip().splitlines()[0]}",
                             hint="check the delimiter (--delimiter) and quoting") from exc

    def _excel_frame(self, **kwargs: Any) -> Any:
        import pandas as pd

        sheet = self.options.sheet if self.options.sheet is not None else 0
        source: Any = self.path
        if not kwargs:  # the whole sheet: read the bytes once, for pandas and for the digest
            data = self.path.read_bytes()
            self.digest = hashlib.sha256(data).hexdigest()
            source = io.BytesIO(data)
        try:
            return pd.read_excel(source, sheet_name=sheet, dtype=object, engine=self.engine,  # type: ignore[call-overload]
                                 keep_default_na=False, na_filter=False, **kwargs)
        except ValueError as exc:
            msg = str(exc)
            if "not found" in msg.lower() or "out of range" in msg.lower() or "index" in msg.lower():
                raise InputError(f"{self.path}: sheet {sheet!r} not found: {msg}",
                                 hint="name an existing sheet with --sheet NAME or --sheet INDEX (0-based)") from exc
            raise InputError(f"{self.path}: cannot read spreadsheet: {msg}") from exc
        except Exception as exc:  # each Excel engine raises its own types for corrupt files
            raise InputError(f"{self.path}: cannot read spreadsheet: {type(exc).__name__}: {exc}",
                             hint="is it really a spreadsheet of that type? Save it again or export it as CSV") from exc

    def rows(self, chunk_rows: int | None = None) -> Iterator[SourceRow]:
        """Yields non-blank rows with their spreadsheet row numbers. Blank rows keep their number but
        are skipped. CSVs are parsed `chunk_rows` at a time (default: the read options'); an Excel
        sheet is read whole once and kept for the next pass (its reader cannot stream)."""
        headers = self.headers
        number = 1
        if self.kind == "csv":
            import pandas as pd

            hashing = _Hashing(self.path) if self.digest is None else None
            source = io.BufferedReader(hashing, 1 << 16) if hashing is not None else None
            reader = self._csv_reader(source, chunksize=chunk_rows or self.options.chunk_rows)
            try:
                for chunk in reader:
                    # A plain list of lists iterates far faster than pandas' own row accessors.
                    for values in chunk.to_numpy(dtype=object).tolist():
                        number += 1
                        if any(values):
                            yield SourceRow(number, dict(zip(headers, values)))
            except (pd.errors.ParserError, UnicodeDecodeError) as exc:
                ragged = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
                if ragged:
                    expected, line, saw = ragged.groups()
                    raise InputError(f"{self.path}: line {line} has {saw} cells but the header has {expected}",
                                     hint="remove the extra cells, or quote values that contain the delimiter "
                                          f"{self.delimiter!r}") from exc
                raise InputError(f"{self.path}: cannot read past row {number}: {str(exc).strip()}",
                                 hint="a row has more cells than the header, or an unclosed quote; fix it "
                                      "and run again") from exc
            finally:
                reader.close()
                if source is not None:
                    source.close()
            if hashing is not None:  # read to the end: the digest covers the whole file
                self.digest = hashing.sha256.hexdigest()
            return
        if self._sheet is None:
            self._sheet = self._excel_frame()
        for values in self._sheet.itertuples(index=False, name=None):
            number += 1
            texts = [excel_text(v) for v in values]
            if any(t.strip() for t in texts):
                yield SourceRow(number, dict(zip(headers, texts)))
