"""The emulator, exercised with plain aiohttp requests (never bulkoffers' client): every endpoint, every
fault, and the shapes Adobe documents, so the emulator cannot drift towards what the client sends."""

from __future__ import annotations

import asyncio
import json
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
WEB, EMAIL = "https://ns.adobe.com/xdm/channel-types/web", "https://ns.adobe.com/xdm/channel-types/email"
XCORE_TYPE = "https://ns.adobe.com/experience/offer-management/content-component-"
PLACEMENT_SCHEMA = "https://ns.adobe.com/experience/offer-management/offer-placement;version=0.4"
PATCH_CT = ('application/vnd.adobe.platform.xcore.patch.hal+json; version=1; '
            'schema="https://ns.adobe.com/experience/offer-management/fallback-offer;version=0.1"')
PUT_CT = 'application/vnd.adobe.platform.xcore.hal+json; schema="https://ns.adobe.com/experience/offer-management/fallback-offer;version=0.1"'


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

    async def call(self, method: str, path: str, body: Any = None, **hdr: str | None) -> tuple[int, Any]:
        data = json.dumps(body) if body is not None else None
        headers = self.headers(**hdr)
        if data is not None:
            headers.setdefault("Content-Type", "application/json")
        async with self.s.request(method, self.url + path, data=data, headers=headers) as r:
            return r.status, await r.json(content_type=None) if (await r.read()) else None

    async def xcreate(self, body: Any, ctype: str = XCORE_CT, accept: str = XCORE_ACCEPT) -> tuple[int, Any]:
        cid = container_id(self.sandbox)
        async with self.s.post(f"{self.url}/data/core/xcore/{cid}/instances", data=json.dumps(body),
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
    """IMS answers client credentials with a bearer token and expiry, and refuses a wrong secret (401),
    an unknown client (400) and another grant type, with IMS' error fields."""
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
    """Each gateway header is checked with the status Platform gives, and nothing is stored."""
    async def go(api: Api) -> tuple[int, Any]:
        return await api.create(dps_body(), **headers)

    got, body = run(emulator, go)
    assert got == status
    assert needle in body["detail"] and body["status"] == status and body["title"]
    assert emulator.stats()["sandboxes"] == {}


def test_expired_token_is_refused() -> None:
    """A token past its lifetime gets 401 "expired", so clients must refresh before expiry."""
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
    """The DPS life cycle as documented: create answers a receipt (id, etag), lookup by id shows the
    offer with created/modified/schemas, PATCH answers a receipt with the etag incremented, delete
    answers 200 with an empty body, then lookup is 404."""
    async def go(api: Api) -> None:
        status, receipt = await api.create(dps_body())
        assert status == 201
        assert receipt["id"].startswith("dps:fallback-offer:") and receipt["etag"] == 1 and receipt["createdDate"]
        oid = receipt["id"]
        status, doc = await api.get(f"{DPS}/{oid}", **{"offer-type": "fallback"})
        assert status == 200 and doc["name"] == "Offer A" and doc["representations"][0]["placement"] == "offerPlacement1234"
        assert {"created", "modified", "etag", "schemas", "createdBy", "id"} <= set(doc) and doc["id"] == oid
        patch = [{"op": "replace", "path": "/status", "value": "draft"}, {"op": "add", "path": "/description",
                                                                          "value": "patched"}]
        async with api.s.patch(f"{api.url}{DPS}/{oid}", params={"offer-type": "fallback"}, json=patch,
                               headers=api.headers()) as r:
            assert r.status == 200
            patched = await r.json()
            assert patched["etag"] == 2 and patched["id"] == oid and "lastModifiedDate" in patched
        status, doc = await api.get(f"{DPS}/{oid}", **{"offer-type": "fallback"})
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
    ({"representations": [{"channel": WEB, "components": [{"type": "html", "format": "text/html", "content": "x"}]}]},
     "representations[0].placement is required"),
    ({"representations": [{"channel": "web", "placement": "p", "components": [{"type": "video", "format": "x/y"}]}]},
     "representations[0].channel 'web' is not a URI"),
    ({"representations": [{"channel": WEB, "placement": "p", "components": [{"type": "video", "format": "x/y"}]}]},
     "representations[0].components[0].type 'video'"),
    ({"representations": [{"channel": WEB, "placement": "p", "components": [{"type": "imagelink"}]}]},
     "components[0].format is required"),
    ({"representations": [{"channel": WEB, "placement": "p", "components": [
        {"type": "imagelink", "format": "image/png", "language": ["en-a"]}]}]}, "'en-a' is not a BCP 47 language tag"),
    ({"representations": [{"channel": WEB, "placement": "nowhere", "components": [
        {"type": "imagelink", "format": "image/png"}]}]}, "placement 'nowhere' is not a placement of this sandbox"),
    ({"representations": [{"channel": EMAIL, "placement": "offerPlacement1234", "components": [
        {"type": "imagelink", "format": "image/png"}]}]}, "is not the channel of placement 'offerPlacement1234'"),
    ({"representations": [{"channel": WEB, "placement": "offerPlacement1234", "components": [
        {"type": "html", "format": "text/html", "content": "<p>x</p>"}]}]},
     "does not fit placement 'offerPlacement1234', which takes imagelink components"),
    ({"representations": [{"channel": WEB, "placement": "offerPlacement1234", "components": [
        {"type": "imagelink", "format": "image/png"}]}, {"channel": WEB, "placement": "offerPlacement1234",
                                                        "components": [{"type": "imagelink", "format": "image/png"}]}]},
     "each representation needs its own placement"),
    ({"selectionConstraint": {"startDate": "2022-13-01T00:00:00Z"}}, "selectionConstraint.startDate"),
    ({"selectionConstraint": {"startDate": "2030-01-01T00:00:00Z", "endDate": "2029-01-01T00:00:00Z"}},
     "endDate must be after"),
    ({"rank": {"priority": "high"}}, "rank.priority must be an integer"),
    ({"representations": [{"channel": WEB, "placement": "offerPlacement5678",
                           "components": [{"type": "html", "format": "text/html", "content": "x" * 1100}]}]},
     "guardrail"),
])
def test_dps_validation_names_the_field(emulator: EmulatorServer, change: dict[str, Any], needle: str) -> None:
    """A body the service refuses gets 400 naming the field: XDM's required fields, URIs, BCP 47 tags,
    and the placement rules (it exists, its channel and component type, one per representation)."""
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
    """Adobe's list grammar: repeated and comma-joined `property` expressions are ANDed, `~` is a regular
    expression over the whole value, a bare field tests presence, `orderBy` sorts; every page's
    `_links.next.href` is relative to /data/core/dps (`/offers?...&start=...`) as in Adobe's example."""
    async def go(api: Api) -> None:
        for i in range(7):
            await api.create(dps_body(f"offer {i}", status="draft" if i % 2 else "approved"))
        await api.create(dps_body("offer 3"))  # a duplicate name
        status, page = await api.get(DPS, **{"offer-type": "fallback", "property": "name==offer 3"})
        assert status == 200 and page["total"] == 2 and {d["name"] for d in page["results"]} == {"offer 3"}
        async with api.s.get(api.url + DPS, params=[("offer-type", "fallback"), ("property", "status==draft"),
                                                    ("property", "name!=offer 1")], headers=api.headers()) as r:
            names = sorted(d["name"] for d in (await r.json())["results"])
        assert names == ["offer 3", "offer 5"]
        _, page = await api.get(DPS, **{"offer-type": "fallback", "property": "status==draft,name~offer [15]"})
        assert sorted(d["name"] for d in page["results"]) == ["offer 1", "offer 5"]
        _, page = await api.get(DPS, **{"offer-type": "fallback", "property": "name~offer"})
        assert page["total"] == 0  # the expression must match the whole name, not a part of it
        _, page = await api.get(DPS, **{"offer-type": "fallback", "property": "description"})
        assert page["total"] == 8  # a bare field: present on every offer
        _, page = await api.get(DPS, **{"offer-type": "fallback", "property": "!description,name==offer 2"})
        assert page["total"] == 0
        _, page = await api.get(DPS, **{"offer-type": "fallback", "orderBy": "-name", "limit": "3"})
        assert [d["name"] for d in page["results"]] == ["offer 6", "offer 5", "offer 4"]
        seen, href, hrefs = [], "/offers?offer-type=fallback&limit=3", []
        while href:
            hrefs.append(href)
            async with api.s.get(api.url + "/data/core/dps" + href, headers=api.headers()) as r:
                page = await r.json()
            seen += [d["id"] for d in page["results"]]
            href = page["_links"].get("next", {}).get("href")
        assert len(seen) == len(set(seen)) == 8 and len(hrefs) == 3
        assert all(h.startswith("/offers?") for h in hrefs) and "start=" in hrefs[1]

    run(emulator, go)
    assert emulator.stats()["sandboxes"]["prod"]["duplicate_names"] == {"offer 3": 2}


