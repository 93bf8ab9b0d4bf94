"""Bad input and misuse, as a new user meets them: every case ends with one clear line that names the
file (and sheet), row and column where it applies, with the right exit code, no traceback, and the
valid rows still counted.

CORPUS is the table of every bad input this file covers; each entry runs the real command in-process
(click's CliRunner: the same code as the installed command, without an interpreter start per case).
The cases that need a real process (standard input closed, Ctrl-C, a run to resume) follow it.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from bulkoffers.cli import main
from bulkoffers.emulator import EmulatorServer

from .conftest import FIXTURES, cli_env, emulator_args, run_cli

HEADER = ["name", "channel", "placement", "component_type", "delivery_url"]


def row(name: str, **over: str) -> list[str]:
    cells = {"name": name, "channel": "web", "placement": "offerPlacementWeb01", "component_type": "imagelink",
             "delivery_url": f"https://cdn.example.com/{len(name)}.png", **over}
    return [cells[h] for h in HEADER] + [v for k, v in over.items() if k not in HEADER]


def text_csv(lines: list[list[str]], header: list[str] = HEADER) -> str:
    out = [",".join(header)] + [",".join(f'"{c}"' if "," in c or "\n" in c else c for c in line) for line in lines]
    return "\n".join(out) + "\n"


def make_csv(lines: list[list[str]], header: list[str] = HEADER, encoding: str = "utf-8") -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "offers.csv"
        path.write_bytes(text_csv(lines, header).encode(encoding))
        return path
    return make


def make_bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path
    return make


def make_xlsx(sheets: dict[str, list[list[str]]], merge: str | None = None) -> Callable[[Path], Path]:
    """A workbook as a script writes it (openpyxl): formulas are stored without a calculated value."""
    def make(tmp: Path) -> Path:
        book = openpyxl.Workbook()
        book.remove(book.active)
        for title, lines in sheets.items():
            sheet = book.create_sheet(title)
            for line in lines:
                sheet.append(line)
            if merge and title == next(iter(sheets)):
                sheet.merge_cells(merge)
        path = tmp / "offers.xlsx"
        book.save(path)
        return path
    return make


@dataclass
class Case:
    id: str
    make: Callable[[Path], Path] | None  # the input file, written into the test's folder
    args: list[str]  # the command; "{file}" is the input, "{dir}" the test's folder
    exit: int
    says: list[str]  # each must appear in stderr + stdout
    valid: int | None = None  # "N valid" in validate's summary (the valid rows are not lost)
    silent_about: list[str] = field(default_factory=list)  # must not appear (a wrong diagnosis)


V = ["validate", "{file}"]
CORPUS = [
    # --- reading the file ---
    Case("extra cell in the first row", make_csv([row("a") + ["X"], row("b")]), V, 3,
         ["offers.csv: line 2 has 6 cells but the header has 5", "remove the extra cells"],
         silent_about=["is not a channel"]),
    Case("extra cell in a later row", make_csv([row("a"), row("b") + ["X"]]), V, 3,
         ["offers.csv: line 3 has 6 cells but the header has 5"]),
    Case("UTF-16 with BOM", make_csv([row("Äpfel"), row("b")], encoding="utf-16"), V, 0, [], valid=2),
    Case("UTF-16 LE without BOM", make_csv([row("Äpfel"), row("b")], encoding="utf-16-le"), V, 0, [], valid=2),
    Case("UTF-16 BE without BOM", make_csv([row("Äpfel"), row("b")], encoding="utf-16-be"), V, 0, [], valid=2),
    Case("UTF-32 with BOM", make_csv([row("Äpfel"), row("b")], encoding="utf-32"), V, 0, [], valid=2),
    Case("cp1252 (Excel's 'CSV' on Windows)", make_csv([row("Café")], encoding="cp1252"), V, 0, [], valid=1),
    Case("header only", make_csv([]), V, 3, ["offers.csv: has a header row and no rows of offers"]),
    Case("empty file", make_bytes("offers.csv", b""), V, 3, ["offers.csv"]),
    Case("unclosed quote", make_bytes("offers.csv", text_csv([row("a")]).encode() + b'"b,web,x\n'), V, 3,
         ["offers.csv"]),
    Case("no such file", None, ["validate", "{dir}/nope.csv"], 3, ["nope.csv: no such file"]),
    Case("a folder", None, ["validate", "{dir}"], 3, ["is a folder, not a spreadsheet"]),
    Case("unsupported type", make_bytes("offers.json", b"{}"), V, 3, ["unsupported file type .json", ".xlsm"]),
    Case("not really a workbook", make_bytes("offers.xlsx", b"PK\x03\x04 this is no zip"), V, 3,
         ["offers.xlsx: cannot read spreadsheet"]),
    Case("unknown sheet", make_xlsx({"Offers": [HEADER, row("a")]}), [*V, "--sheet", "Nope"], 3,
         ["sheet 'Nope' not found", "--sheet"]),
    Case("--sheet on a CSV", make_csv([row("a")]), [*V, "--sheet", "Offers"], 0,
         ["--sheet is for workbooks"], valid=1),
    Case("bad --delimiter", make_csv([row("a")]), [*V, "--delimiter", "ab"], 2, ["--delimiter must be one character"]),
    # --- columns ---
    Case("no name column", make_csv([["web", "p", "imagelink", "https://x.com/a.png"]], header=HEADER[1:]), V, 2,
         ["offers.csv: no 'name' column among: channel"]),
    Case("a used column twice", make_csv([row("a", Name="z")], header=[*HEADER, "name"]), V, 3,
         ["offers.csv: column 'name' appears 2 times (columns A and F)", "keep one"], silent_about=["name.1"]),
    Case("an unused column twice", make_csv([row("a", notes="x") + ["y"]], header=[*HEADER, "notes", "notes"]), V, 0,
         ["column 'notes' appears 2 times (columns F and G); none of them is used"], valid=1,
         silent_about=["notes.1"]),
    Case("two columns for one field", make_csv([row("a", title="t")], header=[*HEADER, "title"]), V, 2,
         ["columns 'name' and 'title' both map to name"]),
    Case("mapping to an unknown field", make_csv([row("a")]), [*V, "--mapping", "{dir}/map.toml"], 2,
         ["mapping file: column 'x' maps to unknown field 'nope'"]),
    # --- workbooks ---
    Case("offers on the second sheet", make_xlsx({"Notes": [["just notes"], ["hello"]], "Offers": [HEADER, row("a")]}),
         V, 0, ["read sheet 'Offers', the only one with a name column", "'Notes'"], valid=1),
    Case("offers on no sheet or several", make_xlsx({"Notes": [["just notes"]], "A": [HEADER, row("a")],
                                                     "B": [HEADER, row("b")]}), V, 2,
         ["the first sheet, 'Notes', has no 'name' column, and several sheets have one (sheets: 'Notes', 'A', 'B')",
          "--sheet NAME"]),
    Case("formula without a saved value", make_xlsx({"Offers": [[*HEADER, "priority"], [*row("a"), "=1+1"],
                                                                ['="x"&"y"', *row("b")[1:], "3"], [*row("c"), "2"]]}),
         V, 1, ["sheet 'Offers': row 2, priority: holds the formula =1+1 with no saved value", "paste the values",
                "row 3, name: holds the formula", ], valid=1, silent_about=["name: is empty"]),
    Case("merged cells", make_xlsx({"Offers": [HEADER, row("a"), row("b"), row("c")]}, merge="B3:B4"), V, 1,
         ["cells B3:B4 are merged; only B3 holds the value", "row 4, channel: is empty"], valid=2),
    # --- cells ---
    Case("NUL in a cell", make_csv([row("a"), row("b\x00c")]), V, 1,
         ["row 3, name: holds the control character U+0000 at position 2"], valid=1),
    Case("bell in a description", make_csv([row("a", description="ding\x07")], header=[*HEADER, "description"]), V, 1,
         ["row 2, description: holds the control character U+0007"], valid=0),
    Case("12,000-character description", make_csv([row("a", description="x" * 12000), row("b", description="ok")],
                                                  header=[*HEADER, "description"]), V, 1,
         ["row 2, description: is 12,000 bytes; Adobe's guardrail is about 1 KB"], valid=1),
    Case("content over 1 KB in total", make_csv([row("a", component_type="html", delivery_url="", content="y" * 1100)],
                                                header=[*HEADER, "content"]), V, 1, ["row 2, content: is 1,100 bytes"]),
    Case("empty name", make_csv([row(""), row("b")]), V, 1, ["row 2, name: is empty"], valid=1),
    Case("unknown channel", make_csv([row("a", channel="fax")]), V, 1, ["row 2, channel:"]),
    Case("unknown component type", make_csv([row("a", component_type="video")]), V, 1,
         ["row 2, component_type: 'video' is not a component type"]),
    Case("not a URL", make_csv([row("a", delivery_url="cdn/a.png")]), V, 1, ["row 2, delivery_url: 'cdn/a.png' is not"]),
    Case("not a date", make_csv([row("a", start_date="soon")], header=[*HEADER, "start_date"]), V, 1,
         ["row 2, start_date: 'soon' is not a date"]),
    Case("end before start", make_csv([row("a", start_date="2027-01-02", end_date="2027-01-01")],
                                      header=[*HEADER, "start_date", "end_date"]), V, 1,
         ["row 2, end_date: must be after start_date"]),
    Case("not a priority", make_csv([row("a", priority="high")], header=[*HEADER, "priority"]), V, 1,
         ["row 2, priority: 'high' is not a whole number"]),
    Case("not a status", make_csv([row("a", status="live")], header=[*HEADER, "status"]), V, 1,
         ["row 2, status: 'live' is not a status"]),
    Case("invalid JSON content", make_csv([row("a", component_type="json", delivery_url="", content="{x")],
                                          header=[*HEADER, "content"]), V, 1, ["row 2, content: is not valid JSON"]),
    Case("not a language tag", make_csv([row("a", language="english!")], header=[*HEADER, "language"]), V, 1,
         ["row 2, language: 'english!' is not a BCP 47 language tag"]),
    Case("one offer, two descriptions", make_csv([row("a", offer_key="k", description="one"),
                                                  row("a", offer_key="k", description="two", placement="p2")],
                                                 header=[*HEADER, "offer_key", "description"]), V, 1,
         ["row 3, description: 'two' differs from row 2's 'one'"]),
    # --- flags, checked before anything starts (an emulator included) ---
    Case("negative --rate", make_csv([row("a")]), ["import", "{file}", "--emulator", "--rate", "-1"], 2,
         ["--rate must be positive"], silent_about=["emulator: http"]),
    Case("--max-rate 0", make_csv([row("a")]), ["import", "{file}", "--emulator", "--rate", "auto", "--max-rate", "0"],
         2, ["--max-rate must be positive"], silent_about=["emulator: http"]),
    Case("--rate neither number nor auto", make_csv([row("a")]), ["import", "{file}", "--rate", "fast"], 2,
         ["'fast' is neither a number of requests per second nor auto"]),
    Case("--concurrency 0", make_csv([row("a")]), ["import", "{file}", "--emulator", "--concurrency", "0"], 2,
         ["--concurrency must be between 1 and 1024"], silent_about=["emulator: http"]),
    Case("missing input with --emulator", None, ["import", "{dir}/nope.csv", "--emulator"], 3,
         ["nope.csv: no such file"], silent_about=["emulator: http"]),
    Case("a one-letter client secret", make_csv([row("a")]),
         ["import", "{file}", "--client-id", "id", "--org-id", "o@AdobeOrg", "--client-secret", "e"], 2,
         ["the client secret from --client-secret is 1 character long"]),
    Case("resume --emulator of a run without it", None, ["resume", "{dir}/r.csv", "--emulator"], 2, ["r.csv"]),
    # --- the results file a command continues ---
    Case("verify given the spreadsheet", make_bytes("offers.xlsx", b"x"),
         ["verify", "{file}"], 2, ["offers.xlsx is not the results file of a run", "the one its 'results: PATH' line names"]),
    Case("rollback of a results file that is not there", None, ["rollback", "{dir}/gone.results.csv", "--yes"], 2,
         ["gone.results.csv: no such file (resume, retry, verify and rollback take the results CSV"]),
    Case("retry of results without their journal", make_bytes("r.results.csv", b"row,outcome\n"),
         ["retry", "{file}"], 2, ["r.results.csv.journal not found: no journal for the results",
                                  "copy it back there"]),
]


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One bad input from CORPUS: its exit code, its line(s), no traceback, the valid rows counted."""
    monkeypatch.chdir(tmp_path)  # no .env or bulkoffers.toml of the developer's
    (tmp_path / "map.toml").write_text('[columns]\nx = "nope"\n')
    if case.id.startswith("resume"):
        journal = tmp_path / "r.csv.journal"
        journal.write_text("")
    source = case.make(tmp_path) if case.make else None
    args = [a.format(file=source, dir=tmp_path) for a in case.args]
    env = {k: None for k in os.environ if k.startswith("BULKOFFERS_")}
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=True)
    said = result.stderr + result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit), said
    assert "Traceback" not in said
    assert result.exit_code == case.exit, said
    for text in case.says:
        assert text in said, said
    for text in case.silent_about:
        assert text not in said, said
    if case.valid is not None:
        assert f" {case.valid} valid" in said, said
    if case.exit != 0:  # the last line is the one that says what to fix
        assert said.strip(), said


