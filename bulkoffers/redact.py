"""Secrets never leave the process: one Redactor masks them in every file, line and log record that
bulkoffers writes (results, failures, journal, rollback report, error lines, --verbose logs)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging


class Redactor:
    """Replaces secret values wherever text leaves the process. Secrets can be added as they become
    known (credentials are resolved after the command line is parsed)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        known = set(self._secrets) | {s for s in secrets if s and len(s) >= 4}
        self._secrets = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def log_filter(self) -> logging.Filter:
        """A logging filter that redacts each record's final message."""
        import logging

        redact = self

        class Redacting(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                record.msg, record.args = redact(record.getMessage()), ()
                return True

        return Redacting()