def test_a_comma_in_a_filter_value_starts_a_new_expression(emulator: EmulatorServer) -> None:
    """Documented grammar, not leniency: `property=name==Sale, 10% off` is `name==Sale` AND a bare field
    ` 10% off`, so it finds nothing, not the offer named "Sale, 10% off"."""
    async def go(api: Api) -> tuple[int, int]:
        await api.create(dps_body("Sale, 10% off"))
        await api.create(dps_body("Sale"))
        _, comma = await api.get(DPS, **{"offer-type": "fallback", "property": "name==Sale, 10% off"})
        _, plain = await api.get(DPS, **{"offer-type": "fallback", "property": "name==Sale"})
        return comma["total"], plain["total"]

    assert run(emulator, go) == (0, 1)


def test_sandboxes_are_separate(emulator: EmulatorServer) -> None:
    """An offer created in one sandbox is not listed in another."""
    async def go(api: Api) -> tuple[int, int]:
        await api.create(dps_body("only in prod"))
        api.sandbox = "dev"
        _, page = await api.get(DPS, **{"offer-type": "fallback"})
        api.sandbox = "prod"
        _, prod = await api.get(DPS, **{"offer-type": "fallback"})
        return page["total"], prod["total"]

    assert run(emulator, go) == (0, 1)


