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
    notes: dict[str, str] | None = None  # header → why its cell could not be read (a formula without a value)


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA: columns as the spreadsheet names them."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),  # before UTF-16: FF FE 00 00
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _wide_encoding(head: bytes) -> str | None:
    """UTF-16/32 from a byte-order mark, or UTF-16 without one from its zero bytes (text that is mostly
    Latin has a zero in every other byte: "Unicode text" as Excel and Notepad save it)."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    pairs = len(head) // 2
    if pairs >= 8:
        even = sum(1 for b in head[0:pairs * 2:2] if b == 0)
        odd = sum(1 for b in head[1:pairs * 2:2] if b == 0)
        if odd > 0.4 * pairs and even == 0:
            return "utf-16-le"
        if even > 0.4 * pairs and odd == 0:
            return "utf-16-be"
    return None


def detect_encoding(path: Path) -> str:
    """UTF-16/32 when the file says so (byte-order mark) or looks so; else utf-8-sig when the whole
    file decodes as UTF-8 (BOM or not), else cp1252, else latin-1. Checked incrementally so a large
    file is never held in memory."""
    with path.open("rb") as fh:
        wide = _wide_encoding(fh.read(4096))
    if wide is not None:
        return wide
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


def check_readable(path: Path) -> None:
    """The checks that need no reading: the file is there and of a kind bulkoffers reads (done before
    anything starts, the in-process emulator included)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a spreadsheet")
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES and suffix not in EXCEL_SUFFIXES:
        raise InputError(f"{path}: unsupported file type {suffix or '(none)'}",
                         hint="use .csv, .tsv, .txt, .xlsx, .xlsm, .xls or .ods")


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
        self._blank_formulas: dict[int, dict[int, str]] = {}
        self.digest: str | None = None
        self.warnings: list[str] = []  # what reading found that the user should know (merged cells)
        check_readable(path)
        suffix = path.suffix.lower()
        if suffix in CSV_SUFFIXES:
            self.kind = "csv"
            self.encoding = detect_encoding(path)
            self.delimiter = options.delimiter or sniff_delimiter(path, self.encoding)
        elif suffix in EXCEL_SUFFIXES:
            self.kind = "excel"
            self.engine = options.excel_engine or self._excel_engine(suffix)
        self.headers = self._read_headers()

    @staticmethod
    def _excel_engine(suffix: str) -> str:
        try:
            import python_calamine  # noqa: F401  (fast Rust reader for every Excel/ODF format)
            return "calamine"
        except ImportError:
            return _FALLBACK_ENGINES[suffix]

    def _read_headers(self) -> list[str]:
        """The header row as pandas names the columns (it renames a repeated `Name` to `Name.1`), with
        the names as written kept in `written` and repeats in `repeated` (name → column letters)."""
        if self.kind == "csv":
            frame = self._csv_reader(nrows=0)
            raw = self._csv_reader(nrows=1, header=None)
        else:
            frame = self._excel_frame(nrows=0)
            raw = self._excel_frame(nrows=1, header=None)
        headers = [str(h).strip() for h in frame.columns]
        if not headers or all(h.startswith("Unnamed:") or not h for h in headers):
            raise InputError(f"{self.path}: no header row found", hint="the first row must name the columns")
        written = [excel_text(v).strip() for v in (raw.iloc[0].tolist() if len(raw) else [])]
        self.written = dict(zip(headers, written)) if len(written) == len(headers) else {h: h for h in headers}
        seen: dict[str, list[str]] = {}
        for i, name in enumerate(written):
            if name:
                seen.setdefault(name, []).append(column_letter(i))
        self.repeated = {name: letters for name, letters in seen.items() if len(letters) > 1}
        return headers

    def where(self) -> str:
        """The file, and for a workbook the sheet that was read."""
        if self.kind != "excel":
            return str(self.path)
        return f"{self.path}, sheet {self.sheet_name()!r}"

    def sheet_name(self) -> str:
        """The name of the sheet read (the first unless --sheet says otherwise)."""
        sheet = self.options.sheet
        return sheet if isinstance(sheet, str) else self.sheet_names()[sheet or 0]

    def sheet_names(self) -> list[str]:
        """The workbook's sheets, in order (empty for a CSV)."""
        if self.kind != "excel":
            return []
        import pandas as pd

        try:
            with pd.ExcelFile(self.path, engine=self.engine) as book:  # type: ignore[arg-type]
                return [str(n) for n in book.sheet_names]
        except Exception as exc:  # each Excel engine raises its own types for corrupt files
            raise InputError(f"{self.path}: cannot read spreadsheet: {type(exc).__name__}: {exc}") from exc

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
                    if not isinstance(chunk.index, pd.RangeIndex):
                        # More cells in the first row than in the header: pandas would take the extras
                        # as row labels and shift every column. Said as for any later line.
                        cells = len(headers) + chunk.index.nlevels
                        raise InputError(f"{self.path}: line 2 has {cells} cells but the header has {len(headers)}",
                                         hint="remove the extra cells, or quote values that contain the delimiter "
                                              f"{self.delimiter!r}")
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
            self._blank_formulas = self._inspect_sheet()
        formulas = self._blank_formulas
        for values in self._sheet.itertuples(index=False, name=None):
            number += 1
            texts = [excel_text(v) for v in values]
            notes = None
            if number in formulas:
                notes = {headers[col]: f"holds the formula {text} with no saved value (the file was written by a "
                                       "program that does not calculate); open and save it in Excel, or paste "
                                       "the values" for col, text in formulas[number].items() if col < len(headers)}
            if any(t.strip() for t in texts) or notes:
                yield SourceRow(number, dict(zip(headers, texts)), notes)

    def _inspect_sheet(self) -> dict[int, dict[int, str]]:
        """What the values alone do not show: formulas without a saved value (row → column index →
        formula) and merged cells, which give every cell but the first of the range an empty value
        (warned in `warnings`)."""
        suffix = self.path.suffix.lower()
        if suffix in (".xlsx", ".xlsm"):
            formulas, merges = xlsx_blind_spots(self.path, self.sheet_name())
        else:
            formulas, merges = {}, self._calamine_merges()
        for first, last in merges:
            if last[0] >= 1:  # below the header: rows read with empty cells
                ref = f"{column_letter(first[1])}{first[0] + 1}:{column_letter(last[1])}{last[0] + 1}"
                self.warnings.append(
                    f"{self.where()}: cells {ref} are merged; only {column_letter(first[1])}{first[0] + 1} holds the "
                    "value and the other cells of the range read as empty (unmerge them and fill each cell)")
        return formulas

    def _calamine_merges(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        if self.engine != "calamine":
            return []  # (without python-calamine, merged cells are not looked for in .xls and .ods)
        import python_calamine

        book = python_calamine.CalamineWorkbook.from_path(str(self.path))
        try:
            return list(book.get_sheet_by_name(self.sheet_name()).merged_cell_ranges or [])
        finally:
            book.close()


_CELL_REF = re.compile(r"([A-Z]+)(\d+)")
# A sheet with no formula and no merged cell (most of them) is skipped after a byte search.
_BLIND_SPOT = re.compile(rb"<(?:\w+:)?f[\s>/]|mergeCell")


def _column_index(letters: str) -> int:
    index = 0
    for ch in letters:
        index = index * 26 + ord(ch) - 64
    return index - 1


def xlsx_blind_spots(path: Path, sheet: str) -> tuple[dict[int, dict[int, str]], list[tuple[tuple[int, int], tuple[int, int]]]]:
    """Formulas without a saved value (row number → column index → "=formula") and merged ranges
    ((row, col) of first and last cell, 0-based) of one sheet of an .xlsx/.xlsm.

    Hand-written over the sheet's XML because the readers cannot tell: calamine gives such a formula
    as an empty cell and has no formula API, and openpyxl would have to load the whole workbook twice
    (formulas, then values), ~7 times slower than the read itself."""
    import zipfile
    from xml.etree import ElementTree

    try:
        with zipfile.ZipFile(path) as book:
            part = _sheet_part(book, sheet)
            if part is None:
                return {}, []
            with book.open(part) as fh:  # a cheap pass first: most sheets have neither
                tail, found = b"", False
                while chunk := fh.read(1 << 20):
                    if _BLIND_SPOT.search(tail + chunk):
                        found = True
                        break
                    tail = chunk[-16:]
            if not found:
                return {}, []
            formulas: dict[int, dict[int, str]] = {}
            merges = []
            with book.open(part) as fh:
                for _, elem in ElementTree.iterparse(fh, events=("end",)):
                    tag = elem.tag.rsplit("}", 1)[-1]
                    if tag == "c":
                        f = v = inline = None
                        for child in elem:
                            name = child.tag.rsplit("}", 1)[-1]
                            f, v, inline = (child if name == "f" else f, child if name == "v" else v,
                                            child if name == "is" else inline)
                        if f is not None and inline is None and (v is None or not (v.text or "").strip()):
                            match = _CELL_REF.fullmatch(elem.get("r", ""))
                            if match:
                                formulas.setdefault(int(match[2]), {})[_column_index(match[1])] = \
                                    f"={f.text}" if f.text else "(a shared formula)"
                        elem.clear()
                    elif tag == "row":
                        elem.clear()
                    elif tag == "mergeCell":
                        corners = [_CELL_REF.fullmatch(p) for p in elem.get("ref", "").split(":")]
                        if len(corners) == 2 and all(corners):
                            a, b = corners
                            assert a is not None and b is not None
                            merges.append(((int(a[2]) - 1, _column_index(a[1])), (int(b[2]) - 1, _column_index(b[1]))))
            return formulas, merges
    except (zipfile.BadZipFile, ElementTree.ParseError, KeyError, OSError):
        return {}, []  # the reader itself said whatever was wrong with the file


def _sheet_part(book: Any, sheet: str) -> str | None:
    """The zip member holding the named sheet (workbook.xml names it, its rels file locates it)."""
    from xml.etree import ElementTree

    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    rel = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
    workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
    rid = next((s.get(f"{rel}id") for s in workbook.iter(f"{main}sheet") if s.get("name") == sheet), None)
    rels = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
    target = next((r.get("Target", "") for r in rels if r.get("Id") == rid), None)
    if not target:
        return None
    return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