def test_corpus_size() -> None:
    """The closing note quotes this count; it only grows."""
    assert len(CORPUS) >= 51


def test_a_utf16_file_keeps_its_text(tmp_path: Path) -> None:
    """The UTF-16 file's names arrive as written, not as bytes of another encoding."""
    source = make_csv([row("Äpfel und Birnen")], encoding="utf-16")(tmp_path)
    result = CliRunner().invoke(main, ["validate", str(source), "--payloads-out", str(tmp_path / "p.jsonl")])
    assert result.exit_code == 0, result.stderr
    assert "Äpfel und Birnen" in (tmp_path / "p.jsonl").read_text(encoding="utf-8")


COMMANDS = [
    ["import", "{results_input}", "--emulator", "--results", "{dir}/new.csv"],
    ["validate", "{results_input}"],
    ["resume", "{results}", "--emulator"],
    ["retry", "{results}", "--emulator"],
    ["verify", "{results}", "--emulator", "--settle", "0"],
    ["rollback", "{results}", "--emulator"],
    ["rollback", "{results}", "--emulator", "--yes"],
    ["check-auth"],
    ["whoami"],
    ["template", "{dir}/t.xlsx"],
    ["--help"],
]


def test_every_command_with_standard_input_closed(tmp_path: Path) -> None:
    """`bulkoffers CMD <&-` for every command: no traceback, a defined exit code; rollback, which asks
    first, says to pass --yes."""
    source = tmp_path / "offers.csv"
    shutil.copy(FIXTURES / "offers.csv", source)
    results = tmp_path / "r.csv"
    first = run_cli("import", str(source), "--emulator", "--results", str(results), "--rate", "100")
    assert first.returncode == 0, first.stderr
    for command in COMMANDS:
        args = [a.format(results_input=source, results=results, dir=tmp_path) for a in command]
        out = subprocess.run([sys.executable, "-m", "bulkoffers", *args], capture_output=True, text=True,
                             env=cli_env(), cwd=tmp_path, timeout=120, preexec_fn=lambda: os.close(0))
        said = out.stdout + out.stderr
        assert "Traceback" not in said, (args, said)
        assert out.returncode in (0, 1, 2), (args, said)
        if args[0] == "rollback" and "--yes" not in args:
            assert out.returncode == 2 and "no terminal to ask on (pass --yes)" in said, said