def test_guardrail_on_offers_per_sandbox() -> None:
    """The offers-per-sandbox guardrail answers 400 and stores nothing more."""
    with EmulatorServer(EmulatorConfig(max_offers=2)) as emu:
        async def go(api: Api) -> list[int]:
            return [(await api.create(dps_body(f"o{i}")))[0] for i in range(3)]

        assert run(emu, go) == [201, 201, 400]
        assert emu.stats()["sandboxes"]["prod"]["offers"] == 2


# ---- xcore -------------------------------------------------------------------------------------------


def test_xcore_create_search_lookup_delete(emulator: EmulatorServer) -> None:
    """The xcore life cycle as documented: the container lookup, a create answering the receipt, a search
    whose `_embedded` holds results, total and count and whose next link is relative to /data/core/xcore,
    lookup by instanceId under `_instance`, and a delete that asks for the receipt and answers 202."""
    async def go(api: Api) -> None:
        status, containers = await api.get("/data/core/xcore/", product="acp",
                                           property="_instance.containerType==decisioning")
        cid = next(iter(containers["_embedded"].values()))[0]["instanceId"]
        assert status == 200 and cid == container_id("prod")
        status, receipt = await api.xcreate(xcore_body())
        assert status == 201
        assert set(receipt) >= {"instanceId", "@id", "repo:etag", "repo:createdDate", "repo:lastModifiedDate"}
        assert receipt["@id"].startswith("xcore:fallback-offer:")
        await api.xcreate(xcore_body("Another"))
        base = f"/data/core/xcore/{cid}"
        status, found = await api.get(f"{base}/queries/core/search", schema=FALLBACK_SCHEMA,
                                      property="_instance.xdm:name==X offer", limit="10")
        assert status == 200 and [r["instanceId"] for r in found["_embedded"]["results"]] == [receipt["instanceId"]]
        assert found["_embedded"]["total"] == 1 and found["_embedded"]["count"] == 1 and found["containerId"] == cid
        _, first = await api.get(f"{base}/queries/core/search", schema=FALLBACK_SCHEMA, limit="1")
        nxt = first["_links"]["next"]["href"]
        assert nxt.startswith(f"/{cid}/queries/core/search?") and "start=" in nxt
        status, second = await api.get("/data/core/xcore" + nxt)
        assert status == 200 and second["_embedded"]["results"][0]["_instance"]["xdm:name"] == "Another"
        status, doc = await api.get(f"{base}/instances/{receipt['instanceId']}")
        assert status == 200 and doc["_instance"]["xdm:name"] == "X offer" and doc["repo:etag"] == 1
        status, _ = await api.call("DELETE", f"{base}/instances/{receipt['instanceId']}")
        assert status == 406  # the documented request asks for the receipt
        status, _ = await api.call("DELETE", f"{base}/instances/{receipt['instanceId']}", Accept=XCORE_ACCEPT)
        assert status == 202
        status, _ = await api.get(f"{base}/instances/{receipt['instanceId']}")
        assert status == 404
        status, _ = await api.get("/data/core/xcore/not-a-container/instances/x")
        assert status == 404

    run(emulator, go)


