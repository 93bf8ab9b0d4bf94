"""Storage for the emulator: stdlib sqlite3, in memory or in a file that survives restarts.

Offers keep the body as the client sent it; dps.py and xcore.py shape it per flavor, and each flavor
sees the offers created through it (the DPS persistence API and the legacy xcore repository are
separate stores of the same library). Placements are shared: each has a DPS id and an xcore @id.
A sandbox gets its seeded placements the first time it is used.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offers (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox    TEXT NOT NULL,
    flavor     TEXT NOT NULL,
    id         TEXT NOT NULL UNIQUE,
    at_id      TEXT NOT NULL,
    name       TEXT NOT NULL,
    status     TEXT NOT NULL,
    body       TEXT NOT NULL,
    etag       INTEGER NOT NULL,
    created    TEXT NOT NULL,
    modified   TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    visible_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS offers_name ON offers (sandbox, name);
CREATE INDEX IF NOT EXISTS offers_at_id ON offers (at_id);
CREATE TABLE IF NOT EXISTS placements (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox        TEXT NOT NULL,
    id             TEXT NOT NULL,
    at_id          TEXT NOT NULL,
    instance_id    TEXT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL,
    channel        TEXT NOT NULL,
    component_type TEXT NOT NULL,
    etag           INTEGER NOT NULL,
    created        TEXT NOT NULL,
    UNIQUE (sandbox, id),
    UNIQUE (sandbox, at_id)
);
CREATE TABLE IF NOT EXISTS sandboxes (name TEXT PRIMARY KEY);
"""


@dataclass(frozen=True)
class StoredOffer:
    seq: int
    sandbox: str
    flavor: str
    id: str
    at_id: str
    name: str
    status: str
    body: dict[str, Any]
    etag: int
    created: str
    modified: str
    client_id: str
    visible_at: float


