"""Columns → validated offers → payloads. Pure functions, no network."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from bulkoffers.config import MappingSpec
from bulkoffers.errors import ConfigError
from bulkoffers.columns import resolve_columns
from bulkoffers.grouping import plan, prepare
from bulkoffers.offers import MAX_OFFERS, Context, parse_when
from bulkoffers.payloads import dps_payload, matches, xcore_payload
from bulkoffers.reader import SourceRow

HEAD = ["Offer Key", "NAME", "start-date", "End_Date", "priority", "channel", "placement", "Component Type",
        "format", "delivery url", "content", "language", "status", "description", "tags", "link_url"]


def row(number: int, **cells: str) -> SourceRow:
    base = {"Offer Key": "", "NAME": "", "start-date": "", "End_Date": "", "priority": "", "channel": "web",
            "placement": "offerPlacement1234", "Component Type": "imagelink", "format": "",
            "delivery url": "https://mysite.com/a.png", "content": "", "language": "", "status": "",
            "description": "", "tags": "", "link_url": ""}
    base.update({k.replace("_", " ") if k == "delivery_url" else k: v for k, v in cells.items()})
    return SourceRow(number, base)


def prepared(rows: list[SourceRow], api: str = "dps", headers: list[str] = HEAD) -> list[Any]:
    cmap = resolve_columns(headers)
    return list(prepare(rows, cmap, plan(rows, cmap), Context(api)))  # type: ignore[arg-type]


def problems(rows: list[SourceRow], api: str = "dps") -> list[str]:
    return [str(p) for item in prepared(rows, api) for p in item.problems]


def test_headers_match_ignoring_case_spaces_dashes_underscores() -> None:
    """Headers match fields whatever their case, spaces, dashes and underscores; unknown headers are kept to
    be reported."""
    cmap = resolve_columns(HEAD + ["Internal note"])
    assert cmap.header_of["offer_key"] == "Offer Key" and cmap.header_of["start_date"] == "start-date"
    assert cmap.header_of["end_date"] == "End_Date" and cmap.header_of["delivery_url"] == "delivery url"
    assert cmap.unknown == ("Internal note",)


def test_mapping_file_columns_and_defaults() -> None:
    """A mapping file maps other headers to fields and fills empty fields with its defaults."""
    spec = MappingSpec(columns=(("Titel", "name"), ("Bild", "delivery_url")),
                       defaults=(("channel", "email"), ("placement", "p1"), ("component_type", "imagelink")))
    cmap = resolve_columns(["Titel", "Bild"], spec)
    [item] = list(prepare([SourceRow(2, {"Titel": "T", "Bild": "https://x.com/a.gif"})], cmap,
                          plan([SourceRow(2, {"Titel": "T", "Bild": "https://x.com/a.gif"})], cmap), Context()))
    rep = dps_payload(item.offer)["representations"][0]
    assert rep["channel"] == "https://ns.adobe.com/xdm/channel-types/email" and rep["placement"] == "p1"
    assert rep["components"][0]["format"] == "image/gif"


@pytest.mark.parametrize("headers,spec,needle", [
    (["title"], MappingSpec(), None),
    (["foo"], MappingSpec(), "no 'name' column"),
    (["name", "Name "], MappingSpec(), "both map to name"),
    (["x"], MappingSpec(columns=(("x", "nom"),)), "unknown field 'nom'"),
    (["name"], MappingSpec(defaults=(("colour", "red"),)), "unknown field 'colour'"),
])
def test_column_resolution_errors(headers: list[str], spec: MappingSpec, needle: str | None) -> None:
    """A mapping to an unknown field, two columns for one field or no name column is a ConfigError naming
    it."""
    if needle is None:
        assert resolve_columns(headers, spec).header_of == {"name": "title"}
    else:
        with pytest.raises(ConfigError, match=needle):
            resolve_columns(headers, spec)


def test_dps_payload_has_the_documented_shape() -> None:
    """The DPS body is the documented example's shape, dates in its form, a date-only end date the end of
    that day."""
    [item] = prepared([row(2, NAME="Test Fallback Offer DPS", description="Fallback Offer description",
                           status="approved", **{"start-date": "2022-06-10T00:30:00", "End_Date": "2032-06-06",
                                                "priority": "1", "delivery url": "https://mysite.com/x.png"})])
    assert dps_payload(item.offer) == {
        "name": "Test Fallback Offer DPS", "description": "Fallback Offer description", "status": "approved",
        "selectionConstraint": {"startDate": "2022-06-10T00:30:00.000+00:00",
                                "endDate": "2032-06-06T23:59:59.999+00:00", "profileConstraintType": "none"},
        "representations": [{"components": [{"deliveryURL": "https://mysite.com/x.png", "type": "imagelink",
                                              "format": "image/png", "language": ["en"]}],
                             "channel": "https://ns.adobe.com/xdm/channel-types/web",
                             "placement": "offerPlacement1234"}],
        "rank": {"priority": 1}}


def test_xcore_payload_has_the_documented_shape() -> None:
    """The xcore body is the documented example's shape (xdm: and dc: fields, component @type URIs)."""
    [item] = prepared([row(2, NAME="X", placement="xcore:offer-placement:124e0be5699743d3",
                           **{"Component Type": "html", "delivery url": "", "content": "<p>x</p>", "language": "en,fr",
                              "tags": "xcore:tag:1"})], api="xcore")
    assert xcore_payload(item.offer) == {
        "xdm:name": "X", "xdm:status": "approved", "xdm:tags": ["xcore:tag:1"],
        "xdm:representations": [{"xdm:components": [{
            "@type": "https://ns.adobe.com/experience/offer-management/content-component-html",
            "dc:format": "text/html", "dc:language": ["en", "fr"], "xdm:content": "<p>x</p>"}],
            "xdm:channel": "https://ns.adobe.com/xdm/channel-types/web",
            "xdm:placement": "xcore:offer-placement:124e0be5699743d3"}]}


