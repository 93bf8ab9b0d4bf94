"""What the command line prints. For people: per-row lines on stdout (problems, plans, verdicts) and
summaries, notes and errors on stderr. With --json: every line goes to stderr, and one JSON object goes
to stdout when the command ends, so CI jobs and schedulers read a run without parsing text:

    command        import, validate, resume, retry, rollback or verify
    exit_code      as the process exits (0 all done, 1 rows failed, 2 usage/credentials, 3 input, 130)
    ok             exit_code == 0
    error          the one-line error, or null
    counts         rows per outcome (import, resume, retry: created, updated, unchanged, failed, invalid,
                   skipped, not_attempted, may_exist; validate: valid, invalid and, online, create,
                   update, unchanged, skip, fail; verify: present, missing, duplicated, changed;
                   rollback: deleted, gone, restored, failed)
    rows, offers   rows and offers seen
    results, failures, report   the files written (failures null when none)
    elapsed_seconds, rate_achieved   wall time; rows created or updated per second
    settings       what the run used: api, sandbox, base_url, rate, concurrency, retries, deadline,
                   timeout, settle, on_existing, preflight, input (never credentials)
    warnings       the warnings printed
Secrets never appear: every line and the object pass through the process's Redactor.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import click

from .redact import Redactor

REDACT = Redactor()  # every secret this process learns is masked in anything it prints
OUTCOMES = ("created", "updated", "unchanged", "failed", "invalid", "skipped", "not_attempted", "may_exist")


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


class Console:
    """The command's output; `start` once per command (tests run several in one process)."""

    def __init__(self) -> None:
        self.json: dict[str, Any] | None = None

    def start(self, command: str, as_json: bool) -> None:
        self.json = {"command": command, "exit_code": None, "ok": None, "error": None, "counts": {},
                     "settings": {}, "warnings": []} if as_json else None

    def line(self, text: str) -> None:
        """A per-row line: stdout for people, stderr when stdout carries the JSON object."""
        click.echo(REDACT(text), err=self.json is not None)

    def note(self, text: str) -> None:
        click.echo(REDACT(text), err=True)

    def warn(self, text: str) -> None:
        self.note(f"warning: {text}")
        if self.json is not None:
            self.json["warnings"].append(REDACT(text))

    def set(self, **fields: Any) -> None:
        if self.json is not None:
            self.json.update(fields)

    def settings(self, **settings: Any) -> None:
        if self.json is not None:
            self.json["settings"].update({k: str(v) if k in ("input", "results") else v for k, v in settings.items()})

    def summary(self, summary: Any, dry: bool = False, sandbox: str | None = None) -> None:
        """The summary line of a run (or dry run), and its fields for --json."""
        counts = summary.counts
        self.set(counts=dict(counts), rows=summary.rows, offers=summary.offers,
                 elapsed_seconds=round(summary.elapsed, 3))
        for w in summary.warnings:
            self.warn(w)
        if dry:
            plan = ", ".join(f"{counts[k]} {k}" for k in ("create", "update", "unchanged", "skip", "fail")
                             if counts.get(k))
            against = f"; rows in sandbox {sandbox!r}: {plan or 'nothing to send'}" if sandbox is not None else ""
            self.note(f"{plural(summary.rows, 'row')}: {counts.get('valid', 0)} valid in {plural(summary.offers, 'offer')}, "
                      f"{counts.get('invalid', 0)} invalid{against} ({summary.elapsed:.1f} s)")
            return
        written = summary.created + counts.get("updated", 0)
        rate = written / summary.elapsed if summary.elapsed else 0.0
        self.set(counts={**dict.fromkeys(OUTCOMES, 0), **counts})
        self.set(results=summary.results, failures=summary.failures or None, rate_achieved=round(rate, 2))
        shown = ("created", "updated", "unchanged", "failed", "invalid", "skipped")
        parts = {k: f"{counts.get(k, 0)} {k}" for k in shown if counts.get(k) or k not in ("updated", "unchanged")}
        if counts.get("may_exist"):  # never let "failed" read as "absent" when nobody knows
            parts["failed"] += f" ({counts['may_exist']} may exist: `bulkoffers verify` or `retry` looks them up)"
        what = "rows created or updated/s" if counts.get("updated") else "rows created/s"
        self.note(f"{plural(summary.rows, 'row')}: {', '.join(parts.values())} in {summary.elapsed:.1f} s "
                  f"({rate:.1f} {what})")
        self._pace(summary)
        self.note(f"results: {summary.results}")
        if summary.failures:
            self.note(f"failures: {summary.failures} (fix and import it again)")

    def _pace(self, summary: Any) -> None:
        """What the run learned of the API's limit, so the next run can pass it as --rate N."""
        # Rounded down: the figure is passed back as --rate, which must stay under the limit.
        found = math.floor(summary.rate_found * 10) / 10 if summary.rate_found else None
        self.set(rate_found=found, pace=round(summary.pace, 1) if summary.pace else None)
        if found:
            whose = "found" if summary.auto else "the API answered 429 above"
            self.note(f"pace {whose}: {found:g} requests/s (next time: --rate {found:g})")
        elif summary.auto and summary.pace:
            self.note(f"pace: {summary.pace:.1f} requests/s, no 429 met (raise --max-rate to go faster)")

    def error(self, message: str) -> None:
        message = REDACT(message)
        click.echo(f"Error: {message}", err=True)
        self.set(error=message)

    def finish(self, code: int) -> None:
        """Ends the command: with --json, the object goes to stdout."""
        if self.json is not None:
            self.json.update(exit_code=code, ok=code == 0)
            click.echo(REDACT(json.dumps(self.json, default=str)))
            sys.stdout.flush()
            self.json = None


CONSOLE = Console()
