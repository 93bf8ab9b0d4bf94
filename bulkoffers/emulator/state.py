"""What every part of the emulator shares: its mutable state and the Adobe-style error body."""

from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .settings import EmulatorConfig, Faults
from .store import Store, StoredOffer
from .validation import valid_offer


def error(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    """An Adobe-style JSON error body."""
    body = {"type": f"https://ns.adobe.com/aep/errors/emulator-{status}", "title": title, "status": status,
            "detail": detail, "report": {"detail": detail}, **extra}
    return web.json_response(body, status=status)


class Refused(Exception):
    """An error answer a handler gives by raising it; the app's middleware writes Adobe's error body."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra

    def response(self) -> web.Response:
        return error(self.status, self.title, self.detail, **self.extra)


def find_offer(request: web.Request, sandbox: str, flavor: str, what: str = "offer") -> StoredOffer:
    """The offer the path names (`{id}`: an id or @id) in this sandbox and flavor, or a 404."""
    offer = request.app[STATE].store.get(sandbox, flavor, request.match_info["id"])
    if offer is None:
        raise Refused(404, "Not Found", f"{what} {request.match_info['id']} not found in sandbox {sandbox}")
    return offer


@dataclass
class State:
    """Everything mutable the emulator keeps besides the offers."""

    config: EmulatorConfig
    store: Store
    faults: Faults
    rng: random.Random
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (client_id, expires_at)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    create_times: deque[float] = field(default_factory=deque)  # create arrivals in the last second
    max_creates_1s: int = 0
    creates_seen: int = 0
    first_create: float | None = None
    last_create: float | None = None
    api_times: deque[float] = field(default_factory=deque)  # accepted API requests in the last second

    def valid_offer(self, body: Any, sandbox: str, flavor: str) -> tuple[str, str]:
        """The name and status of a valid offer body for this sandbox (BodyError otherwise)."""
        return valid_offer(body, flavor, self.config.max_content_bytes, lambda ref: self.store.placement(sandbox, ref))

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.api_times.clear()


STATE = web.AppKey("state", State)
