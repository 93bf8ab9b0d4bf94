"""The results writer, the journal and the hand-over from reader to workers, on their own."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from bulkoffers.emulator import EmulatorConfig, EmulatorServer, Faults
from bulkoffers.engine import Feed
from bulkoffers.offers import Prepared
from bulkoffers.results import RowResult, _SortedCsv
from bulkoffers.runrecord import Journal, load_journal

from .conftest import ROOT, cli_env, emulator_args
from .test_import import write_offers


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lines_written_out_of_order_come_back_in_row_order_byte_for_byte(tmp_path: Path, seed: int) -> None:
    # Multi-byte text, quotes, delimiters and newlines inside cells: the byte spans must still cut right.
    """Results lines written in any order come back in row order, byte for byte, whatever the cells hold."""
    texts = ["plain", "naïve café ✓", 'say "hi", then\nleave', "a\r\nb", "", "日本語,テキスト"]
    rng = random.Random(seed)
    lines = {row: [str(row), rng.choice(texts), rng.choice(texts)] for row in range(2, 300)}
    order = list(lines)
    rng.shuffle(order)
    out = _SortedCsv(tmp_path / "r.csv", ["row", "a", "b"])
    for row in order:
        out.write(row, lines[row])
    out.close()
    assert read_rows(tmp_path / "r.csv") == [["row", "a", "b"], *(lines[r] for r in sorted(lines))]
    assert not (tmp_path / "r.csv.tmp").exists()


def test_lines_already_in_order_are_left_as_written(tmp_path: Path) -> None:
    """Lines already in order are left as written."""
    out = _SortedCsv(tmp_path / "r.csv", ["row", "a"])
    for row in range(2, 50):
        out.write(row, [str(row), "é" * row])
    before = (tmp_path / "r.csv").stat().st_mtime_ns
    out.close()
    assert [r[0] for r in read_rows(tmp_path / "r.csv")[1:]] == [str(r) for r in range(2, 50)]
    assert (tmp_path / "r.csv").stat().st_mtime_ns >= before


def test_rows_announced_with_their_batch_but_never_finished_are_in_doubt(tmp_path: Path) -> None:
    """Rows announced in the journal without an outcome are in doubt; rows with one are not."""
    journal = Journal(tmp_path / "r.csv.journal")
    journal.start({"input": "x"})
    journal.sending([2, 3, 4, 5], attempt=1)
    journal.done(RowResult(2, "k2", "n2", "created", id="a"))
    journal.done(RowResult(3, "k3", "n3", "skipped", error="not attempted: interrupted"))
    journal.sending([4], attempt=2, name="n4")
    journal.close()
    state = load_journal(tmp_path / "r.csv.journal")
    assert state.in_flight == {4, 5}  # 4 and 5 may be on the server: resume looks them up
    assert not state.in_doubt(2) and not state.in_doubt(3) and state.in_doubt(4) and state.in_doubt(5)


def test_the_feed_holds_back_the_producer_and_hands_every_offer_over_once() -> None:
    """The feed bounds what the producer prepares ahead and hands every offer to exactly one worker."""
    items = [Prepared(str(i), []) for i in range(1000)]
    taken: list[str] = []
    most_waiting = 0

    async def main() -> None:
        nonlocal most_waiting
        feed = Feed(room_below=64)

        async def worker() -> None:
            nonlocal most_waiting
            while (item := await feed.get()) is not None:
                most_waiting = max(most_waiting, len(feed._items))
                taken.append(item.key)
                await anyio.sleep(0)

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(worker)
            for at in range(0, len(items), 100):
                await feed.put(items[at:at + 100])
            feed.close()

    anyio.run(main)
    assert sorted(taken, key=int) == [str(i) for i in range(1000)]
    assert most_waiting < 64 + 100  # never more than one batch beyond the low-water mark


def test_results_reach_the_disk_while_the_run_goes_on(tmp_path: Path) -> None:
    """A user tails results.csv: lines must show up during the run, not only when it ends."""
    with EmulatorServer(EmulatorConfig(faults=Faults(latency_ms=20))) as emu:
        # 20 rows of results are ~2.5 KB: less than one file buffer, so only flushing shows them early.
        source = write_offers(tmp_path / "o.csv", 20)
        results = tmp_path / "r.csv"
        proc = subprocess.Popen([sys.executable, "-m", "bulkoffers", "import", str(source), *emulator_args(emu),
                                 "--rate", "5", "--results", str(results), "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT)
        seen_mid_run = 0
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if 8 <= emu.stats()["creates_seen"] < 16 and results.exists():  # mid-run, not the final rewrite
                seen_mid_run = max(seen_mid_run, len(read_rows(results)) - 1)
            time.sleep(0.1)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert 3 <= seen_mid_run < 16, seen_mid_run  # rows finish 0.2 s apart; lines may lag 0.5 s
    assert len(read_rows(results)) == 21


def test_every_test_says_what_it_asserts() -> None:
    """Every test function in tests/ has a docstring: a reader sees what behaviour each one pins."""
    import ast

    missing = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_") \
                    and not ast.get_docstring(node):
                missing.append(f"{path.name}:{node.name}")
    assert missing == []