def test_the_emulator_rehearses_the_whole_workflow(tmp_path: Path) -> None:
    """import --emulator keeps its offers beside the results, so resume, verify and rollback --emulator
    work on them: verify finds every created offer, rollback deletes them, verify then finds none."""
    source = tmp_path / "offers.csv"
    shutil.copy(FIXTURES / "offers.csv", source)
    results = tmp_path / "run.results.csv"
    first = run_cli("import", str(source), "--emulator", "--results", str(results), "--rate", "100")
    assert first.returncode == 0 and "run.emulator.sqlite" in first.stderr, first.stderr
    verified = run_cli("verify", str(results), "--emulator", "--settle", "0")
    assert verified.returncode == 0 and " 0 missing" in verified.stderr, verified.stderr
    rolled = run_cli("rollback", str(results), "--emulator", "--yes")
    assert rolled.returncode == 0 and "0 failed" in rolled.stderr and " 0 deleted" not in rolled.stderr, rolled.stderr
    again = run_cli("verify", str(results), "--emulator", "--settle", "0")
    assert again.returncode == 1 and " 0 present" in again.stderr, again.stderr


def test_a_one_offer_run_is_counted_in_the_singular(tmp_path: Path) -> None:
    """The template's one offer (two rows) imported, then rolled back: the summary says "1 offer", not
    "1 offers"."""
    sheet, results = tmp_path / "t.csv", tmp_path / "t.results.csv"
    assert run_cli("template", str(sheet)).returncode == 0
    assert run_cli("import", str(sheet), "--emulator", "--results", str(results), "--rate", "100").returncode == 0
    rolled = run_cli("rollback", str(results), "--emulator", "--yes")
    assert rolled.returncode == 0, rolled.stderr
    assert "1 offer: 1 deleted, 0 already gone, 0 failed" in rolled.stderr


