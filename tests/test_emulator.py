"""The emulator, exercised with plain aiohttp requests: every endpoint, every fault."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from bulkoffers.emulator import (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID, FALLBACK_SCHEMA,
                                 EmulatorConfig, EmulatorServer, Faults, container_id)

DPS = "/data/core/dps/offers"
XCORE_CT = ('application/schema-instance+json; version=1;  '
            'schema="https://ns.adobe.com/experience/offer-management/fallback-offer;version=0.1"')
XCORE_ACCEPT = "application/vnd.adobe.platform.xcore.xdm.receipt+json; version=1"


def dps_body(name: str = "Offer A", **over: Any) -> dict[str, Any]:
    body = {"name": name, "description": "d", "status": "approved",
            "selectionConstraint": {"startDate": "2022-06-10T00:30:00.000+00:00",
                                    "endDate": "2032-06-06T23:29:21.402+00:00", "profileConstraintType": "none"},
            "representations": [{"components": [{"deliveryURL": "https://mysite.com/a.png", "type": "imagelink",
                                                  "format": "image/png"}],
                                 "channel": "https://ns.adobe.com/xdm/channel-types/web",
                                 "placement": "offerPlacement1234"}],
            "rank": {"priority": 1}}
    body.update(over)
    return body


def xcore_body(name: str = "X offer", **over: Any) -> dict[str, Any]:
    body = {"xdm:name": name, "xdm:status": "approved", "xdm:representations": [{
        "xdm:channel": "https://ns.adobe.com/xdm/channel-types/web",
        "xdm:placement": "xcore:offer-placement:124e0be5699743d3",
        "xdm:components": [{"@type": "https://ns.adobe.com/experience/offer-management/content-component-html",
                            "dc:format": "text/html", "dc:language": ["en"], "xdm:content": "<p>hi</p>"}]}]}
    body.update(over)
    return body


class Api:
    """A tiny hand-written caller: deliberately not bulkoffers' client."""

    def __init__(self, session: aiohttp.ClientSession, url: str, sandbox: str = "prod") -> None:
        self.s, self.url, self.sandbox, self.token = session, url, sandbox, ""

    async def login(self, client_id: str = DEFAULT_CLIENT_ID, secret: str = DEFAULT_CLIENT_SECRET) -> aiohttp.ClientResponse:
        resp = await self.s.post(self.url + "/ims/token/v3", data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": "openid"})
        if resp.status == 200:
            self.token = (await resp.json())["access_token"]
        return resp

    def headers(self, **over: str | None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}", "x-api-key": DEFAULT_CLIENT_ID,
             "x-gw-ims-org-id": DEFAULT_ORG_ID, "x-sandbox-name": self.sandbox}
        for k, v in over.items():
            key = k.replace("_", "-")
            if v is None:
                h.pop(key, None)
            else:
                h[key] = v
        return h

    async def create(self, body: Any, **hdr: str | None) -> tuple[int, Any]:
        async with self.s.post(self.url + DPS, params={"offer-type": "fallback"}, json=body,
                               headers=self.headers(**hdr)) as r:
            return r.status, await r.json(content_type=None)

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        async with self.s.get(self.url + path, params=params, headers=self.headers()) as r:
            return r.status, await r.json(content_type=None)

    async def xcreate(self, body: Any, ctype: str = XCORE_CT, accept: str = XCORE_ACCEPT) -> tuple[int, Any]:
        cid = container_id(self.sandbox)
        async with self.s.post(f"{self.url}/data/core/xcore/{cid}/instances", data=__import__("json").dumps(body),
                               headers={**self.headers(), "Content-Type": ctype, "Accept": accept}) as r:
            return r.status, await r.json(content_type=None)


def run(emu: EmulatorServer, fn: Any) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession() as s:
            api = Api(s, emu.url)
            await api.login()
            return await fn(api)

    return asyncio.run(main())


# ---- IMS and auth ----------------------------------------------------------------------------------