def test_the_container_listing_names_each_sandbox(emulator: EmulatorServer) -> None:
    """Several sandboxes, one decisioning container each, listed with their sandbox's name: the one asked
    for need not be first (a client must choose by sandbox, not take the first)."""
    async def go(api: Api) -> list[tuple[str, str]]:
        api.sandbox = "dev"
        await api.get("/data/core/xcore/")  # "dev" now exists too
        api.sandbox = "prod"
        _, listing = await api.get("/data/core/xcore/", product="acp", property="_instance.containerType==decisioning")
        items = next(iter(listing["_embedded"].values()))
        return [(i["repo:sandboxName"], i["instanceId"]) for i in items]

    listed = run(emulator, go)
    assert listed == [("dev", container_id("dev")), ("prod", container_id("prod"))]


def test_xcore_headers_are_strict(emulator: EmulatorServer) -> None:
    """A create needs the documented Content-Type (415) and receipt Accept (406); a bad status or
    component type is a 400 naming the field; tags and placements must be URIs."""
    async def go(api: Api) -> list[int]:
        wrong_ct = (await api.xcreate(xcore_body(), ctype="application/json"))[0]
        wrong_accept = (await api.xcreate(xcore_body(), accept="application/json"))[0]
        missing_status = await api.xcreate(xcore_body(**{"xdm:status": "live"}))
        assert "xdm:status 'live'" in missing_status[1]["detail"]
        bad_type = await api.xcreate(xcore_body(**{"xdm:representations": [{
            "xdm:channel": WEB, "xdm:placement": "xcore:p", "xdm:components": [{"@type": "https://x/other",
                                                                              "dc:format": "x/y"}]}]}))
        assert "@type" in bad_type[1]["detail"]
        tag = await api.xcreate(xcore_body(**{"xdm:tags": ["summer"]}))
        assert "xdm:tags[] 'summer' is not a URI" in tag[1]["detail"]
        spaced = await api.xcreate(xcore_body(**{"xdm:representations": [{
            "xdm:channel": WEB, "xdm:placement": "xcore:offer placement:1", "xdm:components": [
                {"@type": XCORE_TYPE + "html", "dc:format": "text/html"}]}]}))
        assert "is not a URI" in spaced[1]["detail"]
        return [wrong_ct, wrong_accept, missing_status[0], bad_type[0], tag[0], spaced[0]]

    assert run(emulator, go) == [415, 406, 400, 400, 400, 400]


