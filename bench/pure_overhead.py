"""Figure 2b, the pipeline's own CPU cost per row: `bulkoffers` imports N rows with the HTTP call
replaced by an immediate 201 (no network, no emulator), so what remains is reading, validating,
building, pacing, journaling and writing results. Compared with the CPU a bare aiohttp loop spends per
request (from bench/overhead.py's numbers) it says how much of a core the pipeline adds.

    .venv/bin/python bench/pure_overhead.py --rows 10000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import pandas  # noqa: F401  (imported before timing, as the text says)
from common import write_offers

from bulkoffers import auth, client, engine
from bulkoffers.config import Credentials, ImportConfig, RateLimit
from bulkoffers.answers import Answer


async def instant_create(self: Any, payload: Any, data: bytes | None = None) -> Answer:
    await anyio.sleep(0)  # still a real await, as a request would be
    return Answer(201, {"id": "dps:fallback-offer:0123456789abcdef", "etag": 1})


async def no_token(self: Any) -> str:
    return "token"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5, help="runs in this process; the best is reported")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bulkoffers-pure-"))
    source = write_offers(work / "offers.csv", args.rows)
    client.OfferLibrary.create = instant_create  # type: ignore[method-assign]
    auth.TokenSource.get = no_token  # type: ignore[method-assign]
    runs = []
    for i in range(args.repeat):
        cfg = ImportConfig(input=source, results=work / f"r{i}.csv", failures=work / f"f{i}.csv",
                           credentials=Credentials("id", "secret", "org"), rate=RateLimit(1e6), concurrency=16,
                           on_existing="create", preflight=False)  # no sandbox to read: the sending path alone
        cpu, wall = time.process_time(), time.perf_counter()
        summary = engine.import_file(cfg)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        assert summary.created == args.rows, summary.counts
        runs.append((cpu, wall))
    cpu, wall = min(runs)
    print(f"{args.rows} rows, no network, best of {args.repeat}: wall {wall:.2f} s, CPU {cpu:.2f} s = "
          f"{cpu / args.rows * 1e6:.0f} µs per row (reading, validating, building, pacing, journal, results; "
          f"imports done before timing); all runs {', '.join(f'{c / args.rows * 1e6:.0f}' for c, _ in runs)} µs")


if __name__ == "__main__":
    main()
