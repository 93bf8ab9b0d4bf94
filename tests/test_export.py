"""`export` and `copy` against the real emulator on loopback: every page, every component type, text
that CSV and Excel must quote, a round trip into another sandbox that makes equal offers, an unedited
re-import that changes nothing, placements mapped by name across sandboxes and APIs, and a copy killed
half-way and resumed that creates every offer once."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bulkoffers.config import Credentials, ImportConfig, RateLimit, RetryPolicy, Target
from bulkoffers.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID, EmulatorServer
from bulkoffers.engine import import_file
from bulkoffers.export import EXPORT_COLUMNS, OfferFilter
from bulkoffers.payloads import owned

from .conftest import ROOT, cli_env, emulator_args, run_cli
from .test_emulator import Api, run

HEADER = ["offer_key", "name", "description", "status", "tags", "channel", "placement", "component_type",
          "delivery_url", "link_url", "content", "language", "start_date", "end_date", "priority"]


def tricky_offers(path: Path, n: int) -> Path:
    """n offers of one to three components over every component type, with commas, quotes, newlines
    and non-Latin text in names and content."""
    names = ['Sale, "big" one', "Zeile\nzwei", "Скидка 20%", "割引 ✓", "plain"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i in range(n):
            key, name = f"k{i}", f"{names[i % len(names)]} #{i}"
            offer = [key, name, f"desc, \"{i}\"\nline two" if i % 3 == 0 else "", ["approved", "draft"][i % 2], ""]
            dates = ["2026-01-01", "2027-01-01T10:30:00Z", str(i % 7)] if i % 2 else ["", "", ""]
            w.writerow([*offer, "web", "offerPlacementWeb01", "imagelink", f"https://cdn.example.com/{i}.png",
                        f"https://example.com/?a={i}&b=2", "", "en,fr", *dates])
            if i % 2 == 0:
                w.writerow([key, "", "", "", "", "email", "offerPlacementMail01", "html", "", "",
                            f'<p class="x">Hallo, "{name}"</p>\n<p>ünïcödé</p>', "de", "", "", ""])
            if i % 5 == 0:
                w.writerow([key, "", "", "", "", "web", "offerPlacementWebJson01", "json", "", "",
                            json.dumps({"n": i, "text": "a, \"b\"\nc"}), "en", "", "", ""])
            if i % 7 == 0:
                w.writerow([key, "", "", "", "", "mobile", "offerPlacementApp01", "text", "", "", f"=1+{i}", "en", "",
                            "", ""])
    return path


def load(emu: EmulatorServer, source: Path, tmp: Path, sandbox: str, api: str = "dps") -> None:
    summary = import_file(ImportConfig(
        input=source, results=tmp / f"load-{sandbox}-{api}.csv", failures=tmp / f"load-{sandbox}-{api}.f.csv",
        target=Target(api=api, base_url=emu.url, ims_url=emu.url),  # type: ignore[arg-type]
        credentials=Credentials(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID, sandbox),
        rate=RateLimit(500), retry=RetryPolicy(base=0.05, cap=0.5, timeout=5)))
    assert summary.created == summary.rows, summary


def stored(emu: EmulatorServer, sandbox: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{emu.url}/__emulator/offers?sandbox={sandbox}", timeout=10) as resp:  # loopback
        return list(json.loads(resp.read()))


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One emulator with 300 tricky offers in sandbox dev (shared by the tests that only read it)."""
    tmp = tmp_path_factory.mktemp("export")
    with EmulatorServer() as emu:
        load(emu, tricky_offers(tmp / "source.csv", 300), tmp, "dev")
        yield emu, tmp


def test_export_lists_every_page_and_writes_every_component(loaded: Any) -> None:
    """300 offers over three pages: one row per component in import's columns plus the read-only ones,
    offer_key the id, placements by name, quoting intact in CSV and XLSX alike."""
    emu, tmp = loaded
    for out in (tmp / "all.csv", tmp / "all.xlsx"):
        done = run_cli("export", str(out), *emulator_args(emu), "--sandbox", "dev", "--rate", "100", "--force")
        assert done.returncode == 0 and "exported 300 offers from sandbox 'dev'" in done.stderr, done.stderr
    rows = rows_of(tmp / "all.csv")
    assert tuple(rows[0]) == EXPORT_COLUMNS
    offers = {o["id"]: o for o in stored(emu, "dev")}
    components = sum(len(r["components"]) for o in offers.values() for r in o["body"]["representations"])
    assert len(rows) == components and {r["offer_key"] for r in rows} == set(offers)
    assert all(r["id"] == r["offer_key"] and r["etag"] and r["modified"] for r in rows)
    assert {r["placement"] for r in rows} == {"Web banner", "Email body", "Web JSON", "App message"}
    assert {r["component_type"] for r in rows} == {"imagelink", "html", "json", "text"}
    names = {r["name"] for r in rows}
    assert 'Sale, "big" one #0' in names and "Zeile\nzwei #1" in names and "割引 ✓ #3" in names
    assert any(r["content"] == "=1+0" for r in rows)  # kept as text, never a formula
    import openpyxl

    sheet = openpyxl.load_workbook(tmp / "all.xlsx", read_only=True).active
    assert sheet is not None
    xrows = [[("" if c is None else str(c)) for c in r] for r in sheet.iter_rows(values_only=True)]
    assert xrows[0] == list(EXPORT_COLUMNS) and len(xrows) == len(rows) + 1
    assert sorted(map(tuple, xrows[1:])) == sorted(tuple(r.values()) for r in rows)