def test_token_endpoint_issues_and_refuses(emulator: EmulatorServer) -> None:
    async def go(api: Api) -> None:
        ok = await api.login()
        body = await ok.json()
        assert ok.status == 200 and body["token_type"] == "bearer" and body["expires_in"] == 86399
        bad_secret = await api.login(secret="nope")
        assert bad_secret.status == 401 and (await bad_secret.json())["error"] == "invalid_client"
        bad_id = await api.login(client_id="someone")
        assert bad_id.status == 400
        grant = await api.s.post(emulator.url + "/ims/token/v3", data={"grant_type": "password"})
        assert grant.status == 400 and (await grant.json())["error"] == "unsupported_grant_type"

    run(emulator, go)


@pytest.mark.parametrize("headers,status,needle", [
    ({"Authorization": None}, 401, "token"),
    ({"Authorization": "Bearer not-a-token"}, 401, "token"),
    ({"x_api_key": None}, 403, "Api Key is required"),
    ({"x_api_key": "other-client"}, 403, "Api Key is invalid"),
    ({"x_gw_ims_org_id": None}, 400, "x-gw-ims-org-id"),
    ({"x_gw_ims_org_id": "OTHER@AdobeOrg"}, 403, "IMS org"),
    ({"x_sandbox_name": None}, 400, "x-sandbox-name"),
])
def test_every_api_call_checks_auth_headers(emulator: EmulatorServer, headers: dict[str, str | None], status: int,
                                            needle: str) -> None:
    async def go(api: Api) -> tuple[int, Any]:
        return await api.create(dps_body(), **headers)

    got, body = run(emulator, go)
    assert got == status
    assert needle in body["detail"] and body["status"] == status and body["title"]
    assert emulator.stats()["sandboxes"] == {}


def test_expired_token_is_refused() -> None:
    with EmulatorServer(EmulatorConfig(token_ttl=1)) as emu:
        async def go(api: Api) -> tuple[int, int]:
            first, _ = await api.create(dps_body("before"))
            await asyncio.sleep(1.2)
            later, body = await api.create(dps_body("after"))
            assert "expired" in body["detail"]
            return first, later

        assert run(emu, go) == (201, 401)


# ---- DPS -------------------------------------------------------------------------------------------


def test_dps_create_lookup_patch_delete(emulator: EmulatorServer) -> None:
    async def go(api: Api) -> None:
        status, receipt = await api.create(dps_body())
        assert status == 201
        assert receipt["id"].startswith("dps:fallback-offer:") and receipt["etag"] == 1 and receipt["createdDate"]
        oid = receipt["id"]
        status, doc = await api.get(f"{DPS}/{oid}", **{"offer-type": "fallback"})
        assert status == 200 and doc["name"] == "Offer A" and doc["representations"][0]["placement"] == "offerPlacement1234"
        patch = [{"op": "replace", "path": "/status", "value": "draft"}, {"op": "add", "path": "/description",
                                                                          "value": "patched"}]
        async with api.s.patch(f"{api.url}{DPS}/{oid}", params={"offer-type": "fallback"}, json=patch,
                               headers=api.headers()) as r:
            assert r.status == 200
            doc = await r.json()
            assert doc["status"] == "draft" and doc["description"] == "patched" and doc["etag"] == 2
        bad_patch = [{"op": "replace", "path": "/status", "value": "live"}]
        async with api.s.patch(f"{api.url}{DPS}/{oid}", params={"offer-type": "fallback"}, json=bad_patch,
                               headers=api.headers()) as r:
            assert r.status == 400 and "status 'live'" in (await r.json())["detail"]
        async with api.s.delete(f"{api.url}{DPS}/{oid}", params={"offer-type": "fallback"}, headers=api.headers()) as r:
            assert r.status == 200 and await r.read() == b""
        status, _ = await api.get(f"{DPS}/{oid}", **{"offer-type": "fallback"})
        assert status == 404

    run(emulator, go)