def test_text_component_is_one_constant_whatever_the_input_spelling() -> None:
    """text, Text and component-text all become the one text component type."""
    items = prepared([row(2, NAME="a", **{"Component Type": "component-text", "delivery url": "", "content": "hi"}),
                      row(3, NAME="b", **{"Component Type": "Text", "delivery url": "", "content": "hi"})])
    types = {dps_payload(i.offer)["representations"][0]["components"][0]["type"] for i in items}
    assert types == {"text"}


def test_rows_sharing_a_key_become_one_offer_even_far_apart() -> None:
    """Rows with one offer_key become one offer wherever they are, with one representation per channel and
    placement."""
    rows = [row(2, **{"Offer Key": "k1", "NAME": "One"}),
            row(3, **{"Offer Key": "k2", "NAME": "Two"}),
            row(4, **{"Offer Key": "k1", "channel": "email", "placement": "mail1", "Component Type": "html",
                      "delivery url": "", "content": "<p>x</p>"}),
            row(5, **{"Offer Key": "k1", "channel": "email", "placement": "mail1", "Component Type": "text",
                      "delivery url": "", "content": "plain"})]
    items = prepared(rows)
    by_key = {i.key: i for i in items}
    assert [r.number for r in by_key["k1"].rows] == [2, 4, 5]
    reps = dps_payload(by_key["k1"].offer)["representations"]
    assert [(r["placement"], len(r["components"])) for r in reps] == [("offerPlacement1234", 1), ("mail1", 2)]
    assert sorted(n for i in items for n in (r.number for r in i.rows)) == [2, 3, 4, 5]  # every row exactly once


