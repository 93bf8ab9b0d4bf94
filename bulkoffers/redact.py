"""Secrets never leave the process: one Redactor masks them in every file, line and log record that
bulkoffers writes (results, failures, journal, rollback report, error lines, --verbose logs)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging


MIN_SECRET = 8  # shorter "secrets" are refused where credentials are read (credentials.checked)
_VALUE_CHARS = r"[^\s\"'=&,;:()<>\[\]{}]*"  # a value's characters: up to a space, quote or separator


class Redactor:
    """Replaces secret values wherever text leaves the process. Secrets can be added as they become
    known (credentials are resolved after the command line is parsed).

    The whole value holding a secret is masked (a token with a prefix, a word the secret is glued
    to), never only the secret's characters inside it: masking a few letters of ordinary words would
    show what the secret is."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        known = set(self._secrets) | {s for s in secrets if s and len(s) >= MIN_SECRET}
        self._secrets = sorted(known, key=len, reverse=True)
        if self._secrets:
            either = "|".join(re.escape(s) for s in self._secrets)
            self._pattern = re.compile(f"{_VALUE_CHARS}(?:{either}){_VALUE_CHARS}")

    def __call__(self, text: str) -> str:
        if not text or self._pattern is None or not any(s in text for s in self._secrets):
            return text  # (the usual case, without running the pattern)
        return self._pattern.sub("***", text)

    def log_filter(self) -> logging.Filter:
        """A logging filter that redacts each record's final message."""
        import logging

        redact = self

        class Redacting(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                record.msg, record.args = redact(record.getMessage()), ()
                return True

        return Redacting()
