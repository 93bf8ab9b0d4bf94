"""Offer storage for the emulator: stdlib sqlite3, in memory or in a file that survives restarts.

One table serves both flavors, since both are views of the same Offer Library. The body is kept as
the client sent it; the view functions in app.py shape it per flavor.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offers (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox   TEXT NOT NULL,
    flavor    TEXT NOT NULL,
    id        TEXT NOT NULL UNIQUE,
    at_id     TEXT NOT NULL,
    name      TEXT NOT NULL,
    status    TEXT NOT NULL,
    body      TEXT NOT NULL,
    etag      INTEGER NOT NULL,
    created   TEXT NOT NULL,
    modified  TEXT NOT NULL,
    client_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS offers_name ON offers (sandbox, name);
CREATE INDEX IF NOT EXISTS offers_at_id ON offers (at_id);
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Store:
    def __init__(self, path: str | None = None) -> None:
        # The emulator runs on one event loop thread, but tests may read stats from another.
        self._db = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _row(row: sqlite3.Row) -> StoredOffer:
        data = dict(row)
        data["body"] = json.loads(data["body"])
        return StoredOffer(**data)

    def insert(self, sandbox: str, flavor: str, name: str, status: str, body: dict[str, Any],
               client_id: str) -> StoredOffer:
        suffix = secrets.token_hex(8)
        if flavor == "xcore":
            offer_id, at_id = str(uuid.uuid1()), f"xcore:fallback-offer:{suffix}"
        else:
            offer_id = at_id = f"dps:fallback-offer:{suffix}"
        now = _now()
        cur = self._db.execute(
            "INSERT INTO offers (sandbox, flavor, id, at_id, name, status, body, etag, created, modified,"
            " client_id) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
            (sandbox, flavor, offer_id, at_id, name, status, json.dumps(body), now, now, client_id),
        )
        return self.get_seq(int(cur.lastrowid or 0))

    def get_seq(self, seq: int) -> StoredOffer:
        return self._row(self._db.execute("SELECT * FROM offers WHERE seq = ?", (seq,)).fetchone())

    def get(self, sandbox: str, offer_id: str) -> StoredOffer | None:
        row = self._db.execute(
            "SELECT * FROM offers WHERE sandbox = ? AND (id = ? OR at_id = ?)", (sandbox, offer_id, offer_id)
        ).fetchone()
        return self._row(row) if row else None

    def update(self, offer: StoredOffer, body: dict[str, Any], name: str, status: str) -> StoredOffer:
        self._db.execute(
            "UPDATE offers SET body = ?, name = ?, status = ?, etag = etag + 1, modified = ? WHERE seq = ?",
            (json.dumps(body), name, status, _now(), offer.seq),
        )
        return self.get_seq(offer.seq)

    def delete(self, offer: StoredOffer) -> None:
        self._db.execute("DELETE FROM offers WHERE seq = ?", (offer.seq,))

    def count(self, sandbox: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM offers WHERE sandbox = ?", (sandbox,)).fetchone()[0])

    def scan(self, sandbox: str, name: str | None = None) -> list[StoredOffer]:
        """All offers of a sandbox in creation order, narrowed by exact name when given (indexed)."""
        if name is None:
            rows = self._db.execute("SELECT * FROM offers WHERE sandbox = ? ORDER BY seq", (sandbox,))
        else:
            rows = self._db.execute(
                "SELECT * FROM offers WHERE sandbox = ? AND name = ? ORDER BY seq", (sandbox, name)
            )
        return [self._row(r) for r in rows]

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

    def clear(self) -> None:
        self._db.execute("DELETE FROM offers")