def test_without_offer_key_rows_group_by_name() -> None:
    """Without an offer_key column, rows with the same name become one offer."""
    headers = [h for h in HEAD if h != "Offer Key"]
    rows = [SourceRow(2, {**row(2, NAME="Same").cells}), SourceRow(3, {**row(3, NAME="Same", placement="p2").cells})]
    for r in rows:
        r.cells.pop("Offer Key")
    items = prepared(rows, headers=headers)
    assert len(items) == 1 and len(dps_payload(items[0].offer)["representations"]) == 2


def test_conflicting_offer_level_values_in_a_group() -> None:
    """Rows of one offer that disagree on an offer-level value make it invalid, naming the row, column and
    fix."""
    rows = [row(2, **{"Offer Key": "k", "NAME": "One", "status": "approved"}),
            row(3, **{"Offer Key": "k", "status": "draft", "placement": "p2"})]
    assert problems(rows) == ["row 3, status: 'draft' differs from row 2's 'approved' for the same offer 'k'; "
                              "leave it empty or make them equal"]
    [item] = prepared(rows)
    assert item.offer is None


@pytest.mark.parametrize("cells,expected", [
    ({"NAME": ""}, "row 2, NAME: is empty; every offer needs a name"),
    ({"End_Date": "2021-13-01"}, "row 2, End_Date: '2021-13-01' is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)"),
    ({"start-date": "2026-05-01", "End_Date": "2026-04-01"}, "row 2, End_Date: must be after start-date"),
    ({"status": "live"}, "row 2, status: 'live' is not a status (use draft, approved or archived)"),
    ({"priority": "-1"}, "row 2, priority: '-1' is not a whole number of 0 or more"),
    ({"priority": "1.5"}, "row 2, priority: '1.5' is not a whole number of 0 or more"),
    ({"channel": "tv"}, "row 2, channel: 'tv' is not a channel"),
    ({"placement": ""}, "row 2, placement: is empty; give the placement (its id, or its name) the offer is shown in"),
    ({"Component Type": "video"}, "row 2, Component Type: 'video' is not a component type (use imagelink, html, text or json)"),
    ({"delivery url": ""}, "row 2, delivery url: is empty; an imagelink component needs the image URL"),
    ({"delivery url": "ftp://x/a.png"}, "row 2, delivery url: 'ftp://x/a.png' is not an http(s) URL"),
    ({"delivery url": "https://x.com/image"}, "row 2, format: cannot tell it from the URL; fill the format column (e.g. image/png)"),
    ({"format": "png"}, "row 2, format: 'png' is not a MIME type like image/png"),
    ({"Component Type": "html", "delivery url": ""}, "row 2, content: is empty; a html component needs content"),
    ({"Component Type": "json", "delivery url": "", "content": "{oops"}, "row 2, content: is not valid JSON"),
    ({"language": "english!"}, "row 2, language: 'english!' is not a BCP 47 language tag"),
    ({"language": "en,en-a"}, "row 2, language: 'en-a' is not a BCP 47 language tag"),
    ({"language": "de-1"}, "row 2, language: 'de-1' is not a BCP 47 language tag"),
    ({"channel": "code"}, "row 2, channel: 'code' is not an XDM channel (code-based experiences go to web pages or apps"),
    ({"channel": "https://ns.adobe.com/xdm/channel-types/my web"}, "row 2, channel: "
                                                                    "'https://ns.adobe.com/xdm/channel-types/my web' is not a URI"),
])
def test_row_problems_name_row_column_and_fix(cells: dict[str, str], expected: str) -> None:
    """Each kind of bad cell is reported with its row, column and what to write instead."""
    got = problems([row(2, NAME="n", **cells) if "NAME" not in cells else row(2, **cells)])
    assert len(got) == 1 and got[0].startswith(expected), got


