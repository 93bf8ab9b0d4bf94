"""The Offer Library over HTTP, both flavors. The only client-side module that imports aiohttp.

Every request returns an `Answer` (never raises for HTTP or network trouble): classification and
retries are the engine's job. A 401 is answered here by one token refresh and one resend.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, urljoin

import aiohttp
import orjson

from . import __version__
from .auth import TokenSource
from .config import ApiConfig, Credentials, Target
from .errors import ConfigError, FatalApiError
from .payloads import offer_name
from .answers import Answer, auth_hint, excerpt

DPS_ROOT, XCORE_ROOT = "/data/core/dps", "/data/core/xcore"
FALLBACK_SCHEMA = "https://ns.adobe.com/experience/offer-management/fallback-offer;version=0.1"
PLACEMENT_SCHEMA = "https://ns.adobe.com/experience/offer-management/offer-placement;version=0.4"
COMPONENT_TYPE_PREFIX = "https://ns.adobe.com/experience/offer-management/content-component-"
# The xcore headers Adobe documents for creating a fallback offer (the double space is theirs).
XCORE_CONTENT_TYPE = ('application/schema-instance+json; version=1;  '
                      'schema="https://ns.adobe.com/experience/offer-management/fallback-offer;version=0.1"')
XCORE_ACCEPT = "application/vnd.adobe.platform.xcore.xdm.receipt+json; version=1"
log = logging.getLogger("bulkoffers.http")
XCORE_SEARCH_ACCEPT = '*,application/vnd.adobe.platform.xcore.hal+json; schema="https://ns.adobe.com/experience/xcore/hal/results"'
XCORE_INSTANCE_ACCEPT = f'*, application/vnd.adobe.platform.xcore.hal+json; schema="{FALLBACK_SCHEMA}"'
XCORE_PATCH_CONTENT_TYPE = f'application/vnd.adobe.platform.xcore.patch.hal+json; version=1; schema="{FALLBACK_SCHEMA}"'


@dataclass(frozen=True)
class Found:
    """An offer that exists on the server."""

    id: str  # DPS id or xcore instanceId
    at_id: str
    name: str
    document: dict[str, Any]  # as sent (DPS body, or xcore `_instance`) plus server fields
    etag: Any = None  # DPS etag or xcore repo:etag
    created: str = ""  # when the service stored it (its clock)
    creator: str = ""  # the client id (or account) that created it
    modified: str = ""  # when it last changed (its clock)


@dataclass(frozen=True)
class PlacementInfo:
    """A placement of the sandbox: `id` is what a representation names (DPS id, or xcore @id)."""

    id: str
    name: str
    channel: str
    component_type: str  # imagelink, html, text or json
    description: str = ""


class OfferLibrary:
    """async with OfferLibrary(target, creds, timeout, connections) as lib: await lib.create(payload)"""

    def __init__(self, target: Target, creds: Credentials, timeout: float = 30.0, connections: int = 10) -> None:
        self.target, self.creds = target, creds
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 15.0))
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self.tokens = TokenSource(creds, self._fetch_token)
        self.container_id = target.container_id

    async def __aenter__(self) -> OfferLibrary:
        connector = aiohttp.TCPConnector(limit=self._connections + 2, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, raise_for_status=False,
            headers={"User-Agent": f"bulkoffers/{__version__}"},
        )
        return self

    async def __aexit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use OfferLibrary as an async context manager"
        return self._session

    # ---- plumbing --------------------------------------------------------------------------------

    async def _fetch_token(self, client_id: str, secret: str, scopes: tuple[str, ...]) -> tuple[str, float]:
        url = urljoin(self.target.ims_url.rstrip("/") + "/", "ims/token/v3")
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
                "scope": ",".join(scopes)}
        try:
            async with self.session.post(url, data=form) as resp:
                body = await _read_body(resp)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise FatalApiError(f"cannot reach IMS at {self.target.ims_url}: {type(exc).__name__}",
                                hint="check --ims-url and the network") from exc
        if resp.status != 200 or not isinstance(body, dict) or "access_token" not in body:
            detail = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            raise FatalApiError(f"IMS refused the client credentials (HTTP {resp.status}: {detail or 'no details'})",
                                status=resp.status, hint="check the client id and secret; `bulkoffers check-auth` "
                                                         "shows where each value came from")
        log.debug("IMS token fetched for client %s, expires in %s s", client_id, body.get("expires_in"))
        return str(body["access_token"]), float(body.get("expires_in", 86399))

    def _headers(self, token: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}", "x-api-key": self.creds.client_id or "",
                   "x-gw-ims-org-id": self.creds.org_id or "", "x-sandbox-name": self.creds.sandbox}
        headers.update(extra or {})
        return headers

    async def _send(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                    body: Any = None, params: list[tuple[str, str]] | None = None, data: bytes | None = None) -> Answer:
        base = self.target.base_url.rstrip("/")
        if path.startswith(("http://", "https://")):
            # A next link may be absolute; the token only ever goes to the configured host.
            if not path.startswith(base + "/"):
                return Answer(None, transport="refused", body=f"next link points off {base}")
            url = path
        else:
            url = base + path
        if data is None and body is not None:
            data = orjson.dumps(body)
        token = await self.tokens.get()
        for refreshed in (False, True):
            loop = asyncio.get_running_loop()
            start = loop.time()
            try:
                async with self.session.request(method, url, params=params, data=data,
                                                headers=self._headers(token, headers)) as resp:
                    answer = Answer(resp.status, await _read_body(resp), resp.headers.get("Retry-After"),
                                    elapsed=loop.time() - start)
            except asyncio.TimeoutError:
                return Answer(None, transport="timeout", elapsed=loop.time() - start)
            except aiohttp.ClientConnectorError:
                return Answer(None, transport="refused", elapsed=loop.time() - start)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError,
                    aiohttp.ServerConnectionError):
                return Answer(None, transport="disconnected", elapsed=loop.time() - start)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s -> %s in %d ms", method, resp.url, answer.status, answer.elapsed * 1000)
            if answer.status != 401 or refreshed or not self.tokens.can_refresh:
                return answer
            log.debug("401: refreshing the access token once and sending again")
            token = await self.tokens.invalidate(token)
        return answer

    # ---- operations ------------------------------------------------------------------------------

    @property
    def root(self) -> str:
        """The API's base path: next links are relative to it (`/offers?...`, `/{container}/queries/...`)."""
        return DPS_ROOT if self.target.api == "dps" else XCORE_ROOT

    def link(self, href: str) -> str:
        """A next link as a path or URL to request: Adobe writes them relative to the API root; a full
        path (/data/...) or an absolute URL on the configured host is taken as it is."""
        if href.startswith(("http://", "https://", "/data/")):
            return href
        return self.root + (href if href.startswith("/") else "/" + href)

    async def containers(self) -> Answer:
        """xcore: the decisioning containers the credential can see (`choose_container` picks ours)."""
        return await self._send("GET", XCORE_ROOT + "/", params=[
            ("product", "acp"), ("property", "_instance.containerType==decisioning")],
            headers={"Accept": "application/vnd.adobe.platform.xcore.home.hal+json"})

    def choose_container(self, answer: Answer) -> str:
        """xcore: the decisioning container of the requested sandbox in a container listing. The listing
        may hold several sandboxes' containers: the one named for our sandbox is taken; with none named,
        only a single decisioning container can be taken safely."""
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise ConfigError(f"cannot look up the sandbox's decisioning container: {excerpt(answer)}",
                              hint="check --sandbox and --base-url, or pass --container-id")
        items = [i for i in next(iter(answer.body.get("_embedded", {}).values()), []) if isinstance(i, dict)]
        items = [i for i in items if (i.get("_instance") or {}).get("containerType", "decisioning") == "decisioning"]
        sandbox = self.creds.sandbox
        named = [i for i in items if _sandbox_of(i) is not None]
        mine = [i for i in named if _sandbox_of(i) == sandbox]
        if mine:
            chosen = mine[0]
        elif len(items) == 1 and not named:
            chosen = items[0]
        elif not items:
            raise ConfigError(f"sandbox {sandbox!r} has no decisioning container",
                              hint="check --sandbox, or pass --container-id")
        else:
            listed = ", ".join(f"{i.get('instanceId')} ({_sandbox_of(i) or 'no sandbox named'})" for i in items)
            raise ConfigError(f"no decisioning container for sandbox {sandbox!r} among: {listed}",
                              hint="check --sandbox, or pass --container-id")
        self.container_id = str(chosen["instanceId"])
        return self.container_id

    async def create(self, payload: dict[str, Any], data: bytes | None = None) -> Answer:
        """POST one offer. `data` is the payload's JSON when the caller encoded it already."""
        if self.target.api == "dps":
            # The query is part of the path: yarl need not build it again for every request.
            return await self._send("POST", f"{DPS_ROOT}/offers?offer-type=fallback", body=payload, data=data,
                                    headers={"Content-Type": "application/json"})
        return await self._send("POST", f"{XCORE_ROOT}/{self.container_id}/instances", body=payload,
                                data=data, headers={"Content-Type": XCORE_CONTENT_TYPE, "Accept": XCORE_ACCEPT})

    def _offer_path(self, offer_id: str) -> str:
        if self.target.api == "dps":
            return f"{DPS_ROOT}/offers/{quote(offer_id, safe='')}?offer-type=fallback"
        return f"{XCORE_ROOT}/{self.container_id}/instances/{quote(offer_id, safe='')}"

    async def read(self, offer_id: str) -> Answer:
        """One offer by its id (DPS id, xcore instanceId): immediate, unlike list and search."""
        accept = "*,application/json" if self.target.api == "dps" else XCORE_INSTANCE_ACCEPT
        return await self._send("GET", self._offer_path(offer_id), headers={"Accept": accept})

    async def patch(self, offer_id: str, ops: list[dict[str, Any]], etag: str | int | None = None) -> Answer:
        """A JSON Patch of one offer: DPS paths like /name; xcore paths under /_instance/, with If-Match."""
        if self.target.api == "dps":
            return await self._send("PATCH", self._offer_path(offer_id), body=ops,
                                    headers={"Content-Type": "application/json"})
        headers = {"Content-Type": XCORE_PATCH_CONTENT_TYPE, "Accept": XCORE_ACCEPT}
        if etag is not None:
            headers["If-Match"] = str(etag)
        return await self._send("PATCH", self._offer_path(offer_id), body=ops, headers=headers)

    async def delete(self, offer_id: str) -> Answer:
        headers = {"Accept": XCORE_ACCEPT} if self.target.api == "xcore" else None
        return await self._send("DELETE", self._offer_path(offer_id), headers=headers)

    async def find_by_name(self, name: str, limit: int = 100) -> Answer:
        """The first page of offers whose name may be this one: the filter is exact when the name is
        safe in a filter, a looser pattern otherwise; compare `Found.name` to be sure."""
        return await self.list_page(name=name, limit=limit)

    async def list_page(self, name: str | None = None, limit: int = 50, href: str | None = None) -> Answer:
        """One page of fallback offers: the first (optionally narrowed to a name), or the one a next link
        names."""
        if href is not None:
            return await self._send("GET", self.link(href), headers=self._list_headers())
        if self.target.api == "dps":
            params = [("offer-type", "fallback"), ("limit", str(limit))]
            if name is not None:
                params.append(("property", name_filter("name", name)))
            path = f"{DPS_ROOT}/offers"
        else:
            params = [("schema", FALLBACK_SCHEMA), ("limit", str(limit))]
            if name is not None:
                params.append(("property", name_filter("_instance.xdm:name", name)))
            path = f"{XCORE_ROOT}/{self.container_id}/queries/core/search"
        return await self._send("GET", path, params=params, headers=self._list_headers())

    async def placements_page(self, limit: int = 100, href: str | None = None) -> Answer:
        """One page of the sandbox's placements (DPS /placements, or the xcore search of placements)."""
        if href is not None:
            return await self._send("GET", self.link(href), headers=self._list_headers())
        if self.target.api == "dps":
            return await self._send("GET", f"{DPS_ROOT}/placements", params=[("limit", str(limit))],
                                    headers=self._list_headers())
        return await self._send("GET", f"{XCORE_ROOT}/{self.container_id}/queries/core/search",
                                params=[("schema", PLACEMENT_SCHEMA), ("limit", str(limit))],
                                headers=self._list_headers())

    def _list_headers(self) -> dict[str, str]:
        return {"Accept": "*,application/json" if self.target.api == "dps" else XCORE_SEARCH_ACCEPT}

    def parse_list(self, body: Any) -> list[Found]:
        """The offers of a list or search answer, in either flavor's shape."""
        if not isinstance(body, dict):
            return []
        if self.target.api == "dps":
            return [self.parse_offer(d) for d in body.get("results", []) if isinstance(d, dict)]
        return [self.parse_offer(i) for i in (body.get("_embedded") or {}).get("results", []) if isinstance(i, dict)]

    def parse_offer(self, item: dict[str, Any]) -> Found:
        """One offer as a list, search or lookup shows it."""
        if self.target.api == "dps":
            return Found(str(item.get("id", "")), str(item.get("@id") or item.get("id", "")), str(item.get("name", "")),
                         item, item.get("etag"), str(item.get("created") or item.get("createdDate") or ""),
                         str(item.get("createdByClientId") or item.get("createdBy") or ""),
                         str(item.get("modified") or item.get("lastModifiedDate") or ""))
        raw = item.get("_instance")
        instance: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return Found(str(item.get("instanceId", "")), str(item.get("@id") or instance.get("@id", "")),
                     offer_name(instance), instance, item.get("repo:etag"), str(item.get("repo:createdDate") or ""),
                     str(item.get("repo:createdByClientId") or item.get("repo:createdBy") or ""),
                     str(item.get("repo:lastModifiedDate") or ""))

    def total(self, body: Any) -> int | None:
        """How many items a list or search says it has (xcore keeps the count inside `_embedded`)."""
        if not isinstance(body, dict):
            return None
        holder = body if self.target.api == "dps" else body.get("_embedded") or {}
        value = holder.get("total")
        return value if isinstance(value, int) else None

    def parse_placements(self, body: Any) -> list[PlacementInfo]:
        """The placements of a list or search answer: id (DPS id or xcore @id), name, channel, type."""
        if not isinstance(body, dict):
            return []
        out = []
        if self.target.api == "dps":
            for d in body.get("results", []):
                if isinstance(d, dict):
                    out.append(PlacementInfo(str(d.get("id", "")), str(d.get("name", "")), str(d.get("channel", "")),
                                             str(d.get("componentType", "")), str(d.get("description") or "")))
            return out
        for item in (body.get("_embedded") or {}).get("results", []):
            inst = item.get("_instance", {}) if isinstance(item, dict) else {}
            kind = str(inst.get("xdm:componentType", "")).removeprefix(COMPONENT_TYPE_PREFIX)
            out.append(PlacementInfo(str(inst.get("@id") or item.get("@id", "")), str(inst.get("xdm:name", "")),
                                     str(inst.get("xdm:channel", "")), kind, str(inst.get("xdm:description") or "")))
        return out