def test_xcore_edits_need_the_current_etag(emulator: EmulatorServer) -> None:
    """PATCH (paths under /_instance/, ops add/replace/remove, the patch Content-Type) and PUT (a whole
    `_instance`) carry If-Match: without it 428, stale 409, current → a receipt with the next etag.
    Changing a property the schema marks not user-editable (dc:format) answers 422."""
    async def go(api: Api) -> None:
        _, receipt = await api.xcreate(xcore_body())
        path = f"/data/core/xcore/{container_id('prod')}/instances/{receipt['instanceId']}"
        patch = [{"op": "replace", "path": "/_instance/xdm:status", "value": "draft"}]
        hdr = {"Content-Type": PATCH_CT, "Accept": XCORE_ACCEPT}
        assert (await api.call("PATCH", path, patch, **hdr))[0] == 428
        assert (await api.call("PATCH", path, patch, **hdr, If_Match="7"))[0] == 409
        assert (await api.call("PATCH", path, patch, **{**hdr, "Content-Type": "application/json"},
                               If_Match="1"))[0] == 415
        status, done = await api.call("PATCH", path, patch, **hdr, If_Match="1")
        assert status == 200 and done["repo:etag"] == 2 and done["instanceId"] == receipt["instanceId"]
        _, doc = await api.get(path)
        assert doc["_instance"]["xdm:status"] == "draft"
        fmt = [{"op": "replace", "path": "/_instance/xdm:representations/0/xdm:components/0/dc:format",
                "value": "text/plain"}]
        assert (await api.call("PATCH", path, fmt, **hdr, If_Match="2"))[0] == 422
        bad = [{"op": "move", "from": "/_instance/xdm:name", "path": "/_instance/xdm:x"}]
        assert (await api.call("PATCH", path, bad, **hdr, If_Match="2"))[0] == 400
        whole = {"_instance": xcore_body("Renamed"), "_links": {}}
        status, done = await api.call("PUT", path, whole, **{**hdr, "Content-Type": PUT_CT}, If_Match="1")
        assert status == 409
        status, done = await api.call("PUT", path, whole, **{**hdr, "Content-Type": PUT_CT}, If_Match="2")
        assert status == 200 and done["repo:etag"] == 3
        _, doc = await api.get(path)
        assert doc["_instance"]["xdm:name"] == "Renamed" and doc["_instance"]["@id"] == receipt["@id"]

    run(emulator, go)


