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
        self._status = ""

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
            self._postfix(rate)
            self._bar.update(1)

    def _postfix(self, rate: float | None = None) -> None:
        fields: dict[str, Any] = {"created": self._created, "failed": self._failed}
        if rate is not None:
            self._rate = rate
        if getattr(self, "_rate", None) is not None:
            fields["pace"] = f"{self._rate:.3g}/s"  # in force now (it moves with 429s and --rate auto)
        if self._status:
            fields["waiting"] = self._status
        self._bar.set_postfix(fields, refresh=False)

    def status(self, text: str) -> None:
        """What the run waits for (rows in doubt until their settle window passes), beside the counts."""
        if text != self._status:
            self._status = text
            if self._bar is not None:
                self._postfix()
                self._bar.refresh()

    def note(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self, stopped: str = "") -> None:
        """Ends the bar; `stopped` says the run ended early, so the bar keeps its count honestly."""
        if self._bar is not None:
            if stopped:
                self._bar.set_description_str(stopped, refresh=False)
            self._bar.close()
            self._bar = None