def test_filter_keeps_matching_offers(loaded: Any) -> None:
    """--filter name=GLOB and status=S combine; a malformed filter is exit 2 naming it."""
    emu, tmp = loaded
    out = tmp / "some.csv"
    done = run_cli("export", str(out), *emulator_args(emu), "--sandbox", "dev", "--filter", "name=Скидка*",
                   "--filter", "status=approved", "--force")
    assert done.returncode == 0, done.stderr
    names = {r["name"] for r in rows_of(out)}
    assert names and all(n.startswith("Скидка") for n in names)
    assert all(r["status"] == "approved" for r in rows_of(out))
    assert OfferFilter.parse(["name=a*"])("abc", "draft") and not OfferFilter.parse(["status=draft"])("a", "approved")
    bad = run_cli("export", str(tmp / "x.csv"), *emulator_args(emu), "--filter", "colour=red")
    assert bad.returncode == 2 and "--filter 'colour=red' is neither name=PATTERN nor status=STATUS" in bad.stderr


def test_round_trip_into_another_sandbox_makes_equal_offers(loaded: Any) -> None:
    """export dev → import into an empty sandbox: every offer equal to its original on every field
    bulkoffers writes (the lookup's comparison); then an unedited re-import with --on-existing update
    changes nothing."""
    emu, tmp = loaded
    out = tmp / "trip.xlsx"
    assert run_cli("export", str(out), *emulator_args(emu), "--sandbox", "dev", "--force").returncode == 0
    first = run_cli("import", str(out), *emulator_args(emu), "--sandbox", "trip", "--rate", "200",
                    "--results", str(tmp / "trip.csv"), "--force")
    assert first.returncode == 0, first.stderr
    assert "column(s) not used" not in first.stderr  # id, at_id, etag, modified: known and ignored
    original = {o["name"]: owned(o["body"], "dps") for o in stored(emu, "dev")}
    copied = {o["name"]: owned(o["body"], "dps") for o in stored(emu, "trip")}
    assert copied == original
    patches = emu.stats()["requests"].get("patch", 0)
    again = run_cli("import", str(out), *emulator_args(emu), "--sandbox", "dev", "--on-existing", "update",
                    "--results", str(tmp / "again.csv"), "--force")
    assert again.returncode == 0 and re.search(r"(\d+) rows: 0 created, \1 unchanged, 0 failed", again.stderr), \
        again.stderr
    assert emu.stats()["requests"].get("patch", 0) == patches


def placement(name: str, channel: str, kind: str) -> dict[str, Any]:
    return {"name": name, "description": name, "componentType": kind, "itemCount": 1,
            "channel": f"https://ns.adobe.com/xdm/channel-types/{channel}"}


def test_copy_maps_placements_by_name_and_reports_the_unmatched(tmp_path: Path) -> None:
    """dev has its own placements (ids the emulator made for it); prod has one of the same name and
    channel under another id, and not the other: the offers of the first are created in prod on prod's
    id, the offer of the second is invalid with the fix, never sent."""
    with EmulatorServer() as emu:
        async def make(api: Api) -> dict[str, str]:
            ids = {}
            for sandbox, name in (("dev", "Hero"), ("dev", "Dev only"), ("prod", "Hero")):
                api.sandbox = sandbox
                status, made = await api.call("POST", "/data/core/dps/placements", placement(name, "web", "imagelink"))
                assert status == 201
                ids[f"{sandbox}:{name}"] = made["id"]
            return ids

        ids = run(emu, make)
        assert ids["dev:Hero"] != ids["prod:Hero"]
        source = tmp_path / "dev.csv"
        source.write_text("name,channel,placement,component_type,delivery_url\n"
                          f"a,web,{ids['dev:Hero']},imagelink,https://x.example/a.png\n"
                          f"b,web,{ids['dev:Hero']},imagelink,https://x.example/b.png\n"
                          f"c,web,{ids['dev:Dev only']},imagelink,https://x.example/c.png\n")
        load(emu, source, tmp_path, "dev")
        out = run_cli("copy", "--from-sandbox", "dev", "--to-sandbox", "prod", *emulator_args(emu),
                      "--results", str(tmp_path / "c.results.csv"))
        assert out.returncode == 1, out.stderr
        results = {r["name"]: r for r in rows_of(tmp_path / "c.results.csv")}
        assert results["a"]["outcome"] == results["b"]["outcome"] == "created"
        assert results["c"]["outcome"] == "invalid"
        assert "'Dev only' is not a placement of sandbox 'prod'" in results["c"]["error"]
        prod = {o["name"]: o["body"] for o in stored(emu, "prod")}
        assert set(prod) == {"a", "b"}
        assert {prod[n]["representations"][0]["placement"] for n in prod} == {ids["prod:Hero"]}
        assert (tmp_path / "c.export.csv").exists() and (tmp_path / "c.results.csv.journal").exists()


