"""`bulkoffers verify RESULTS`: does every offer the run created exist once, with the run's content?

Each offer the journal records as created is read by its id (immediate: no index lag), which proves it
present and shows whether its content is still the run's (the journal keeps a digest of it). Its name
is then looked up (after the settle window from the run's last send, so that list and search have
caught up) to find other offers with the same name and content: copies the run may have made when an
answer was lost. Per row: present, missing, duplicated or changed.

`fix` deletes such copies, but only those the run itself made: same name and content, not the id in the
results, created by the same client as the run's own offer, and no earlier than the run's first send
(less a margin for clocks). Any other offer is left alone; the journal and results stay as they are.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import anyio

from .client import Found, open_library
from .config import ApiConfig
from .errors import FatalApiError
from .payloads import content_digest
from .ratelimit import RateLimiter
from .redact import Redactor
from .results import VerifyWriter
from .runrecord import JournalState
from .sender import Sender

Status = Literal["present", "missing", "duplicated", "changed", "unknown"]
CLOCK_MARGIN = 300.0  # seconds: the service's clock may differ from ours; copies older than the run minus this are not ours
NAME_LOOKUPS = 25  # up to this many names are looked up one by one; more, and the sandbox is listed once


@dataclass
class RowCheck:
    row: int
    name: str
    id: str
    status: Status
    copies: list[str] = field(default_factory=list)  # other offers with the same name and the run's content
    detail: str = ""
    action: str = ""  # what --fix did


@dataclass
class VerifyReport:
    checks: list[RowCheck]
    deleted: int = 0
    path: str = ""

    @property
    def counts(self) -> Counter[str]:
        return Counter(c.status for c in self.checks)

    @property
    def ok(self) -> bool:
        """Every created row is present once, with the run's content."""
        return all(c.status == "present" for c in self.checks)


def verify(state: JournalState, api: ApiConfig, out: Path, fix: bool = False,
           confirm: Callable[[int], bool] | None = None, note: Callable[[str], None] = lambda _: None
           ) -> VerifyReport:
    """Checks the offers the run of `state` created; with `fix`, deletes the copies it made (after
    `confirm(n)` says yes, when given). Writes one line per checked row to `out`."""
    return anyio.run(_verify, state, api, out, fix, confirm, note)


async def _verify(state: JournalState, api: ApiConfig, out: Path, fix: bool,
                  confirm: Callable[[int], bool] | None, note: Callable[[str], None]) -> VerifyReport:
    rows_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row, entry in sorted(state.done.items()):
        if entry["outcome"] == "created" and entry.get("id"):
            rows_of[entry["id"]].append({**entry, "row": row})
    report = VerifyReport([], path=str(out))
    wait = state.last_write + api.settle - time.time()
    if rows_of and wait > 0:  # list and search may not show the run's last offers yet
        note(f"waiting {wait:.0f} s for the settle window after the run's last send (--settle {api.settle:g})")
        await anyio.sleep(wait)
    async with open_library(api) as lib:
        sender = Sender(lib, RateLimiter(api.rate), api.retry)
        recorded: dict[str, Found | None] = {}
        for offer_id in rows_of:
            recorded[offer_id] = await sender.read(offer_id)
        names = {rows[0]["name"] for rows in rows_of.values()}
        by_name = await _offers_named(sender, names)
        for offer_id, rows in rows_of.items():
            report.checks += _check(api, rows, recorded[offer_id], by_name.get(rows[0]["name"], []))
        if fix:
            await _fix(sender, report, rows_of, recorded, by_name, state, api, confirm)
    with VerifyWriter(out, Redactor(api.credentials.secrets)) as writer:
        for check in sorted(report.checks, key=lambda c: c.row):
            writer.write(check.row, check.name, check.id, check.status, " ".join(check.copies), check.action,
                         check.detail)
    return report


async def _offers_named(sender: Sender, names: set[str]) -> dict[str, list[Found]]:
    """Every offer with one of these names: one lookup per name, or one listing when names are many."""
    found: dict[str, list[Found]] = defaultdict(list)
    if len(names) <= NAME_LOOKUPS:
        for name in names:
            found[name] = await sender.named(name)
        return found
    async for page in sender.pages(lambda: sender.lib.list_page(limit=100)):
        for item in page:
            if item.name in names:
                found[item.name].append(item)
    return found


def _check(api: ApiConfig, rows: list[dict[str, Any]], own: Found | None, named: list[Found]) -> list[RowCheck]:
    """The verdict for each row of one offer the run created."""
    first = rows[0]
    digest = next((r["digest"] for r in rows if r.get("digest")), None)
    copies = [f.id for f in named if f.id != first["id"] and digest is not None
              and content_digest(f.document, api.target.api) == digest]
    status: Status
    if own is None:
        status, detail = "missing", "no offer has the recorded id any more"
        if copies:
            detail += f"; {len(copies)} other offer(s) have its name and content"
    elif digest is not None and content_digest(own.document, api.target.api) != digest:
        status, detail = "changed", "the offer's content is no longer what the run sent"
    elif copies:
        status, detail = "duplicated", f"{len(copies)} more offer(s) with the same name and content"
    elif digest is None:
        status, detail = "present", "present (the journal of this run keeps no content to compare)"
    else:
        status, detail = "present", ""
    return [RowCheck(r["row"], r["name"], first["id"], status, list(copies), detail) for r in rows]


def _when(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


async def _fix(sender: Sender, report: VerifyReport, rows_of: dict[str, list[dict[str, Any]]],
               recorded: dict[str, Found | None], by_name: dict[str, list[Found]], state: JournalState,
               api: ApiConfig, confirm: Callable[[int], bool] | None) -> None:
    """Deletes the copies the run made (see the module docstring for what counts as the run's)."""
    earliest = (state.first_send or state.last_write) - CLOCK_MARGIN
    doomed: dict[str, list[str]] = {}
    for offer_id, rows in rows_of.items():
        own = recorded[offer_id]
        checks = [c for c in report.checks if c.id == offer_id]
        if own is None or not checks or checks[0].status != "duplicated":
            continue
        ours = []
        for copy in (f for f in by_name.get(rows[0]["name"], []) if f.id in checks[0].copies):
            created = _when(copy.created) if copy.created else None
            same_client = not (copy.creator and own.creator) or copy.creator == own.creator
            if same_client and created is not None and created >= earliest:
                ours.append(copy.id)
        if ours:
            doomed[offer_id] = ours
    total = sum(len(v) for v in doomed.values())
    if total and confirm is not None and not confirm(total):
        return
    for offer_id, copy_ids in doomed.items():
        gone = []
        for copy_id in copy_ids:
            tried = await sender.delete(copy_id)
            status = tried.answer.status if tried.answer is not None else None
            if tried.outcome == "ok" or status == 404:
                gone.append(copy_id)
            elif tried.outcome == "fatal":
                raise FatalApiError(f"the API refused the credentials: {tried.reason}")
        report.deleted += len(gone)
        for check in (c for c in report.checks if c.id == offer_id):
            check.action = f"deleted {len(gone)} of {len(check.copies)} copies: {' '.join(gone)}"
            left = [c for c in check.copies if c not in gone]
            if not left:
                check.status, check.detail, check.copies = "present", "present once after --fix", []
            else:
                check.copies = left
                check.detail += f"; {len(left)} not deleted (not made by this run, or the delete failed)"
