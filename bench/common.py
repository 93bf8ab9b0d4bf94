"""Helpers shared by the bench scripts: a separate emulator process on 127.0.0.1, CSV generators."""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
sys.path.insert(0, str(ROOT))

from bulkoffers.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID  # noqa: E402

CRED_ARGS = ["--client-id", DEFAULT_CLIENT_ID, "--client-secret", DEFAULT_CLIENT_SECRET, "--org-id", DEFAULT_ORG_ID]


def env() -> dict[str, str]:
    """The environment without BULKOFFERS_* settings, and without PYTHONDONTWRITEBYTECODE (set on
    this sandbox): an installed package has its bytecode cached, so a bench should not compile
    bulkoffers' modules from source on every start (~30 ms)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BULKOFFERS_") and k != "PYTHONDONTWRITEBYTECODE"}


class EmulatorProcess:
    """`bulkoffers emulator` in its own process (its own core), on a free loopback port."""

    def __init__(self, *flags: str, cpu: int | None = None) -> None:
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        self.proc = subprocess.Popen([*pin, PY, "-m", "bulkoffers", "emulator", "--port", "0", *flags], cwd=ROOT,
                                     env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"emulator did not start: {line}")
        self.url = f"http://127.0.0.1:{match.group(1)}"

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self.admin("/__emulator/stats")

    def reset(self) -> None:
        self.admin("/__emulator/reset", {})

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cpu_seconds(self) -> float:
        """User + system CPU the emulator process has used so far (from /proc, Linux)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def args(self) -> list[str]:
        return ["--base-url", self.url, "--ims-url", self.url, *CRED_ARGS]


def write_offers(path: Path, n: int, prefix: str = "bench") -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "channel", "placement", "component_type", "delivery_url", "start_date", "end_date",
                    "priority"])
        for i in range(n):
            w.writerow([f"{prefix} {i:07d}", "web", "offerPlacementWeb01", "imagelink",
                        f"https://cdn.example.com/{i}.png", "2026-01-01", "2027-01-01", i % 10])
    return path


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True)
    return time.perf_counter() - start, out


def children_cpu() -> float:
    """User + system CPU of all waited-for child processes so far; subtract two readings for one run."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
