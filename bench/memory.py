"""Figure 3, memory and throughput of reading + validating: `bulkoffers validate` and
`import --dry-run` on generated CSVs of 100,000 and 1,000,000 rows (peak RSS and rows/s; target
<= 300 MB), and a 100,000-row .xlsx read with calamine versus openpyxl.

The CSV is 10,000 offers of 100 rows each (one placement per row, a short text component), so every
row is valid and grouping is exercised; the sandbox guardrail allows 10,000 offers.

    .venv/bin/python bench/memory.py
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import tempfile
import time
from pathlib import Path

from common import PY, ROOT, env



def generate(path: Path, rows: int) -> Path:
    per_offer = 100
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["offer_key", "name", "status", "start_date", "end_date", "priority", "channel", "placement",
                    "component_type", "content", "language"])
        for i in range(rows):
            o = i // per_offer
            first = i % per_offer == 0
            w.writerow([f"k{o:06d}", f"Offer {o:06d}" if first else "", "approved" if first else "",
                        "2026-01-01" if first else "", "2027-01-01" if first else "", o % 10 if first else "",
                        "web", f"offerPlacement{i % per_offer:03d}", "text", "Hello", "en"])
    return path


def run_measured(cmd: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of one child process, via GNU time's %M."""
    start = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], cwd=ROOT, env=env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    return wall, int(out.stderr.strip().splitlines()[-1]) / 1024, out.returncode


def excel(rows: int, work: Path) -> None:
    from openpyxl import Workbook

    from bulkoffers.config import ReadOptions
    from bulkoffers.reader import Table

    path = work / "big.xlsx"
    book = Workbook(write_only=True)
    sheet = book.create_sheet("offers")
    sheet.append(["name", "channel", "placement", "component_type", "delivery_url", "priority"])
    for i in range(rows):
        sheet.append([f"Offer {i:06d}", "web", "offerPlacementWeb01", "imagelink", f"https://x.com/{i}.png", i % 10])
    book.save(path)
    times = {}
    for engine in ("calamine", "openpyxl"):
        start = time.perf_counter()
        count = sum(1 for _ in Table(path, ReadOptions(excel_engine=engine)).rows())
        times[engine] = time.perf_counter() - start
        assert count == rows
    print(f"xlsx {rows:,} rows read: calamine {times['calamine']:.1f} s ({rows / times['calamine']:,.0f} rows/s), "
          f"openpyxl {times['openpyxl']:.1f} s ({rows / times['openpyxl']:,.0f} rows/s); "
          f"openpyxl / calamine time: {times['openpyxl'] / times['calamine']:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--xlsx-rows", type=int, default=100_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bulkoffers-memory-"))
    for n in (int(x) for x in args.sizes.split(",")):
        source = generate(work / f"rows{n}.csv", n)
        for label, cmd in (("validate", ["validate", str(source)]),
                           ("import --dry-run", ["import", str(source), "--dry-run", "--payloads-out",
                                                 str(work / "p.jsonl")])):
            wall, peak, code = run_measured([PY, "-m", "bulkoffers", *cmd])
            assert code == 0, f"{label} exited {code}"
            print(f"{label:17s} {n:>9,} rows: {wall:6.1f} s, {n / wall:8,.0f} rows/s, peak RSS {peak:6.0f} MB")
    excel(args.xlsx_rows, work)


if __name__ == "__main__":
    main()
