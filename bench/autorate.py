"""Issue 16, `--rate auto`: four scenarios against a separate emulator process (50 ± 20 ms latency),
each measured in one run and printed as ratios.

1. a limit the client is not told (`--rate-limit 37`), 3,000 rows, `--rate auto`:
   achieved creates/s ÷ 37 (target ≥ 0.90) and the share of requests answered 429 (target ≤ 2%);
2. the limit drops from 60 to 20 after 30 s and returns to 60 after 60 s (POST /__emulator/faults):
   seconds after the drop from which, to the rise, under 2% of answers are 429 (target ≤ 5 s), the
   share from 5 s on, and creates/s in the last 10 s at 60 ÷ 60 (the pace climbed back);
3. 5% of requests answered 429 at random, no pace limit, 1,500 rows, fixed `--rate 40` and auto
   `--max-rate 40`: achieved creates/s ÷ (40 × 0.95) (target ≥ 0.85 in both);
4. no limit: `--rate auto --max-rate 50` against fixed `--rate 50`, 3,000 rows each: whether the pace
   reached 50 without a 429, and fixed wall time ÷ auto wall time (target ≥ 0.95).

    .venv/bin/python bench/autorate.py            # all four (about 7 minutes)
    .venv/bin/python bench/autorate.py --only 2   # one of them
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import PY, ROOT, EmulatorProcess, env, timed, write_offers

LATENCY = ("--latency-ms", "50", "--jitter-ms", "20")


def run_import(emu: EmulatorProcess, source: Path, work: Path, *flags: str) -> tuple[float, dict[str, Any]]:
    """One import as a user runs it; returns wall seconds and its --json report."""
    wall, out = timed([PY, "-m", "bulkoffers", "import", str(source), *emu.args(), *flags, "--json", "-q",
                       "--results", str(work / f"r{time.monotonic_ns()}.csv")])
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return wall, json.loads(out.stdout)


def achieved(emu: EmulatorProcess) -> tuple[float, float, int]:
    """Offers stored per second between the first create and the last, the share of API answers that
    were 429, and the number of 429s."""
    stats = emu.stats()
    offers = stats["sandboxes"]["prod"]["offers"]
    answers = sum(stats["statuses"].values())
    throttled = stats["statuses"].get("429", 0)
    return (offers - 1) / stats["create_span_seconds"], throttled / answers, throttled


def hidden_limit(work: Path) -> None:
    source = write_offers(work / "s1.csv", 3000)
    with EmulatorProcess(*LATENCY, "--rate-limit", "37", "--max-offers", "5000") as emu:
        wall, report = run_import(emu, source, work, "--rate", "auto")
        rate, share, n429 = achieved(emu)
    print(f"1. hidden limit 37/s, 3,000 rows, --rate auto: wall {wall:.1f} s, {rate:.1f} creates/s = "
          f"{rate / 37:.3f} x 37 (target >= 0.90); 429s {n429} = {100 * share:.2f}% of answers (target <= 2%); "
          f"reported: rate_found {report['rate_found']}, pace at the end {report['pace']}")


class Sampler(threading.Thread):
    """Reads the emulator's counters every half second: (t, answers, 429s, offers)."""

    def __init__(self, emu: EmulatorProcess) -> None:
        super().__init__(daemon=True)
        self.emu, self.samples, self.stop = emu, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            stats = self.emu.stats()
            self.samples.append((time.monotonic(), sum(stats["statuses"].values()), stats["statuses"].get("429", 0),
                                 stats["sandboxes"].get("prod", {}).get("offers", 0)))
            self.stop.wait(0.5)

    def between(self, start: float, end: float) -> tuple[int, int, int]:
        """(answers, 429s, offers) counted from `start` to `end`."""
        first = min(self.samples, key=lambda s: abs(s[0] - start))
        last = min(self.samples, key=lambda s: abs(s[0] - end))
        return last[1] - first[1], last[2] - first[2], last[3] - first[3]


