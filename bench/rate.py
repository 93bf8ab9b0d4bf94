"""Figure 1, rate fidelity: N rows at --rate R against a separate emulator process with 50 ms ± 20 ms
latency. Prints achieved creates/s ÷ R (target ≥ 0.97) and the largest count in any 1-second window at
the emulator (target ≤ R).

    .venv/bin/python bench/rate.py --rows 3000 --rate 100
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import PY, EmulatorProcess, timed, write_offers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=100)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bulkoffers-rate-"))
    source = write_offers(work / "offers.csv", args.rows)
    with EmulatorProcess("--latency-ms", "50", "--jitter-ms", "20", "--max-offers", str(args.rows + 10)) as emu:
        wall, out = timed([PY, "-m", "bulkoffers", "import", str(source), *emu.args(), "--rate", str(args.rate),
                           "--results", str(work / "r.csv"), "-q"])
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        stats = emu.stats()
    n, span = stats["creates_seen"], stats["create_span_seconds"]
    achieved = (n - 1) / span
    print(f"rows {args.rows} at --rate {args.rate:g}, emulator latency 50±20 ms; wall {wall:.1f} s")
    print(f"achieved creates/s at the emulator: {achieved:.2f}; ratio to --rate: {achieved / args.rate:.3f} "
          "(target >= 0.97)")
    print(f"largest number of creates in any 1-second window: {stats['max_creates_per_second']} "
          f"(target <= {args.rate:g})")


if __name__ == "__main__":
    main()
