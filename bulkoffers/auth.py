"""Access tokens: a ready token, or IMS client credentials fetched on demand and refreshed before expiry
and once on a 401. Concurrent workers share one refresh. The HTTP call itself is injected (client.py),
so this module stays free of aiohttp."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

from .config import Credentials
from .errors import FatalApiError

# fetch(client_id, client_secret, scopes) → (access_token, expires_in seconds)
Fetch = Callable[[str, str, tuple[str, ...]], Awaitable[tuple[str, float]]]


class TokenSource:
    REFRESH_MARGIN = 300.0  # seconds before expiry a token is replaced (a tenth of short lifetimes)

    def __init__(self, creds: Credentials, fetch: Fetch, clock: Callable[[], float] = time.monotonic) -> None:
        self._creds, self._fetch, self._clock = creds, fetch, clock
        self._token: str | None = creds.access_token
        self._expires = float("inf") if creds.access_token else 0.0
        self._margin = self.REFRESH_MARGIN
        self._lock = anyio.Lock()

    @property
    def can_refresh(self) -> bool:
        return bool(self._creds.client_id and self._creds.client_secret)

    async def get(self) -> str:
        if self._token and self._clock() < self._expires - self._margin:
            return self._token
        return await self._refresh(self._token)

    async def invalidate(self, stale: str) -> str:
        """After a 401 with `stale`: one refresh for all workers that saw it."""
        if not self.can_refresh:
            raise FatalApiError("the access token was refused (HTTP 401)",
                                status=401) from None
        return await self._refresh(stale, force=True)

    async def _refresh(self, stale: str | None, force: bool = False) -> str:
        async with self._lock:
            fresh = self._token and self._token != stale
            if fresh or (not force and self._token and self._clock() < self._expires - self._margin):
                assert self._token is not None
                return self._token
            if not self.can_refresh:
                raise FatalApiError("no access token and no client credentials to get one", status=401)
            assert self._creds.client_id and self._creds.client_secret
            token, ttl = await self._fetch(self._creds.client_id, self._creds.client_secret, self._creds.scopes)
            self._token, self._expires = token, self._clock() + ttl
            self._margin = min(self.REFRESH_MARGIN, ttl / 10)
            return token