def _sandbox_of(container: dict[str, Any]) -> str | None:
    for holder in (container, container.get("_instance") or {}):
        for key in ("repo:sandboxName", "sandboxName"):
            if isinstance(holder.get(key), str):
                return str(holder[key])
    return None


_FILTER_SAFE = re.compile(r"[^\W_](?:[\w .:/'()@-]*[^\W_])?")  # letters/digits first and last, no , = ! < > ~


def name_filter(field: str, name: str) -> str:
    """A `property` expression that finds the offer named `name`, whatever characters the name holds.

    Adobe's filter grammar splits on every comma and gives `= ! < > ~` meaning, and a service may trim
    spaces; so a name with any of these is looked up with `~` and a whole-value pattern in which
    every character but letters, digits and inner spaces is a wildcard (newlines and tabs are `\\s`).
    The pattern may match other names too: callers compare the name exactly."""
    if _FILTER_SAFE.fullmatch(name) and "  " not in name:
        return f"{field}=={name}"
    pattern = []
    for i, ch in enumerate(name):
        if ch.isalnum() or (ch == " " and 0 < i < len(name) - 1):
            pattern.append(ch)
        elif ch in "\t\n\r\f\v":
            pattern.append("\\s")
        else:
            pattern.append(".")
    return f"{field}~{''.join(pattern)}"


