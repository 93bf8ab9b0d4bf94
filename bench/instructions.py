"""Figure 2 without the noise: CPU instructions per row, counted by valgrind (callgrind), of the full
`bulkoffers import` and of the bare aiohttp loop from bench/overhead.py, against the emulator in its own
process (not counted). Instruction counts repeat to within a percent or two from run to run, whatever else
the machine does, so this is the figure to compare code changes with; bench/overhead.py says what they
mean in rows/s.

Each side runs twice, with --rows and 2 x --rows, and the difference is divided by --rows: start-up
(imports, token, pass 1 of a small file) cancels out. Under valgrind the client is ~50x slower, so the
emulator never limits it. Needs valgrind; takes a few minutes.

    .venv/bin/python bench/instructions.py --rows 1000
"""

from __future__ import annotations

import argparse
import re
import shutil
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
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="bulkoffers-instructions-"))
    (work / "bare.py").write_text(BARE)
    counts: dict[str, list[int]] = {"bare": [], "ours": []}
    with EmulatorProcess("--max-offers", str(args.rows * 10)) as emu:
        cred = emu.args()[4:]
        for n in (args.rows, 2 * args.rows):
            source = write_offers(work / f"offers{n}.csv", n, prefix=f"n{n}")
            payloads = work / f"payloads{n}.jsonl"
            out = subprocess.run([PY, "-m", "bulkoffers", "validate", str(source), "--payloads-out", str(payloads)],
                                 cwd=ROOT, env=env(), capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            emu.reset()
            counts["bare"].append(instructions([PY, str(work / "bare.py"), emu.url, cred[1], cred[3], cred[5],
                                                str(payloads), str(args.concurrency)], work))
            emu.reset()
            counts["ours"].append(instructions([PY, "-m", "bulkoffers", "import", str(source), *emu.args(),
                                                "--rate", "1000000", "--concurrency", str(args.concurrency),
                                                "--results", str(work / f"r{n}.csv"), "--force", "-q"], work))
            assert emu.stats()["sandboxes"]["prod"]["offers"] == n
    per_row = {side: (c[1] - c[0]) / args.rows for side, c in counts.items()}
    print(f"instructions per row (from {args.rows:,} and {2 * args.rows:,} rows, start-up cancelled out):")
    print(f"  bare aiohttp loop, pre-built payloads: {per_row['bare']:,.0f}")
    print(f"  bulkoffers import, whole pipeline:     {per_row['ours']:,.0f}")
    print(f"ratio bare / bulkoffers: {per_row['bare'] / per_row['ours']:.2f} "
          "(1.0 = the pipeline costs nothing beyond the HTTP request)")
    start = {side: c[0] - per_row[side] * args.rows for side, c in counts.items()}
    print(f"start-up instructions: bare {start['bare'] / 1e9:.2f} G, bulkoffers {start['ours'] / 1e9:.2f} G")


if __name__ == "__main__":
    main()