def moving_limit(work: Path) -> None:
    source = write_offers(work / "s2.csv", 6000)
    with EmulatorProcess(*LATENCY, "--rate-limit", "60", "--max-offers", "8000") as emu:
        faults = emu.stats()["faults"]
        sampler = Sampler(emu)
        sampler.start()
        log = (work / "s2.log").open("w")  # a file, not a pipe nobody reads while it runs (it would fill and block)
        proc = subprocess.Popen([PY, "-m", "bulkoffers", "import", str(source), *emu.args(), "--rate", "auto",
                                 "--max-rate", "100", "-q", "--results", str(work / "s2.results.csv")],
                                cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=log, text=True)
        start = time.monotonic()
        time.sleep(30)
        drop = time.monotonic()
        emu.admin("/__emulator/faults", {**faults, "rate_limit": 20})
        time.sleep(30)
        rise = time.monotonic()
        emu.admin("/__emulator/faults", {**faults, "rate_limit": 60})
        time.sleep(40)
        end = time.monotonic()
        proc.send_signal(signal.SIGINT)  # enough measured: stop it as a user would
        proc.wait(timeout=120)
        log.close()
        sampler.stop.set()
        sampler.join()
    before = sampler.between(start + 20, drop)
    settled = None  # the first moment after the drop from which, to the rise, under 2% of answers are 429
    t = drop
    while t < rise - 5 and settled is None:
        answers, throttled, _ = sampler.between(t, rise)
        if answers and throttled / answers < 0.02:
            settled = round(t - drop, 1)
        t += 0.5
    after = sampler.between(drop + 5, rise)
    low = sampler.between(rise - 20, rise)
    back = sampler.between(end - 10, end)
    print("2. limit 60 -> 20 after 30 s -> 60 after 60 s, --rate auto --max-rate 100:")
    print(f"   at 60 (the 10 s before the drop): {before[2] / 10:.1f} creates/s, 429s {100 * before[1] / max(1, before[0]):.1f}%")
    print(f"   after the drop: from {settled} s after it to the rise, under 2% of answers are 429 (target <= 5 s); "
          f"from 5 s after the drop to the rise: 429s "
          f"{100 * after[1] / max(1, after[0]):.2f}%; last 20 s at 20: {low[2] / 20:.1f} creates/s")
    print(f"   back at 60, last 10 s: {back[2] / 10:.1f} creates/s = {back[2] / 10 / 60:.2f} x 60, "
          f"429s {100 * back[1] / max(1, back[0]):.1f}%")


def random_429s(work: Path) -> None:
    source = write_offers(work / "s3.csv", 1500)
    for mode, flags in (("fixed --rate 40", ("--rate", "40")), ("auto --max-rate 40", ("--rate", "auto", "--max-rate", "40"))):
        with EmulatorProcess(*LATENCY, "--throttle-rate", "0.05", "--max-offers", "2000") as emu:
            wall, report = run_import(emu, source, work, *flags)
            rate, share, n429 = achieved(emu)
        print(f"3. 5% random 429s, no limit, 1,500 rows, {mode}: wall {wall:.1f} s, {rate:.1f} creates/s = "
              f"{rate / (40 * 0.95):.3f} x (40 x 0.95) (target >= 0.85); 429s {n429} = {100 * share:.1f}%; "
              f"pace at the end {report['pace']}, rate_found {report['rate_found']}")


def no_limit(work: Path) -> None:
    source = write_offers(work / "s4.csv", 3000)
    walls = {}
    for mode, flags in (("auto", ("--rate", "auto", "--max-rate", "50")), ("fixed", ("--rate", "50"))):
        with EmulatorProcess(*LATENCY, "--max-offers", "5000") as emu:
            walls[mode], report = run_import(emu, source, work, *flags)
            rate, _, n429 = achieved(emu)
        print(f"4. no limit, 3,000 rows, {mode}: wall {walls[mode]:.1f} s, {rate:.1f} creates/s, 429s {n429}, "
              f"pace at the end {report['pace']}")
    print(f"   fixed wall / auto wall: {walls['fixed'] / walls['auto']:.3f} (target >= 0.95)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", type=int, choices=(1, 2, 3, 4))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bulkoffers-autorate-"))
    scenarios = {1: hidden_limit, 2: moving_limit, 3: random_429s, 4: no_limit}
    for number, scenario in scenarios.items():
        if args.only in (None, number):
            scenario(work)


if __name__ == "__main__":
    main()