def next_href(body: Any) -> str | None:
    """The next page's link of a list or search answer, if there is one."""
    if not isinstance(body, dict):
        return None
    nxt = body.get("_links", {}).get("next")
    href = nxt.get("href") if isinstance(nxt, dict) else None
    return str(href) if href else None


@asynccontextmanager
async def open_library(api: ApiConfig, connections: int | None = None) -> AsyncIterator[OfferLibrary]:
    """The prelude every networked command shares: one session, a token first (wrong credentials fail
    before any row is touched) and, for xcore, the sandbox's container."""
    from .ratelimit import RateLimiter
    from .sender import Sender

    async with OfferLibrary(api.target, api.credentials, api.retry.timeout, connections or api.workers) as lib:
        await lib.tokens.get()
        if api.target.api == "xcore" and not lib.container_id:
            tried = await Sender(lib, RateLimiter(api.rate), api.retry).attempt(lib.containers, stoppable=False)
            if tried.outcome == "fatal" and tried.answer is not None:
                raise FatalApiError(f"the API refused the credentials: {tried.reason}", status=tried.answer.status,
                                    hint=auth_hint(tried.answer))
            lib.choose_container(tried.answer or Answer(None))
        yield lib


async def _read_body(resp: aiohttp.ClientResponse) -> Any:
    raw = await resp.read()  # bytes straight to json: resp.text() would sniff the charset first
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except ValueError:
        pass
    try:
        text = raw[:8000].decode(resp.charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = raw[:8000].decode("utf-8", errors="replace")
    return text[:2000]