def test_resume_writes_the_results_file_named(tmp_path: Path, emulator: EmulatorServer) -> None:
    """RESULTS is corrupt and moved, its journal is fine: resume rebuilds the file the user named (not
    the path in the journal) and says which file it writes."""
    source = tmp_path / "offers.csv"
    shutil.copy(FIXTURES / "offers.csv", source)
    first = run_cli("import", str(source), *emulator_args(emulator), "--results", str(tmp_path / "r.csv"),
                    "--rate", "100")
    assert first.returncode == 0, first.stderr
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("r.csv", "r.csv.journal"):
        (tmp_path / name).rename(moved / name)
    (moved / "r.csv").write_bytes(b"\x00garbage\xff")
    out = run_cli("resume", str(moved / "r.csv"), *emulator_args(emulator))
    assert out.returncode == 0, out.stderr
    assert f"writing {moved / 'r.csv'} again from its journal" in out.stderr
    with (moved / "r.csv").open(newline="", encoding="utf-8") as fh:
        assert all(r["outcome"] == "created" for r in csv.DictReader(fh))
    assert not (tmp_path / "r.csv").exists()
    assert emulator.stats()["sandboxes"]["prod"]["duplicate_names"] == {}  # nothing was sent twice


def test_help_names_every_format_and_the_alias() -> None:
    """--help lists every format the reader takes (as the README does) and says whoami is an alias."""
    top = CliRunner().invoke(main, ["--help"])
    assert top.exit_code == 0
    for fmt in ("CSV", "TSV", "TXT", "XLSX", "XLSM", "XLS", "ODS"):
        assert fmt in top.stdout
    assert "whoami      The same as check-auth." in top.stdout
    assert "The same as `bulkoffers check-auth`" in CliRunner().invoke(main, ["whoami", "--help"]).stdout


def test_every_command_is_registered_and_explains_itself() -> None:
    """The group holds every command (those defined in cli_tools too), each with help text and a
    `--help` that exits 0 and shows its options."""
    expected = {"validate", "import", "resume", "retry", "verify", "rollback", "check-auth", "whoami", "export",
                "copy", "template", "emulator"}
    assert set(main.commands) == expected
    for name, command in main.commands.items():
        assert command.help and len(command.help) > 40, name
        shown = CliRunner().invoke(main, [name, "--help"])
        assert shown.exit_code == 0 and "Options:" in shown.stdout and "--help" in shown.stdout, name
