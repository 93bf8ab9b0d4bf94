"""Every error bulkoffers raises on purpose derives from BulkOffersError:

    BulkOffersError
    ├── ConfigError        flags, mapping file or credentials are wrong      (exit 2)
    ├── InputError         the spreadsheet cannot be read at all               (exit 3)
    ├── RowError           one row is invalid; recorded in results, never stops a run
    └── ApiError           the API refused in a way no retry will fix
        └── FatalApiError  every further request would fail too (401 after refresh, 403): stop the run

Third-party exceptions (aiohttp, pandas, pydantic) are translated into these at one boundary each,
with `raise ... from exc`, so the CLI can print one `Error: ...` line instead of a traceback.
"""

from __future__ import annotations


class BulkOffersError(Exception):
    """Root of bulkoffers' own errors. `hint` names the flag or step that fixes it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class ConfigError(BulkOffersError):
    """Wrong flags, mapping file, credentials or output paths."""


class InputError(BulkOffersError):
    """The input file cannot be read (missing, wrong format, unknown sheet, no header)."""


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