def test_every_request_example_of_the_api_reference_is_accepted(emulator: EmulatorServer) -> None:
    """Each request body shared/offer-library-api.md shows, posted as written, gets the documented
    success and answer shape: the DPS create, the xcore create (an HTML component with no content), the
    DPS and xcore patches, the xcore PUT and the DPS placement create."""
    dps_example = {
        "name": "Test Fallback Offer DPS", "description": "Fallback Offer description", "status": "approved",
        "selectionConstraint": {"startDate": "2022-06-10T00:30:00.000+00:00",
                                "endDate": "2032-06-06T23:29:21.402+00:00", "profileConstraintType": "none"},
        "representations": [{"components": [{"deliveryURL": "https://mysite.com", "type": "imagelink",
                                              "format": "image/png"}],
                             "channel": "https://ns.adobe.com/xdm/channel-types/web", "placement": "offerPlacement1234"}],
        "rank": {"priority": 1}}
    xcore_example = {
        "xdm:status": "approved", "xdm:name": "Fallback for sales",
        "xdm:representations": [{"xdm:components": [{
            "dc:language": ["en"], "@type": "https://ns.adobe.com/experience/offer-management/content-component-html",
            "dc:format": "text/html"}], "xdm:channel": "https://ns.adobe.com/xdm/channel-types/web",
            "xdm:placement": "xcore:offer-placement:124e0be5699743d3"}]}

    async def go(api: Api) -> None:
        status, receipt = await api.create(dps_example)
        assert status == 201 and set(receipt) >= {"id", "etag", "sandboxId", "createdDate", "createdBy"}
        dps_patch = [{"op": "replace", "path": "/name", "value": "Renamed"},
                     {"op": "replace", "path": "/status", "value": "draft"},
                     {"op": "replace", "path": "/representations/0/components/0/deliveryURL",
                      "value": "https://mysite.com/new.png"}]
        status, patched = await api.call("PATCH", f"{DPS}/{receipt['id']}?offer-type=fallback", dps_patch)
        assert status == 200 and patched["etag"] == receipt["etag"] + 1
        status, xreceipt = await api.xcreate(xcore_example)
        assert status == 201 and set(xreceipt) == {
            "instanceId", "@id", "repo:etag", "repo:createdDate", "repo:lastModifiedDate", "repo:createdBy",
            "repo:lastModifiedBy", "repo:createdByClientId", "repo:lastModifiedByClientId"}
        path = f"/data/core/xcore/{container_id('prod')}/instances/{xreceipt['instanceId']}"
        xpatch = [{"op": "replace", "path": "/_instance/xdm:status", "value": "approved"}]
        status, done = await api.call("PATCH", path, xpatch, **{"Content-Type": PATCH_CT, "Accept": XCORE_ACCEPT},
                                      If_Match=str(xreceipt["repo:etag"]))
        assert status == 200 and done["repo:etag"] == xreceipt["repo:etag"] + 1
        status, done = await api.call("PUT", path, {"_instance": xcore_example, "_links": {}},
                                      **{"Content-Type": PUT_CT, "Accept": XCORE_ACCEPT}, If_Match=str(done["repo:etag"]))
        assert status == 200
        placement = {"name": "Placement two", "description": "Placement two description", "componentType": "html",
                     "channel": "https://ns.adobe.com/xdm/channel-types/web", "itemCount": 1}
        status, made = await api.call("POST", "/data/core/dps/placements", placement)
        assert status == 201 and made["id"]
        status, listing = await api.get("/data/core/dps/placements", limit="100")
        assert status == 200 and "Placement two" in {p["name"] for p in listing["results"]}
        assert {"id", "name", "componentType", "channel", "etag", "schemas"} <= set(listing["results"][0])

    run(emulator, go)


def test_placements_are_seeded_served_and_created_in_both_flavors(tmp_path: Any) -> None:
    """Every sandbox starts with the seeded placements (or the --placements list); DPS lists them with
    ids, xcore search (placement schema) with @ids and content-component types; an xcore placement
    create adds one that the DPS list shows too."""
    own = tmp_path / "placements.json"
    own.write_text(json.dumps([{"name": "Home hero", "channel": "web", "componentType": "imagelink",
                                "id": "heroPlacement"}]))
    from bulkoffers.emulator.settings import load_placements

    with EmulatorServer(EmulatorConfig(placements=load_placements(str(own)))) as emu:
        async def go(api: Api) -> tuple[list[str], list[Any], list[str]]:
            _, dps = await api.get("/data/core/dps/placements")
            cid = container_id("prod")
            _, xc = await api.get(f"/data/core/xcore/{cid}/queries/core/search", schema=PLACEMENT_SCHEMA)
            status, _ = await api.xcreate({"xdm:name": "Email footer", "xdm:channel": EMAIL,
                                           "xdm:componentType": XCORE_TYPE + "text"},
                                          ctype=XCORE_CT.replace(FALLBACK_SCHEMA, PLACEMENT_SCHEMA))
            assert status == 201
            _, after = await api.get("/data/core/dps/placements")
            xitems = [(r["_instance"]["xdm:name"], r["_instance"]["xdm:componentType"]) for r in
                      xc["_embedded"]["results"]]
            return [p["id"] for p in dps["results"]], xitems, [p["name"] for p in after["results"]]

        ids, xitems, names = run(emu, go)
    assert ids == ["heroPlacement"] and xitems == [("Home hero", XCORE_TYPE + "imagelink")]
    assert names == ["Home hero", "Email footer"]


