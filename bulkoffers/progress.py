"""The progress bar on stderr (tqdm): created / failed / current rate. Off when stderr is not a
terminal or with --quiet; notes and warnings print either way."""

from __future__ import annotations

import sys
from typing import Any

from .results import RowResult


class TqdmProgress:
    def __init__(self, quiet: bool = False) -> None:
        self._quiet = quiet or not sys.stderr.isatty()
        self._bar: Any = None
        self._created = self._failed = 0

    def start(self, total: int) -> None:
        if self._quiet:
            return
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="row", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def advance(self, result: RowResult, rate: float) -> None:
        if result.outcome == "created":
            self._created += 1
        elif result.outcome in ("failed", "invalid"):
            self._failed += 1
        if self._bar is not None:
            self._bar.set_postfix(created=self._created, failed=self._failed, limit=f"{rate:g}/s", refresh=False)
            self._bar.update(1)

    def note(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
