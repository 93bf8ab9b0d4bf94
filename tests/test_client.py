"""bulkoffers' client against the real emulator: paging as Adobe documents it, lookups that survive any
name, the xcore container of the right sandbox. Through the same attempt loop the import uses."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from bulkoffers.client import OfferLibrary, name_filter, open_library
from bulkoffers.config import ApiConfig, RateLimit, RetryPolicy, Target
from bulkoffers.emulator import EmulatorConfig, EmulatorServer, container_id
from bulkoffers.ratelimit import RateLimiter
from bulkoffers.sender import Sender

from .test_import import CREDS

PLACEMENT = {"dps": "offerPlacementWeb01", "xcore": "xcore:offer-placement:1250c9f1a2b3c4d6"}
WEB = "https://ns.adobe.com/xdm/channel-types/web"


def body(api: str, name: str) -> dict[str, Any]:
    if api == "dps":
        return {"name": name, "status": "approved", "representations": [{
            "channel": WEB, "placement": PLACEMENT["dps"],
            "components": [{"type": "imagelink", "format": "image/png", "deliveryURL": "https://x.com/a.png"}]}]}
    return {"xdm:name": name, "xdm:status": "approved", "xdm:representations": [{
        "xdm:channel": WEB, "xdm:placement": PLACEMENT["xcore"], "xdm:components": [{
            "@type": "https://ns.adobe.com/experience/offer-management/content-component-imagelink",
            "dc:format": "image/png", "xdm:deliveryURL": "https://x.com/a.png"}]}]}


def with_sender(emu: EmulatorServer, api: str, fn: Any, sandbox: str = "prod") -> Any:
    config = ApiConfig(Target(api=api, base_url=emu.url, ims_url=emu.url),  # type: ignore[arg-type]
                       CREDS.__class__(CREDS.client_id, CREDS.client_secret, CREDS.org_id, sandbox),
                       RateLimit(500), RetryPolicy(base=0.01, cap=0.1, timeout=5))

    async def main() -> Any:
        async with open_library(config) as lib:
            return await fn(lib, Sender(lib, RateLimiter(config.rate), config.retry))

    return anyio.run(main)


@pytest.mark.parametrize("api", ["dps", "xcore"])
def test_listing_follows_documented_next_links_over_three_pages(api: str) -> None:
    """Adobe's next links are relative to the API root (/data/core/dps, /data/core/xcore); the client
    joins them there, so a listing of three pages sees every offer once (the bug: joined to the host)."""
    with EmulatorServer(EmulatorConfig(page_limit=4)) as emu:
        async def go(lib: OfferLibrary, sender: Sender) -> tuple[list[str], int]:
            for i in range(11):
                assert (await lib.create(body(api, f"paged {i:02d}"))).status == 201
            before = emu.stats()["requests"]["api"]
            pages = [page async for page in sender.pages(lambda: lib.list_page(limit=4))]
            return [f.name for page in pages for f in page], emu.stats()["requests"]["api"] - before

        names, requests = with_sender(emu, api, go)
    assert sorted(names) == [f"paged {i:02d}" for i in range(11)] and requests == 3


NAMES = ["Sale, 10% off", "Tom & Jerry", "1+1", "#1 pick", "a=b", "50% off", 'The "best"', "it's", "~approx",
         "Café crème", "日本語のオファー", "  leading", "trailing  ", "x==y", "!not", "a<b>c", "back\\slash",
         "dots.and.dots", "(paren)", "[bracket]", "star*", "q?"]


@pytest.mark.parametrize("api", ["dps", "xcore"])
def test_a_lookup_finds_exactly_the_offer_whatever_its_name_holds(api: str) -> None:
    """Every character a spreadsheet can put in a name reaches a lookup that finds exactly that offer,
    against the emulator's documented filter grammar (commas split expressions, `~` matches the whole
    value); decoys that a loose pattern also matches are told apart by comparing names."""
    with EmulatorServer(EmulatorConfig()) as emu:
        async def go(lib: OfferLibrary, sender: Sender) -> dict[str, list[str]]:
            ids = {}
            for name in NAMES:
                ids[name] = (await lib.create(body(api, name))).body
            for decoy in ("Sale. 10. off", "Tom X Jerry", "1x1", "Sale"):
                await lib.create(body(api, decoy))
            found = {name: [f.name for f in await sender.named(name)] for name in NAMES}
            return found

        found = with_sender(emu, api, go)
    assert found == {name: [name] for name in NAMES}


def test_name_filter_is_exact_when_it_can_be_and_a_whole_value_pattern_otherwise() -> None:
    """The filter for a plain name is `==`; a name the grammar cannot carry becomes a `~` pattern with a
    wildcard for each unsafe character (never a comma, never leading or trailing spaces)."""
    assert name_filter("name", "Spring sale 2026") == "name==Spring sale 2026"
    assert name_filter("name", "Sale, 10% off") == "name~Sale. 10. off"
    assert name_filter("_instance.xdm:name", "  lead") == "_instance.xdm:name~. lead"
    assert name_filter("name", "line\nbreak") == "name~line\\sbreak"
    for name in NAMES:
        expr = name_filter("name", name)
        assert "," not in expr and expr == expr.strip()


def test_the_xcore_container_of_the_requested_sandbox_is_chosen() -> None:
    """The container listing names several sandboxes; the client takes the one of its own sandbox even
    when another is listed first."""
    with EmulatorServer(EmulatorConfig()) as emu:
        with_sender(emu, "xcore", lambda lib, sender: anyio.sleep(0), sandbox="dev")  # "dev" now listed first
        chosen = with_sender(emu, "xcore", lambda lib, sender: _container(lib), sandbox="prod")
    assert chosen == container_id("prod") != container_id("dev")


async def _container(lib: OfferLibrary) -> str:
    return str(lib.container_id)
