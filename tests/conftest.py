"""Shared fixtures: a real emulator on 127.0.0.1 (port 0) in a background thread, and helpers to run
the real `bulkoffers` command against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkoffers.emulator import (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID, EmulatorConfig,
                                 EmulatorServer)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig()) as emu:
        yield emu


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKOFFERS_")}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    """The installed command, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "bulkoffers", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or cli_env(), cwd=kw.pop("cwd", ROOT), **kw)


def emulator_args(emu: EmulatorServer) -> list[str]:
    return ["--base-url", emu.url, "--ims-url", emu.url, "--client-id", DEFAULT_CLIENT_ID,
            "--client-secret", DEFAULT_CLIENT_SECRET, "--org-id", DEFAULT_ORG_ID]
