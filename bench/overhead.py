"""Figure 2, pipeline overhead: rows/s of the full `bulkoffers import` (read, validate, build, POST, write
results) with no effective rate limit, divided by rows/s of a bare aiohttp loop posting the same
pre-built payloads with the same concurrency (target >= 0.8). The emulator runs in its own process;
both sides are timed as whole programs, start-up included. By default the emulator is pinned to CPU 0
and the client to CPU 1 (taskset), as a real server would be on another machine: unpinned, Linux at
times puts the two ping-ponging processes on one core, and the pairs came out bimodal (0.71-0.74 or
1.01-1.03 in one run) depending on where they landed. --no-pin shows that.

    .venv/bin/python bench/overhead.py --rows 10000 --concurrency 16

It also prints the ratio while sending only (the emulator's first-to-last create span), which leaves
out start-up: importing pandas and pass 1 over the file happen before the first request.

Each side runs --repeat times, interleaved, against a freshly reset emulator. The figure is the median
of the ratios of back-to-back pairs (machines here are noisy, and drift slowly: a pair shares the same
conditions); the ratio of the best time of each side is printed too. CPU seconds per row of each process (ours, bare, the emulator
serving each) show where the time goes: the emulator is the bottleneck when its CPU per row is the
larger one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import textwrap
from pathlib import Path

from common import PY, EmulatorProcess, children_cpu, timed, write_offers

BARE = textwrap.dedent('''
    import asyncio, json, sys, aiohttp
    url, cid, secret, org, payloads, conc = sys.argv[1:7]
    bodies = [json.loads(line)["payload"] for line in open(payloads)]
    async def main():
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=int(conc))) as s:
            async with s.post(url + "/ims/token/v3", data={"grant_type": "client_credentials",
                              "client_id": cid, "client_secret": secret, "scope": "openid"}) as r:
                token = (await r.json())["access_token"]
            h = {"Authorization": "Bearer " + token, "x-api-key": cid, "x-gw-ims-org-id": org,
                 "x-sandbox-name": "prod", "Content-Type": "application/json"}
            queue = iter(bodies)
            async def worker():
                for body in queue:
                    async with s.post(url + "/data/core/dps/offers?offer-type=fallback", data=json.dumps(body),
                                      headers=h) as r:
                        assert r.status == 201, r.status
                        await r.read()
            await asyncio.gather(*(worker() for _ in range(int(conc))))
    asyncio.run(main())
''')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="let the scheduler place the processes instead of emulator on CPU 0, client on CPU 1")
    args = ap.parse_args()
    if args.pin and (shutil.which("taskset") is None or (os.cpu_count() or 1) < 2):
        print("no taskset or a single CPU: not pinning")
        args.pin = False
    pin = ["taskset", "-c", "1"] if args.pin else []
    work = Path(tempfile.mkdtemp(prefix="bulkoffers-overhead-"))
    source = write_offers(work / "offers.csv", args.rows)
    payloads = work / "payloads.jsonl"
    _, out = timed([PY, "-m", "bulkoffers", "validate", str(source), "--payloads-out", str(payloads)])
    assert out.returncode == 0, out.stderr
    (work / "bare.py").write_text(BARE)
    bare_times, ours_times, bare_spans, ours_spans = [], [], [], []
    cpu: dict[str, list[float]] = {"bare": [], "ours": [], "emulator (bare)": [], "emulator (ours)": []}
    with EmulatorProcess("--max-offers", str(args.rows * 3), cpu=0 if args.pin else None) as emu:
        cred = emu.args()[4:]
        for i in range(args.repeat):
            emu.reset()
            mine, theirs = children_cpu(), emu.cpu_seconds()
            wall, out = timed([*pin, PY, str(work / "bare.py"), emu.url, cred[1], cred[3], cred[5], str(payloads),
                               str(args.concurrency)])
            assert out.returncode == 0, out.stderr
            cpu["bare"].append(children_cpu() - mine)
            cpu["emulator (bare)"].append(emu.cpu_seconds() - theirs)
            bare_times.append(wall)
            bare_spans.append(emu.stats()["create_span_seconds"])
            emu.reset()
            mine, theirs = children_cpu(), emu.cpu_seconds()
            wall, out = timed([*pin, PY, "-m", "bulkoffers", "import", str(source), *emu.args(), "--rate", "1000000",
                               "--concurrency", str(args.concurrency), "--results", str(work / f"r{i}.csv"), "-q"])
            assert out.returncode == 0, out.stderr
            cpu["ours"].append(children_cpu() - mine)
            cpu["emulator (ours)"].append(emu.cpu_seconds() - theirs)
            stats = emu.stats()
            assert stats["sandboxes"]["prod"]["offers"] == args.rows
            ours_times.append(wall)
            ours_spans.append(stats["create_span_seconds"])
    bare_wall, ours_wall = min(bare_times), min(ours_times)
    bare, ours = args.rows / bare_wall, args.rows / ours_wall
    pairs = sorted(b / o for b, o in zip(bare_times, ours_times))
    where = "emulator pinned to CPU 0, client to CPU 1" if args.pin else "processes placed by the scheduler"
    print(f"{args.rows} rows, concurrency {args.concurrency}, emulator in its own process ({where}), "
          f"{args.repeat} runs a side")
    print(f"all runs: bare {', '.join(f'{t:.2f}' for t in bare_times)} s; ours {', '.join(f'{t:.2f}' for t in ours_times)} s")
    print(f"ratio bulkoffers / bare (rows/s, whole programs), median of {len(pairs)} back-to-back pairs: "
          f"{statistics.median(pairs):.2f} (target >= 0.8); pairs {', '.join(f'{r:.2f}' for r in pairs)}")
    print(f"best of each: bare aiohttp loop {bare_wall:.2f} s ({bare:.0f} rows/s), bulkoffers import {ours_wall:.2f} s "
          f"({ours:.0f} rows/s); ratio {ours / bare:.2f}")
    for side, seconds in cpu.items():
        print(f"CPU {side}: {min(seconds) / args.rows * 1e6:.0f} µs per row (best run; start-up included)")
    span_ratio = min(bare_spans) / min(ours_spans)
    print(f"while sending (first to last create at the emulator, best of each): bare {min(bare_spans):.2f} s, "
          f"ours {min(ours_spans):.2f} s; ratio {span_ratio:.2f}")

if __name__ == "__main__":
    main()
