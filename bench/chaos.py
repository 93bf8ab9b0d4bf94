"""Chaos bench: N rows, an emulator that drops answers after committing, resets connections and fails
at random, and an importer killed with SIGKILL at random points and resumed until done.

    .venv/bin/python bench/chaos.py --rows 10000 --rate 400 --kills 20 --index-lag 3 [--api xcore]

Prints created / duplicates / lost as counted by the emulator, whether results.csv lists every row once,
and the wall time. --index-lag makes list and search show a new offer only that many seconds after it
is stored (lookup by id at once), as search indexes do; --settle is passed to bulkoffers (its default
when not given). Runs only on 127.0.0.1. Not part of the test suite (it takes minutes)."""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bulkoffers.emulator import (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID,  # noqa: E402
                                 EmulatorConfig, EmulatorServer, Faults)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=400)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--drop", type=float, default=0.02, help="commit-then-drop share")
    ap.add_argument("--reset", type=float, default=0.01)
    ap.add_argument("--errors", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--index-lag", type=float, default=0.0, help="seconds list/search lag behind creates")
    ap.add_argument("--settle", type=float, help="bulkoffers --settle [its default]")
    ap.add_argument("--api", choices=["dps", "xcore"], default="dps")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bulkoffers-chaos-"))
    source, results = work / "offers.csv", work / "results.csv"
    with source.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "channel", "placement", "component_type", "delivery_url"])
        for i in range(args.rows):
            placement = "offerPlacementWeb01" if args.api == "dps" else "xcore:offer-placement:1250c9f1a2b3c4d6"
            w.writerow([f"chaos {i:06d}", "web", placement, "imagelink", f"https://cdn.example.com/{i}.png"])
    faults = Faults(drop_rate=args.drop, reset_rate=args.reset, error_rate=args.errors, latency_ms=5,
                    jitter_ms=15, seed=args.seed, index_lag=args.index_lag)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKOFFERS_")}
    with EmulatorServer(EmulatorConfig(faults=faults, max_offers=args.rows + 10)) as emu:
        common = ["--base-url", emu.url, "--ims-url", emu.url, "--client-id", DEFAULT_CLIENT_ID,
                  "--client-secret", DEFAULT_CLIENT_SECRET, "--org-id", DEFAULT_ORG_ID, "--rate", str(args.rate),
                  "--timeout", "2", "--retries", "10", "-q",
                  *(["--settle", str(args.settle)] if args.settle is not None else [])]
        journal = results.with_name(results.name + ".journal")
        expected = args.rows / args.rate
        start = time.monotonic()
        runs = kills = 0
        while True:
            if journal.exists() and journal.read_text(errors="replace").strip():
                cmd = ["resume", str(results)]
            else:
                cmd = ["import", str(source), "--results", str(results), "--force", "--api", args.api]
            proc = subprocess.Popen([sys.executable, "-m", "bulkoffers", *cmd, *common], env=env, cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            runs += 1
            if kills < args.kills:
                time.sleep(rng.uniform(0.5, max(1.0, 2 * expected / args.kills)))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    continue
            _, err = proc.communicate()
            if proc.returncode == 0:
                break
            if proc.returncode == 1:  # some rows ran out of retries: retry them, as a user would
                subprocess.run([sys.executable, "-m", "bulkoffers", "retry", str(results), *common], env=env,
                               cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
                break
            sys.exit(f"run ended with {proc.returncode}: {err.strip().splitlines()[-1:]}")
        elapsed = time.monotonic() - start
        stats = emu.stats()
    sandbox = stats["sandboxes"].get("prod", {"offers": 0, "duplicate_names": {}, "duplicates": 0})
    with results.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    listed = sorted(int(r["row"]) for r in rows)
    distinct = sandbox["offers"] - sandbox["duplicates"]
    print(f"rows {args.rows}, runs {runs}, SIGKILLs {kills}, {elapsed:.1f} s, faults {stats['faults_injected']}")
    print(f"created (distinct at emulator) {distinct}")
    print(f"duplicates                     {sandbox['duplicates']}")
    print(f"lost (never created)           {args.rows - distinct}")
    print(f"results.csv lists every row once: {listed == list(range(2, args.rows + 2))}; "
          f"outcomes: { {o: sum(r['outcome'] == o for r in rows) for o in ('created', 'failed', 'skipped')} }")
    print(f"work files: {work}")


if __name__ == "__main__":
    main()