@pytest.mark.parametrize("change,needle", [
    ({"name": None}, "name is required"),
    ({"name": "  "}, "name must not be empty"),
    ({"status": "live"}, "status 'live'"),
    ({"representations": []}, "representations must be a non-empty array"),
    ({"representations": [{"channel": "web", "components": [{"type": "html", "format": "text/html", "content": "x"}]}]},
     "representations[0].placement is required"),
    ({"representations": [{"channel": "web", "placement": "p", "components": [{"type": "video", "format": "x/y"}]}]},
     "representations[0].components[0].type 'video'"),
    ({"representations": [{"channel": "web", "placement": "p", "components": [{"type": "imagelink", "format": "image/png"}]}]},
     "components[0].deliveryURL is required"),
    ({"selectionConstraint": {"startDate": "2022-13-01T00:00:00Z"}}, "selectionConstraint.startDate"),
    ({"selectionConstraint": {"startDate": "2030-01-01T00:00:00Z", "endDate": "2029-01-01T00:00:00Z"}},
     "endDate must be after"),
    ({"rank": {"priority": "high"}}, "rank.priority must be an integer"),
    ({"representations": [{"channel": "web", "placement": "p",
                           "components": [{"type": "html", "format": "text/html", "content": "x" * 1100}]}]},
     "guardrail"),
])
def test_dps_validation_names_the_field(emulator: EmulatorServer, change: dict[str, Any], needle: str) -> None:
    body = dps_body()
    for k, v in change.items():
        if v is None:
            body.pop(k)
        else:
            body[k] = v

    status, answer = run(emulator, lambda api: api.create(body))
    assert status == 400 and needle in answer["detail"], answer
    assert emulator.stats()["sandboxes"] == {}


def test_dps_list_filters_orders_and_pages(emulator: EmulatorServer) -> None:
    async def go(api: Api) -> None:
        for i in range(7):
            await api.create(dps_body(f"offer {i}", status="draft" if i % 2 else "approved"))
        await api.create(dps_body("offer 3"))  # a duplicate name
        status, page = await api.get(DPS, **{"offer-type": "fallback", "property": "name==offer 3"})
        assert status == 200 and page["total"] == 2 and {d["name"] for d in page["results"]} == {"offer 3"}
        # repeated and comma-joined expressions are ANDed
        async with api.s.get(api.url + DPS, params=[("offer-type", "fallback"), ("property", "status==draft"),
                                                    ("property", "name!=offer 1")], headers=api.headers()) as r:
            names = sorted(d["name"] for d in (await r.json())["results"])
        assert names == ["offer 3", "offer 5"]
        _, page = await api.get(DPS, **{"offer-type": "fallback", "property": "status==draft,name~^offer [15]$"})
        assert sorted(d["name"] for d in page["results"]) == ["offer 1", "offer 5"]
        _, page = await api.get(DPS, **{"offer-type": "fallback", "orderBy": "-name", "limit": "3"})
        assert [d["name"] for d in page["results"]] == ["offer 6", "offer 5", "offer 4"]
        seen, href = [], f"{DPS}?offer-type=fallback&limit=3"
        while href:
            async with api.s.get(api.url + href, headers=api.headers()) as r:
                page = await r.json()
            seen += [d["id"] for d in page["results"]]
            href = page["_links"].get("next", {}).get("href")
        assert len(seen) == len(set(seen)) == 8
        status, _ = await api.get(DPS, **{"offer-type": "fallback", "property": "name"})
        assert status == 400

    run(emulator, go)
    assert emulator.stats()["sandboxes"]["prod"]["duplicate_names"] == {"offer 3": 2}


def test_sandboxes_are_separate(emulator: EmulatorServer) -> None:
    async def go(api: Api) -> tuple[int, int]:
        await api.create(dps_body("only in prod"))
        api.sandbox = "dev"
        _, page = await api.get(DPS, **{"offer-type": "fallback"})
        api.sandbox = "prod"
        _, prod = await api.get(DPS, **{"offer-type": "fallback"})
        return page["total"], prod["total"]

    assert run(emulator, go) == (0, 1)


def test_guardrail_on_offers_per_sandbox() -> None:
    with EmulatorServer(EmulatorConfig(max_offers=2)) as emu:
        async def go(api: Api) -> list[int]:
            return [(await api.create(dps_body(f"o{i}")))[0] for i in range(3)]

        assert run(emu, go) == [201, 201, 400]
        assert emu.stats()["sandboxes"]["prod"]["offers"] == 2


# ---- xcore -------------------------------------------------------------------------------------------