def test_copy_from_xcore_to_dps_maps_placements(tmp_path: Path) -> None:
    """Offers made with the legacy xcore API (placements by @id) copied to DPS in the same sandbox:
    each lands on the DPS id of the placement with the same name."""
    with EmulatorServer() as emu:
        source = tmp_path / "x.csv"
        source.write_text("name,channel,placement,component_type,delivery_url,content\n"
                          "x1,web,xcore:offer-placement:1250c9f1a2b3c4d6,imagelink,https://x.example/1.png,\n"
                          "x2,email,xcore:offer-placement:1250c9f1a2b3c4d9,html,,<p>hi</p>\n")
        load(emu, source, tmp_path, "prod", api="xcore")
        out = run_cli("copy", "--from-sandbox", "prod", "--to-sandbox", "prod", "--from-api", "xcore",
                      "--to-api", "dps", *emulator_args(emu), "--results", str(tmp_path / "x.results.csv"))
        assert out.returncode == 0, out.stderr
        dps = {o["name"]: o["body"] for o in stored(emu, "prod") if o["flavor"] == "dps"}
        assert {n: b["representations"][0]["placement"] for n, b in dps.items()} == {
            "x1": "offerPlacementWeb01", "x2": "offerPlacementMail01"}


def test_copy_of_nothing_says_so_and_leaves_no_files(loaded: Any, tmp_path: Path) -> None:
    """A copy from an empty sandbox, or with a --filter nothing matches, says there is nothing to copy,
    exits 0, sends nothing and leaves no export, results or journal behind."""
    emu, _ = loaded
    before = emu.stats()["creates_seen"]
    results = tmp_path / "c.results.csv"
    empty = run_cli("copy", "--from-sandbox", "empty", "--to-sandbox", "prod", *emulator_args(emu),
                    "--results", str(results))
    assert empty.returncode == 0, empty.stderr
    assert empty.stderr.strip().splitlines()[-1] == "nothing to copy: sandbox 'empty' (dps) has no fallback offers"
    none = run_cli("copy", "--from-sandbox", "dev", "--to-sandbox", "prod", "--filter", "name=no such*",
                   *emulator_args(emu), "--results", str(results))
    assert none.returncode == 0, none.stderr
    assert none.stderr.strip().splitlines()[-1] == ("nothing to copy: none of the 300 fallback offers in sandbox "
                                                    "'dev' (dps) match --filter")
    assert list(tmp_path.iterdir()) == [] and emu.stats()["creates_seen"] == before


def test_copy_killed_half_way_then_resumed_creates_each_offer_once(tmp_path: Path) -> None:
    """kill -9 during a copy of 150 offers, then `bulkoffers resume RESULTS`: every offer in the target
    once, no name twice."""
    with EmulatorServer() as emu:
        load(emu, tricky_offers(tmp_path / "s.csv", 150), tmp_path, "dev")
        results = tmp_path / "k.results.csv"
        proc = subprocess.Popen([sys.executable, "-m", "bulkoffers", "copy", "--from-sandbox", "dev", "--to-sandbox",
                                 "prod", *emulator_args(emu), "--results", str(results), "--rate", "40", "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(), cwd=ROOT)
        deadline = time.monotonic() + 60
        while emu.stats()["sandboxes"].get("prod", {}).get("offers", 0) < 40 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        before = emu.stats()["sandboxes"]["prod"]["offers"]
        assert 0 < before < 150
        out = run_cli("resume", str(results), *emulator_args(emu), "--rate", "200", "--settle", "0")
        assert out.returncode == 0, out.stderr
        stats = emu.stats()["sandboxes"]["prod"]
        assert stats["offers"] == 150 and stats["duplicate_names"] == {}
        assert sum(r["outcome"] == "created" for r in rows_of(results)) == len(rows_of(results))
