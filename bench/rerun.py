"""Routine re-upload: the wall time of re-running an unchanged file of N offers (the sandbox is listed,
every page, and each row compared with the offer of its name) against the first import of them. The
emulator runs in its own process, with latency.

    .venv/bin/python bench/rerun.py --rows 1000 --rate 10

Prints both wall times and their ratio for the default --on-existing skip and for update (which also
compares, and finds nothing to change). Timings are whole commands, start-up included."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import PY, EmulatorProcess, timed, write_offers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=10.0, help="bulkoffers --rate for every run [10, its default]")
    ap.add_argument("--latency-ms", type=float, default=50)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bulkoffers-rerun-"))
    source = write_offers(work / "offers.csv", args.rows, prefix="rerun")
    with EmulatorProcess("--latency-ms", str(args.latency_ms), "--jitter-ms", "20") as emu:
        def run(name: str, *extra: str) -> float:
            seconds, out = timed([PY, "-m", "bulkoffers", "import", str(source), *emu.args(), "--rate", str(args.rate),
                                  "--results", str(work / f"{name}.csv"), "-q", *extra])
            assert out.returncode == 0, out.stderr[-2000:]
            print(f"  {name:<28} {seconds:7.1f} s   {out.stderr.strip().splitlines()[-2]}")
            return seconds

        print(f"{args.rows:,} offers at --rate {args.rate:g}, emulator latency {args.latency_ms:g} ms:")
        first = run("first import")
        skip = run("re-run (on-existing skip)")
        update = run("re-run (on-existing update)", "--on-existing", "update")
        assert emu.stats()["creates_seen"] == args.rows, "a re-run created offers"
    print(f"re-run / first import: skip {skip / first:.3f}, update {update / first:.3f} "
          f"(no offer created or changed by either re-run)")


if __name__ == "__main__":
    main()