def test_xcore_create_search_lookup_delete(emulator: EmulatorServer) -> None:
    async def go(api: Api) -> None:
        status, containers = await api.get("/data/core/xcore/", product="acp",
                                           property="_instance.containerType==decisioning")
        cid = next(iter(containers["_embedded"].values()))[0]["instanceId"]
        assert status == 200 and cid == container_id("prod")
        status, receipt = await api.xcreate(xcore_body())
        assert status == 201
        assert set(receipt) >= {"instanceId", "@id", "repo:etag", "repo:createdDate", "repo:lastModifiedDate"}
        assert receipt["@id"].startswith("xcore:fallback-offer:")
        base = f"/data/core/xcore/{cid}"
        status, found = await api.get(f"{base}/queries/core/search", schema=FALLBACK_SCHEMA,
                                      property="_instance.xdm:name==X offer", limit="10")
        assert status == 200 and [r["instanceId"] for r in found["_embedded"]["results"]] == [receipt["instanceId"]]
        status, doc = await api.get(f"{base}/instances/{receipt['instanceId']}")
        assert status == 200 and doc["_instance"]["xdm:name"] == "X offer"
        async with api.s.delete(f"{api.url}{base}/instances/{receipt['instanceId']}", headers=api.headers()) as r:
            assert r.status == 202
        status, _ = await api.get(f"{base}/instances/{receipt['instanceId']}")
        assert status == 404
        status, _ = await api.get("/data/core/xcore/not-a-container/instances/x")
        assert status == 404

    run(emulator, go)


def test_xcore_headers_are_strict(emulator: EmulatorServer) -> None:
    async def go(api: Api) -> list[int]:
        wrong_ct = (await api.xcreate(xcore_body(), ctype="application/json"))[0]
        wrong_accept = (await api.xcreate(xcore_body(), accept="application/json"))[0]
        missing_status = await api.xcreate(xcore_body(**{"xdm:status": "live"}))
        assert "xdm:status 'live'" in missing_status[1]["detail"]
        bad_type = await api.xcreate(xcore_body(**{"xdm:representations": [{
            "xdm:channel": "c", "xdm:placement": "p", "xdm:components": [{"@type": "https://x/other",
                                                                          "dc:format": "x/y"}]}]}))
        assert "@type" in bad_type[1]["detail"]
        return [wrong_ct, wrong_accept, missing_status[0], bad_type[0]]

    assert run(emulator, go) == [415, 406, 400, 400]


# ---- faults ------------------------------------------------------------------------------------------


def _fire(emu: EmulatorServer, n: int, name: str = "f") -> list[Any]:
    """n creates; an int status each, or the exception's class name when no answer came."""
    async def go(api: Api) -> list[Any]:
        out = []
        for i in range(n):
            try:
                out.append((await api.create(dps_body(f"{name}{i}")))[0])
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                out.append(type(exc).__name__)
        return out

    return run(emu, go)


def test_commit_then_drop_stores_but_never_answers(emulator: EmulatorServer) -> None:
    emulator.set_faults(Faults(drop_rate=1.0, scope="create"))
    outcomes = _fire(emulator, 3)
    assert all(o == "ServerDisconnectedError" for o in outcomes), outcomes
    stats = emulator.stats()
    assert stats["sandboxes"]["prod"]["offers"] == 3 and stats["faults_injected"]["commit_then_drop"] == 3


def test_reset_before_processing_stores_nothing(emulator: EmulatorServer) -> None:
    emulator.set_faults(Faults(reset_rate=1.0))
    outcomes = _fire(emulator, 3)
    assert all(isinstance(o, str) for o in outcomes), outcomes
    assert emulator.stats()["sandboxes"] == {}


def test_random_server_errors_are_reproducible_with_a_seed() -> None:
    runs = []
    for _ in range(2):
        with EmulatorServer(EmulatorConfig(faults=Faults(error_rate=0.5, seed=7))) as emu:
            runs.append(_fire(emu, 20))
            stats = emu.stats()
            assert stats["sandboxes"]["prod"]["offers"] == runs[-1].count(201)
    assert runs[0] == runs[1]
    assert set(runs[0]) - {201} <= {500, 502, 503} and 0 < runs[0].count(201) < 20


@pytest.mark.parametrize("retry_after", [True, False])
def test_rate_limit_answers_429(retry_after: bool) -> None:
    with EmulatorServer(EmulatorConfig(faults=Faults(rate_limit=5, retry_after=retry_after))) as emu:
        async def go(api: Api) -> list[tuple[int, str | None]]:
            out = []
            for i in range(8):
                async with api.s.post(api.url + DPS, params={"offer-type": "fallback"}, json=dps_body(f"r{i}"),
                                      headers=api.headers()) as r:
                    out.append((r.status, r.headers.get("Retry-After")))
            return out

        answers = run(emu, go)
    assert [s for s, _ in answers[:5]] == [201] * 5 and {s for s, _ in answers[5:]} == {429}
    assert all((ra is not None) == retry_after for _, ra in answers[5:])