@dataclass(frozen=True)
class Placement:
    """A placement: where an offer is shown; it fixes one channel and one component type."""

    seq: int
    sandbox: str
    id: str  # the DPS id
    at_id: str  # the xcore @id (xcore:offer-placement:…)
    instance_id: str  # the xcore instanceId
    name: str
    description: str
    channel: str  # channel URI
    component_type: str  # imagelink, html, text or json
    etag: int
    created: str


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Store:
    def __init__(self, path: str | None = None, seeds: Iterable[dict[str, str]] = ()) -> None:
        # The emulator runs on one event loop thread, but tests may read stats from another.
        self._db = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(offers)")}
        if "visible_at" not in columns:  # a --db file from an earlier version
            self._db.execute("ALTER TABLE offers ADD COLUMN visible_at REAL NOT NULL DEFAULT 0")
        self._seeds = list(seeds)
        self._known = {r[0] for r in self._db.execute("SELECT name FROM sandboxes")}

    def close(self) -> None:
        self._db.close()

    # ---- sandboxes -----------------------------------------------------------------------------------

    def sandbox(self, name: str) -> None:
        """A sandbox comes into being when first used, with the seeded placements."""
        if name in self._known:
            return
        self._known.add(name)
        self._db.execute("INSERT OR IGNORE INTO sandboxes (name) VALUES (?)", (name,))
        for seed in self._seeds:
            self.add_placement(name, seed)

    def sandboxes(self) -> list[str]:
        return sorted(self._known)

    # ---- offers --------------------------------------------------------------------------------------

    @staticmethod
    def _offer(row: sqlite3.Row) -> StoredOffer:
        data = dict(row)
        data["body"] = json.loads(data["body"])
        return StoredOffer(**data)

    def insert(self, sandbox: str, flavor: str, name: str, status: str, body: dict[str, Any],
               client_id: str, index_lag: float = 0.0, created: str | None = None) -> StoredOffer:
        suffix = secrets.token_hex(8)
        if flavor == "xcore":
            offer_id, at_id = str(uuid.uuid1()), f"xcore:fallback-offer:{suffix}"
        else:
            offer_id = at_id = f"dps:fallback-offer:{suffix}"
        now = created or now_iso()
        cur = self._db.execute(
            "INSERT INTO offers (sandbox, flavor, id, at_id, name, status, body, etag, created, modified,"
            " client_id, visible_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
            (sandbox, flavor, offer_id, at_id, name, status, json.dumps(body), now, now, client_id,
             time.time() + index_lag),
        )
        return self.get_seq(int(cur.lastrowid or 0))

    def get_seq(self, seq: int) -> StoredOffer:
        return self._offer(self._db.execute("SELECT * FROM offers WHERE seq = ?", (seq,)).fetchone())

    def get(self, sandbox: str, flavor: str, offer_id: str) -> StoredOffer | None:
        """Lookup by id is immediate: no index lag."""
        row = self._db.execute(
            "SELECT * FROM offers WHERE sandbox = ? AND flavor = ? AND (id = ? OR at_id = ?)",
            (sandbox, flavor, offer_id, offer_id)).fetchone()
        return self._offer(row) if row else None

    def update(self, offer: StoredOffer, body: dict[str, Any], name: str, status: str,
               client_id: str) -> StoredOffer:
        self._db.execute(
            "UPDATE offers SET body = ?, name = ?, status = ?, etag = etag + 1, modified = ?, client_id = ?"
            " WHERE seq = ?", (json.dumps(body), name, status, now_iso(), client_id, offer.seq))
        return self.get_seq(offer.seq)

    def delete(self, offer: StoredOffer) -> None:
        self._db.execute("DELETE FROM offers WHERE seq = ?", (offer.seq,))

    def count(self, sandbox: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM offers WHERE sandbox = ?", (sandbox,)).fetchone()[0])

    def scan(self, sandbox: str, flavor: str | None = None, name: str | None = None,
             visible_only: bool = False) -> list[StoredOffer]:
        """Offers of a sandbox in creation order; narrowed by flavor and exact name (indexed). With
        `visible_only`, as list and search show them: without those the index has not caught up with."""
        sql = "SELECT * FROM offers WHERE sandbox = ?"
        args: list[Any] = [sandbox]
        if flavor is not None:
            sql, args = sql + " AND flavor = ?", [*args, flavor]
        if name is not None:
            sql, args = sql + " AND name = ?", [*args, name]
        if visible_only:
            sql, args = sql + " AND visible_at <= ?", [*args, time.time()]
        return [self._offer(r) for r in self._db.execute(sql + " ORDER BY seq", args)]

    def sandbox_stats(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for sandbox, count in self._db.execute("SELECT sandbox, COUNT(*) FROM offers GROUP BY sandbox"):
            dups = {
                name: n
                for name, n in self._db.execute(
                    "SELECT name, COUNT(*) FROM offers WHERE sandbox = ? GROUP BY name HAVING COUNT(*) > 1",
                    (sandbox,),
                )
            }
            out[sandbox] = {"offers": count, "duplicate_names": dups, "duplicates": sum(dups.values()) - len(dups)}
        return out

    # ---- placements ----------------------------------------------------------------------------------

    @staticmethod
    def _placement(row: sqlite3.Row) -> Placement:
        return Placement(**dict(row))

    def add_placement(self, sandbox: str, spec: dict[str, str]) -> Placement:
        suffix = secrets.token_hex(8)
        cur = self._db.execute(
            "INSERT INTO placements (sandbox, id, at_id, instance_id, name, description, channel, component_type,"
            " etag, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
            (sandbox, spec.get("id") or f"offerPlacement{suffix}", spec.get("at_id") or f"xcore:offer-placement:{suffix}",
             spec.get("instance_id") or str(uuid.uuid1()), spec["name"], spec.get("description", ""),
             spec["channel"], spec["component_type"], now_iso()))
        return self._placement(self._db.execute("SELECT * FROM placements WHERE seq = ?",
                                                (cur.lastrowid,)).fetchone())

    def placements(self, sandbox: str) -> list[Placement]:
        self.sandbox(sandbox)
        return [self._placement(r) for r in
                self._db.execute("SELECT * FROM placements WHERE sandbox = ? ORDER BY seq", (sandbox,))]

    def placement(self, sandbox: str, ref: str) -> Placement | None:
        """A placement by DPS id, xcore @id or instanceId."""
        self.sandbox(sandbox)
        row = self._db.execute("SELECT * FROM placements WHERE sandbox = ? AND (id = ? OR at_id = ? OR"
                               " instance_id = ?)", (sandbox, ref, ref, ref)).fetchone()
        return self._placement(row) if row else None

    def clear(self) -> None:
        self._db.execute("DELETE FROM offers")
        self._db.execute("DELETE FROM placements")
        self._db.execute("DELETE FROM sandboxes")
        self._known.clear()