def test_xcore_values_follow_the_xdm_schema() -> None:
    """What Adobe's XDM schema refuses is refused at validation time for xcore: tags that are not URIs,
    placement ids with spaces; a value without a colon is a placement name, left to the preflight."""
    assert problems([row(2, NAME="n", placement="xcore:offer placement:1")], api="xcore") == [
        "row 2, placement: 'xcore:offer placement:1' is not a URI (xcore placement ids look like "
        "xcore:offer-placement:124e0be5699743d3; no spaces)"]
    assert problems([row(2, NAME="n", placement="xcore:offer-placement:1", tags="summer, xcore:tag:1")],
                    api="xcore") == ["row 2, tags: 'summer' is not a URI (xcore tags are tag ids like "
                                     "xcore:tag:124e8e3fb8e4b7e4)"]
    assert problems([row(2, NAME="n", placement="Web banner")], api="xcore") == []
    assert problems([row(2, NAME="n", tags="summer")], api="dps") == []  # DPS tags are collection qualifier ids


@pytest.mark.parametrize("tag,ok", [
    ("en", True), ("en-US", True), ("pt-BR", True), ("zh-Hant-TW", True), ("x-klingon", True), ("i-klingon", True),
    ("sgn-BE-FR", True), ("de-CH-1901", True), ("en-US-x-twain", True), ("zh-min-nan", True), ("qaa", True),
    ("en-a-bbb", True), ("en-a", False), ("de-1", False), ("123", False), ("e", False), ("english!", False),
    ("toolongtaglanguage", False), ("en--US", False), ("en-", False),
])
def test_language_tags_follow_bcp47_like_the_schema_and_the_emulator(tag: str, ok: bool) -> None:
    """The client and the emulator implement RFC 5646 independently; both must agree with the grammar
    (the XDM schema's dc:language pattern) on these tags, taken from the RFC and from the issue."""
    from bulkoffers.emulator.validation import LANGUAGE_TAG
    from bulkoffers.xdm import is_language_tag

    assert is_language_tag(tag) is ok
    assert (LANGUAGE_TAG.fullmatch(tag) is not None) is ok


@pytest.mark.parametrize("name,uri", [("web", "web"), ("email", "email"), ("push", "mobile"), ("inapp", "mobile"),
                                      ("sms", "messaging"), ("Social", "social"), ("display", "display")])
def test_short_channel_names_map_to_channel_types_xdm_knows(name: str, uri: str) -> None:
    """Short channel names become XDM channel types (push and inapp are mobile, sms is messaging)."""
    from bulkoffers.xdm import channel_uri

    assert channel_uri(name) == f"https://ns.adobe.com/xdm/channel-types/{uri}"


def test_content_guardrail_is_checked_before_sending() -> None:
    """Content over Adobe's 1 KB per offer, across placements, is refused before sending."""
    rows = [row(2, **{"Offer Key": "k", "NAME": "big", "Component Type": "html", "delivery url": "",
                      "content": "x" * 600}),
            row(3, **{"Offer Key": "k", "placement": "p2", "Component Type": "html", "delivery url": "",
                      "content": "y" * 600})]
    [problem] = problems(rows)
    assert "1200 bytes" in problem and "1024" in problem


def test_duplicate_names_across_keys_are_reported_once_per_repeat() -> None:
    """A name used by two offer keys is reported on each repeat, pointing at the first."""
    rows = [row(2, **{"Offer Key": "a", "NAME": "Same"}), row(3, **{"Offer Key": "b", "NAME": "Other"}),
            row(4, **{"Offer Key": "c", "NAME": "Same"})]
    assert problems(rows) == ["row 4, NAME: 'Same' is also the name of offer_key 'a' (row 2); names must be "
                              "unique or the run creates duplicate offers"]


