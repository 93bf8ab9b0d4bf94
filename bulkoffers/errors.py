"""Every error bulkoffers raises on purpose derives from BulkOffersError:

    BulkOffersError
    ├── ConfigError        flags, mapping file, credentials or output paths are wrong       (exit 2)
    │   └── MissingName    no column gives the offers' names (a workbook may hold them on
    │                      another sheet: source.load looks there)
    ├── InputError         the spreadsheet cannot be read (at all, or past some line)         (exit 3)
    ├── RowError           one row is invalid: collected per offer and written to results;
    │                      it never stops a run                                             (exit 1)
    ├── ApiError           the API refused in a way no retry will fix
    │   ├── FatalApiError  every further request would fail too (401 after a refresh, 403, a
    │   │                  create endpoint that is not there): the run stops                (exit 2)
    │   └── LookupFailed   looking an offer up failed too, so whether it exists is unknown;
    │                      the row is recorded as failed "may exist"                        (exit 1)
    └── Interrupted        Ctrl-C: requests in flight finished, the rest not attempted     (exit 130)

An error that ends a run which has begun writing results carries the run's `summary`, so the caller
can still report what happened to every row. Third-party exceptions (aiohttp, pandas, pydantic) are
translated into these at one boundary each, with `raise ... from exc`, so the CLI prints one
`Error: ...` line instead of a traceback.
"""

from __future__ import annotations

from typing import Any


class BulkOffersError(Exception):
    """Root of bulkoffers' own errors. `hint` names the flag or step that fixes it; `summary` is the
    run's summary when the error ended a run that had started (results were written)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.summary: Any = None

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class ConfigError(BulkOffersError):
    """Wrong flags, mapping file, credentials or output paths."""


class MissingName(ConfigError):
    """No column gives the offers' names (the one column every file needs)."""


class InputError(BulkOffersError):
    """The input file cannot be read (missing, wrong format, unknown sheet, no header, a broken line)."""


class RowError(BulkOffersError):
    """One row is invalid: `column` names the field, the message says what is wrong and how to fix it."""

    def __init__(self, row: int, column: str, message: str) -> None:
        super().__init__(f"row {row}, {column}: {message}")
        self.row, self.column, self.message = row, column, message


class ApiError(BulkOffersError):
    """The API refused and a retry will not help."""

    def __init__(self, message: str, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


class FatalApiError(ApiError):
    """Further requests would fail the same way (bad credentials, missing permission): stop the run."""


class LookupFailed(ApiError):
    """The lookup after a lost answer failed too: whether the offer exists is unknown."""


class Interrupted(BulkOffersError):
    """The user pressed Ctrl-C (or sent SIGTERM): the run stopped early and said what is left."""

    def __init__(self, message: str = "interrupted") -> None:
        super().__init__(message)
