"""Figure 4, start-up: wall time of `bulkoffers --help` (target < 0.3 s), best and median of N runs,
and the same for `python -c pass` as the floor the interpreter sets.

    .venv/bin/python bench/startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import time

from common import PY, ROOT, env

RUNS = 15


def measure(cmd: list[str]) -> list[float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ours = measure([PY, "-m", "bulkoffers", "--help"])
    floor = measure([PY, "-c", "pass"])
    print(f"bulkoffers --help: best {min(ours):.3f} s, median {statistics.median(ours):.3f} s (target < 0.3 s)")
    print(f"python -c pass:    best {min(floor):.3f} s, median {statistics.median(floor):.3f} s")
    print(f"ratio of medians --help / bare interpreter: {statistics.median(ours) / statistics.median(floor):.2f}")


if __name__ == "__main__":
    main()
