"""Figure 2 without the noise: CPU instructions per row, counted by valgrind (callgrind), of the full
`bulkoffers import` and of the bare aiohttp loop from bench/overhead.py, against the emulator in its own
process (not counted). Instruction counts repeat to within a percent or two from run to run, whatever else
the machine does, so this is the figure to compare code changes with; bench/overhead.py says what they
mean in rows/s.

Each side runs twice, with --rows and 2 x --rows, and the difference is divided by --rows: start-up
(imports, token, pass 1 of a small file) cancels out. Under valgrind the client is ~50x slower, so the
emulator never limits it. Needs valgrind; takes a few minutes per repeat.

How steady: the bare loop's count repeats to within 1-2%. The pipeline's moves more, by up to ~15%
between runs on a busy and an idle machine: how many answers arrive per turn of the event loop decides
how many turns (and wake-ups of the producer, the workers and the results consumer) a row costs. So
compare figures measured back to back, with --repeat, and read the median and the spread:

    .venv/bin/python bench/instructions.py --rows 1000 --repeat 3
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import PY, ROOT, EmulatorProcess, env, write_offers
from overhead import BARE


def instructions(cmd: list[str], work: Path) -> int:
    """Instructions the command executed (all its threads), as callgrind counts them."""
    out = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={work / 'callgrind.out'}", *cmd],
                         cwd=ROOT, env=env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    match = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    assert match, out.stderr[-2000:]
    return int(match.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=1, help="measure each side this many times")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="bulkoffers-instructions-"))
    (work / "bare.py").write_text(BARE)
    per_row: dict[str, list[float]] = {"bare": [], "ours": []}
    start: dict[str, list[float]] = {"bare": [], "ours": []}
    with EmulatorProcess("--max-offers", str(args.rows * 10)) as emu:
        cred = emu.args()[4:]
        for rep in range(args.repeat):
            counts: dict[str, list[int]] = {"bare": [], "ours": []}
            for n in (args.rows, 2 * args.rows):
                prefix = f"r{rep}n{n}"
                source = write_offers(work / f"offers{prefix}.csv", n, prefix=prefix)
                payloads = work / f"payloads{prefix}.jsonl"
                out = subprocess.run([PY, "-m", "bulkoffers", "validate", str(source), "--payloads-out", str(payloads)],
                                     cwd=ROOT, env=env(), capture_output=True, text=True)
                assert out.returncode == 0, out.stderr
                emu.reset()
                counts["bare"].append(instructions([PY, str(work / "bare.py"), emu.url, cred[1], cred[3], cred[5],
                                                    str(payloads), str(args.concurrency)], work))
                emu.reset()
                counts["ours"].append(instructions([PY, "-m", "bulkoffers", "import", str(source), *emu.args(),
                                                    "--rate", "1000000", "--concurrency", str(args.concurrency),
                                                    "--results", str(work / f"r{prefix}.csv"), "--force", "-q"], work))
                assert emu.stats()["sandboxes"]["prod"]["offers"] == n
            for side, c in counts.items():
                per_row[side].append((c[1] - c[0]) / args.rows)
                start[side].append(c[0] - per_row[side][-1] * args.rows)
            print(f"repeat {rep + 1}: bare {per_row['bare'][-1]:,.0f}, bulkoffers {per_row['ours'][-1]:,.0f} "
                  "instructions per row", flush=True)
    mid = {side: statistics.median(v) for side, v in per_row.items()}
    spread = {side: f" (min {min(v):,.0f}, max {max(v):,.0f})" if len(v) > 1 else "" for side, v in per_row.items()}
    print(f"instructions per row (from {args.rows:,} and {2 * args.rows:,} rows, start-up cancelled out; "
          f"median of {args.repeat}):")
    print(f"  bare aiohttp loop, pre-built payloads: {mid['bare']:,.0f}{spread['bare']}")
    print(f"  bulkoffers import, whole pipeline:     {mid['ours']:,.0f}{spread['ours']}")
    print(f"ratio bare / bulkoffers: {mid['bare'] / mid['ours']:.2f} "
          "(1.0 = the pipeline costs nothing beyond the HTTP request)")
    print(f"start-up instructions: bare {statistics.median(start['bare']) / 1e9:.2f} G, "
          f"bulkoffers {statistics.median(start['ours']) / 1e9:.2f} G")


if __name__ == "__main__":
    main()
