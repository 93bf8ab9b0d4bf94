"""Every input format, every cell as text, row numbers as the user sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkoffers.config import ReadOptions
from bulkoffers.errors import InputError
from bulkoffers.reader import Table, detect_encoding

from .conftest import FIXTURES

FORMATS = ["offers.xlsx", "offers.xlsm", "offers.xls", "offers.csv", "offers.tsv", "offers_pipe.txt", "offers_bom_semicolon.csv", "offers.ods"]


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_reads_the_same_rows(name: str) -> None:
    """Every fixture format reads the same rows as text: numbering, leading zeros, dates, whole numbers, NA."""
    table = Table(FIXTURES / name)
    rows = list(table.rows())
    assert table.headers[:2] == ["offer_key", "Name"]  # BOM stripped from the first header
    assert [r.number for r in rows] == list(range(2, 15))
    first = rows[0].cells
    assert first["offer_key"] == "001"  # leading zeros survive
    assert first["Start Date"] == "2026-01-01"
    assert first["End Date"] in ("2027-01-01T18:30:00", "2027-01-01 18:30")
    assert first["Priority"] == "1"  # not 1.0
    na = rows[-1].cells
    assert na["Name"] == "NA" and na["Content"] == "null"  # never turned into NaN
    assert rows[1].cells["Description"] == "Demo fallback offer number 2"
    continuation = rows[4].cells
    assert continuation["Name"] == "" and continuation["Channel"] == "email"


def test_cp1252_file_is_decoded() -> None:
    """A cp1252 file is detected and decoded."""
    path = FIXTURES / "offers_cp1252.csv"
    assert detect_encoding(path) == "cp1252"
    cells = next(Table(path).rows()).cells
    assert cells["Name"] == "Café crème offer" and cells["Description"] == "Prix spécial à 5 €"


def test_blank_rows_keep_numbering_and_are_skipped(tmp_path: Path) -> None:
    """Blank rows are skipped and the rows after them keep the numbers the spreadsheet shows."""
    path = tmp_path / "gaps.csv"
    path.write_text("name,content\nA,x\n,\n\nB,y\n", encoding="utf-8")
    assert [(r.number, r.cells["name"]) for r in Table(path).rows()] == [(2, "A"), (5, "B")]


def test_multiline_cell_counts_as_one_row(tmp_path: Path) -> None:
    """A quoted cell with a newline is one row, numbered as such."""
    path = tmp_path / "multi.csv"
    path.write_text('name,content\nA,"line1\nline2"\nB,z\n', encoding="utf-8")
    rows = list(Table(path).rows())
    assert [(r.number, r.cells["content"]) for r in rows] == [(2, "line1\nline2"), (3, "z")]


def test_csv_streams_in_chunks(tmp_path: Path) -> None:
    """A CSV read in small chunks gives every row with its number."""
    path = tmp_path / "big.csv"
    path.write_text("name\n" + "".join(f"n{i}\n" for i in range(1000)), encoding="utf-8")
    rows = list(Table(path, ReadOptions(chunk_rows=7)).rows())
    assert len(rows) == 1000 and rows[-1].number == 1001 and rows[-1].cells["name"] == "n999"


def test_forced_delimiter(tmp_path: Path) -> None:
    """--delimiter overrides sniffing."""
    path = tmp_path / "x.txt"
    path.write_text("name;content\nA;b,c\n", encoding="utf-8")
    assert next(Table(path, ReadOptions(delimiter=";")).rows()).cells == {"name": "A", "content": "b,c"}


def test_sheet_by_name_and_index() -> None:
    """--sheet takes a sheet name or a 0-based index."""
    assert Table(FIXTURES / "offers.xlsx", ReadOptions(sheet="Offers")).headers[0] == "offer_key"
    assert Table(FIXTURES / "offers.xlsx", ReadOptions(sheet=1)).headers == ["This sheet is not offers"]


@pytest.mark.parametrize("sheet", ["Nope", 5])
def test_unknown_sheet_is_a_clear_error(sheet: str | int) -> None:
    """An unknown sheet is an InputError naming it and --sheet."""
    with pytest.raises(InputError, match="sheet .* not found.*--sheet"):
        Table(FIXTURES / "offers.xlsx", ReadOptions(sheet=sheet))


def test_unreadable_inputs(tmp_path: Path) -> None:
    """A missing file, an unsupported type, a fake workbook and an empty file are InputErrors saying which."""
    with pytest.raises(InputError, match="no such file"):
        Table(tmp_path / "missing.csv")
    (tmp_path / "a.pdf").write_text("x")
    with pytest.raises(InputError, match="unsupported file type .pdf"):
        Table(tmp_path / "a.pdf")
    (tmp_path / "fake.xlsx").write_text("not a zip")
    with pytest.raises(InputError, match="cannot read spreadsheet"):
        Table(tmp_path / "fake.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError):
        Table(tmp_path / "empty.csv")


def test_ragged_csv_line_names_the_row(tmp_path: Path) -> None:
    """A line with more cells than the header stops the read naming the line, after the rows before it."""
    path = tmp_path / "ragged.csv"
    path.write_text("name,content\nA,b\nB,c,d,e\n", encoding="utf-8")
    table = Table(path)
    got = []
    with pytest.raises(InputError, match="ragged.csv: line 3 has 4 cells but the header has 2"):
        for row in table.rows():
            got.append(row.cells["name"])


@pytest.mark.parametrize("name", ["offers.csv", "offers_cp1252.csv", "offers.xlsx", "offers.ods"])
def test_the_first_full_pass_also_gives_the_input_digest(name: str) -> None:
    """The run record's input identity (SHA-256) comes from the pass that reads the file anyway; a pass
    cut short gives none, since it did not see the whole file."""
    import hashlib

    table = Table(FIXTURES / name, ReadOptions(chunk_rows=2))
    partial = table.rows()
    next(partial)
    partial.close()
    assert table.digest is None or table.kind == "excel"  # a sheet is read whole, digest and all
    assert sum(1 for _ in table.rows()) > 0
    assert table.digest == hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest()