def test_sandbox_offer_guardrail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offers past the guardrail of offers per file are refused with their number."""
    monkeypatch.setattr("bulkoffers.grouping.MAX_OFFERS", 2)
    got = problems([row(n, **{"Offer Key": str(n), "NAME": f"o{n}"}) for n in range(2, 6)])
    assert len(got) == 2 and "offer #3 of this file" in got[0] and MAX_OFFERS == 10_000


@pytest.mark.parametrize("text,expected,date_only", [
    ("2026-03-01", datetime(2026, 3, 1, tzinfo=timezone.utc), True),
    ("2026-03-01T10:30:00Z", datetime(2026, 3, 1, 10, 30, tzinfo=timezone.utc), False),
    ("2026-03-01 10:30", datetime(2026, 3, 1, 10, 30, tzinfo=timezone.utc), False),
    ("2026/03/01", datetime(2026, 3, 1, tzinfo=timezone.utc), True),
    ("01.03.2026", datetime(2026, 3, 1, tzinfo=timezone.utc), True),
    ("03/01/2026", datetime(2026, 3, 1, tzinfo=timezone.utc), True),  # US month/day
    ("25/12/2026", datetime(2026, 12, 25, tzinfo=timezone.utc), True),  # day first when it must be
    ("3/1/2026 2:05 PM", datetime(2026, 3, 1, 14, 5, tzinfo=timezone.utc), False),
])
def test_dates_in_common_spreadsheet_forms(text: str, expected: datetime, date_only: bool) -> None:
    """Dates in the forms spreadsheets write parse to the right instant, and date-only values say so."""
    assert parse_when(text) == (expected, date_only)


def test_matches_allows_server_fields_but_not_differences() -> None:
    """matches() allows fields the server adds, never a different or missing value."""
    sent = {"name": "a", "representations": [{"components": [{"type": "html"}]}]}
    assert matches(sent, {**sent, "id": "x", "etag": 1})
    assert not matches(sent, {"name": "a", "representations": [{"components": [{"type": "text"}]}]})
    assert not matches(sent, {"name": "a"})


@pytest.mark.parametrize("name,api", [("offers.csv", "dps"), ("offers.xlsx", "dps"), ("custom_headers.csv", "dps"),
                                      ("xcore.csv", "xcore")])
def test_the_fast_digest_of_a_sent_body_is_the_content_digest(name: str, api: str, tmp_path: Any) -> None:
    """sent_digest (the journal's fingerprint of what a run sent, computed per row) equals the generic
    content_digest (verify's, of what the server holds) for every payload the fixtures make, dates with
    and without a time included; a changed field changes it."""
    import json
    from pathlib import Path

    from bulkoffers.config import ImportConfig, Target, load_mapping
    from bulkoffers.payloads import content_digest, sent_digest
    from bulkoffers.source import validate

    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    mapping = load_mapping(fixtures / "custom_mapping.toml") if name.startswith("custom") else MappingSpec()
    out = tmp_path / "p.jsonl"
    validate(ImportConfig(input=fixtures / name, results=out, failures=out, payloads_out=out, mapping=mapping,
                          target=Target(api=api)), lambda _: None)  # type: ignore[arg-type]
    bodies = [json.loads(line)["payload"] for line in out.read_text().splitlines()]
    assert bodies
    if api == "dps":  # dates written with an offset and with Z, as another tool (or the service) writes them
        offset = {**bodies[0], "selectionConstraint": {"startDate": "2026-01-01T02:00:00+02:00",
                                                       "endDate": "2027-01-01T00:00:00Z", "profileConstraintType": "none"}}
        bodies.append(offset)
        utc = {**offset, "selectionConstraint": {"startDate": "2026-01-01T00:00:00.000+00:00",
                                                 "endDate": "2027-01-01T00:00:00.000+00:00",
                                                 "profileConstraintType": "none"}}
        assert content_digest(offset, api) == content_digest(utc, api) == sent_digest(utc, api)  # type: ignore[arg-type]
        bodies.remove(offset)
    for body in bodies:
        assert sent_digest(body, api) == content_digest(body, api)  # type: ignore[arg-type]
        changed = {**body, ("name" if api == "dps" else "xdm:name"): "something else"}
        assert sent_digest(changed, api) != sent_digest(body, api)  # type: ignore[arg-type]