def test_index_lag_hides_new_offers_from_list_and_search_but_not_from_lookup(emulator: EmulatorServer) -> None:
    """With an index lag of S seconds, list (DPS) and search (xcore) show an offer only S seconds after it
    was stored; lookup by id shows it at once."""
    emulator.set_faults(Faults(index_lag=1.0))

    async def go(api: Api) -> list[int]:
        _, receipt = await api.create(dps_body("lagging"))
        _, xreceipt = await api.xcreate(xcore_body("x lagging"))
        search = f"/data/core/xcore/{container_id('prod')}/queries/core/search"
        seen = [(await api.get(DPS, **{"offer-type": "fallback", "property": "name==lagging"}))[1]["total"],
                (await api.get(search, schema=FALLBACK_SCHEMA))[1]["_embedded"]["total"],
                (await api.get(f"{DPS}/{receipt['id']}", **{"offer-type": "fallback"}))[0],
                (await api.get(f"/data/core/xcore/{container_id('prod')}/instances/{xreceipt['instanceId']}"))[0]]
        await asyncio.sleep(1.1)
        seen += [(await api.get(DPS, **{"offer-type": "fallback", "property": "name==lagging"}))[1]["total"],
                 (await api.get(search, schema=FALLBACK_SCHEMA))[1]["_embedded"]["total"]]
        return seen

    assert run(emulator, go) == [0, 0, 200, 200, 1, 1]


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
    """Commit-then-drop: the offer is stored and the connection closed without an answer."""
    emulator.set_faults(Faults(drop_rate=1.0, scope="create"))
    outcomes = _fire(emulator, 3)
    assert all(o == "ServerDisconnectedError" for o in outcomes), outcomes
    stats = emulator.stats()
    assert stats["sandboxes"]["prod"]["offers"] == 3 and stats["faults_injected"]["commit_then_drop"] == 3


def test_reset_before_processing_stores_nothing(emulator: EmulatorServer) -> None:
    """A reset before processing closes the connection and stores nothing."""
    emulator.set_faults(Faults(reset_rate=1.0))
    outcomes = _fire(emulator, 3)
    assert all(isinstance(o, str) for o in outcomes), outcomes
    assert emulator.stats()["sandboxes"] == {}


def test_random_server_errors_are_reproducible_with_a_seed() -> None:
    """Random 5xx follow the seed: two runs give the same answers, and only the 201s stored offers."""
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
    """Beyond the rate limit in a 1-second window the answer is 429, with or without Retry-After as
    configured."""
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
    """Latency delays every answer; a slow answer outlasts a client timeout."""
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
    """Stats count creates, statuses and the most creates in any 1-second window."""
    _fire(emulator, 6)
    stats = emulator.stats()
    assert stats["creates_seen"] == 6 and stats["max_creates_per_second"] == 6
    assert stats["statuses"]["201"] == 6


def test_admin_endpoints_set_faults_and_reset(emulator: EmulatorServer) -> None:
    """The admin endpoints switch faults on and off (an unknown setting is a 400 naming it), list offers and
    reset the state."""
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
    """With --db, offers survive a restart and are found by name again."""
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
    """`bulkoffers emulator` serves on a free port with the fault flags given (here a rate limit without
    Retry-After) and its state file."""
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


def test_set_faults_takes_a_faults_object_or_keywords() -> None:
    """`emu.set_faults(latency_ms=5)` changes one setting and keeps the others; an unknown name is a
    ValueError that names it."""
    with EmulatorServer(EmulatorConfig(faults=Faults(rate_limit=50))) as emu:
        emu.set_faults(latency_ms=5)
        assert emu.stats()["faults"]["latency_ms"] == 5 and emu.stats()["faults"]["rate_limit"] == 50
        emu.set_faults(Faults(error_rate=0.5))
        assert emu.stats()["faults"]["rate_limit"] is None and emu.stats()["faults"]["error_rate"] == 0.5
        with pytest.raises(ValueError, match="latency"):
            emu.set_faults(latency=5)