def test_latency_and_slow_answers() -> None:
    with EmulatorServer(EmulatorConfig(faults=Faults(latency_ms=150, jitter_ms=50))) as emu:
        start = time.monotonic()
        _fire(emu, 2)
        assert time.monotonic() - start >= 0.3
        emu.set_faults(Faults(slow_rate=1.0, slow_seconds=2.0))

        async def go(api: Api) -> str:
            try:
                await api.s.post(api.url + DPS, params={"offer-type": "fallback"}, json=dps_body("slow"),
                                 headers=api.headers(), timeout=aiohttp.ClientTimeout(total=0.5))
            except asyncio.TimeoutError:
                return "timeout"
            return "answered"

        assert run(emu, go) == "timeout"


def test_stats_count_creates_per_second_window(emulator: EmulatorServer) -> None:
    _fire(emulator, 6)
    stats = emulator.stats()
    assert stats["creates_seen"] == 6 and stats["max_creates_per_second"] == 6
    assert stats["statuses"]["201"] == 6


def test_admin_endpoints_set_faults_and_reset(emulator: EmulatorServer) -> None:
    async def go(api: Api) -> None:
        async with api.s.post(api.url + "/__emulator/faults", json={"error_rate": 1.0}) as r:
            assert r.status == 200
        assert (await api.create(dps_body("x")))[0] in (500, 502, 503)
        async with api.s.post(api.url + "/__emulator/faults", json={"bogus": 1}) as r:
            assert r.status == 400 and "bogus" in (await r.json())["detail"]
        async with api.s.post(api.url + "/__emulator/faults", json={}) as r:
            assert r.status == 200
        assert (await api.create(dps_body("y")))[0] == 201
        async with api.s.get(api.url + "/__emulator/offers") as r:
            assert [o["name"] for o in await r.json()] == ["y"]
        async with api.s.post(api.url + "/__emulator/reset") as r:
            assert r.status == 200
        async with api.s.get(api.url + "/__emulator/stats") as r:
            stats = await r.json()
        assert stats["sandboxes"] == {} and stats["creates_seen"] == 0

    run(emulator, go)


def test_sqlite_persistence_survives_restart(tmp_path: Any) -> None:
    db = str(tmp_path / "state.sqlite")
    with EmulatorServer(EmulatorConfig(db=db)) as emu:
        _fire(emu, 2, "kept")
    with EmulatorServer(EmulatorConfig(db=db)) as emu:
        assert emu.stats()["sandboxes"]["prod"]["offers"] == 2

        async def go(api: Api) -> int:
            _, page = await api.get(DPS, **{"offer-type": "fallback", "property": "name==kept1"})
            return int(page["total"])

        assert run(emu, go) == 1


def test_the_emulator_command_serves_with_fault_flags(tmp_path: Any) -> None:
    import json as _json
    import re
    import subprocess
    import sys
    import urllib.request

    from .conftest import ROOT, cli_env

    db = tmp_path / "state.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "bulkoffers", "emulator", "--port", "0", "--db", str(db),
                             "--rate-limit", "2", "--no-retry-after", "--seed", "1"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=cli_env(), cwd=ROOT)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        assert match, first
        url = match.group(0)
        with urllib.request.urlopen(url + "/__emulator/stats", timeout=10) as resp:
            stats = _json.loads(resp.read())
        assert stats["faults"]["rate_limit"] == 2 and stats["faults"]["retry_after"] is False

        async def go(api: Api) -> list[tuple[int, Any]]:
            return [await api.create(dps_body(f"cli{i}")) for i in range(3)]

        async def main() -> list[tuple[int, Any]]:
            async with aiohttp.ClientSession() as s:
                api = Api(s, url)
                await api.login()
                return await go(api)

        answers = asyncio.run(main())
        assert [a[0] for a in answers] == [201, 201, 429]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert db.exists() and db.stat().st_size > 0
