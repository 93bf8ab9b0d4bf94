"""Routine uploads: offers that exist are updated, left alone or refused (--on-existing), never
duplicated by default; updates are exactly once across kills and can be rolled back. Against the real
emulator, counting creates and etags on its side."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from bulkoffers.client import open_library
from bulkoffers.config import ApiConfig, RateLimit, RetryPolicy, Target
from bulkoffers.emulator import EmulatorConfig, EmulatorServer, Faults
from bulkoffers.grouping import prepare
from bulkoffers.payloads import same_content
from bulkoffers.ratelimit import RateLimiter
from bulkoffers.sender import Job, Sender
from bulkoffers.source import load, with_payloads

from .conftest import emulator_args, run_cli
from .test_exactly_once import kill_when, start
from .test_import import CREDS, config, read_csv
from .test_lag import admin

PLACEMENT = {"dps": "offerPlacementWeb01", "xcore": "xcore:offer-placement:1250c9f1a2b3c4d6"}


def offers_csv(path: Path, n: int, api: str = "dps", edits: dict[int, dict[str, str]] | None = None) -> Path:
    """n offers; `edits` changes some cells of some rows (by offer index)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["name", "description", "status", "channel", "placement", "component_type",
                                "delivery_url"])
        w.writeheader()
        for i in range(n):
            row = {"name": f"weekly {i:03d}", "description": f"offer {i}", "status": "approved", "channel": "web",
                   "placement": PLACEMENT[api], "component_type": "imagelink",
                   "delivery_url": f"https://cdn.example.com/{i}.png"}
            row.update((edits or {}).get(i, {}))
            w.writerow(row)
    return path


def stored(emu: EmulatorServer, sandbox: str = "prod") -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in admin(emu, f"/__emulator/offers?sandbox={sandbox}")}


@pytest.mark.parametrize("api", ["dps", "xcore"])
def test_edit_ten_rows_and_import_again_updates_them_in_place(tmp_path: Path, api: str) -> None:
    """Import 30 offers, change 10 rows of the file, import it again with --on-existing update: the same
    ids, 10 rows updated (their changed fields named), 20 unchanged, no new offer and no create sent."""
    edits = {i: ({"delivery_url": f"https://cdn.example.com/new{i}.png"} if i % 2 else {"status": "draft"})
             for i in range(0, 30, 3)}
    with EmulatorServer(EmulatorConfig()) as emu:
        args = [*emulator_args(emu), "--api", api, "--rate", "200"]
        first = run_cli("import", str(offers_csv(tmp_path / "v1.csv", 30, api)), *args,
                        "--results", str(tmp_path / "r1.csv"))
        assert first.returncode == 0, first.stderr
        creates = emu.stats()["creates_seen"]
        again = run_cli("import", str(offers_csv(tmp_path / "v2.csv", 30, api, edits)), *args,
                        "--on-existing", "update", "--results", str(tmp_path / "r2.csv"))
        assert again.returncode == 0, again.stderr
        rows = read_csv(tmp_path / "r2.csv")
        offers = stored(emu)
        assert emu.stats()["creates_seen"] == creates and len(offers) == 30
    ids = {r["row"]: r["id"] for r in read_csv(tmp_path / "r1.csv")}
    assert all(r["id"] == ids[r["row"]] for r in rows)
    outcomes = {int(r["row"]) - 2: r["outcome"] for r in rows}
    assert {i for i, o in outcomes.items() if o == "updated"} == set(edits)
    assert sum(o == "unchanged" for o in outcomes.values()) == 20
    assert "10 updated" in again.stderr or "updated" in again.stderr
    changed = {int(r["row"]) - 2: r["changes"] for r in rows if r["outcome"] == "updated"}
    assert "status" in changed[0] and ("deliveryURL" in changed[3] or "representations" in changed[3])
    key = "status" if api == "dps" else "xdm:status"
    assert offers["weekly 000"]["body"][key] == "draft" and offers["weekly 001"]["body"][key] == "approved"


def test_a_default_rerun_of_the_same_file_creates_nothing(tmp_path: Path) -> None:
    """The default (--on-existing skip): importing the same file twice creates no second offer; the rows
    say the offer exists with the same content, and the run exits 0. A changed row is skipped too and
    says which fields differ and how to update it."""
    source = offers_csv(tmp_path / "o.csv", 12)
    with EmulatorServer(EmulatorConfig()) as emu:
        args = [*emulator_args(emu), "--rate", "200"]
        assert run_cli("import", str(source), *args, "--results", str(tmp_path / "r1.csv")).returncode == 0
        again = run_cli("import", str(source), *args, "--results", str(tmp_path / "r2.csv"))
        edited = run_cli("import", str(offers_csv(tmp_path / "e.csv", 12, edits={4: {"status": "draft"}})), *args,
                         "--results", str(tmp_path / "r3.csv"))
        assert emu.stats()["sandboxes"]["prod"]["offers"] == 12 and emu.stats()["creates_seen"] == 12
    assert again.returncode == 0, again.stderr
    assert "12 offer names already in sandbox 'prod'" in again.stderr and "12 skipped" in again.stderr
    rows = read_csv(tmp_path / "r2.csv")
    assert all(r["outcome"] == "skipped" and r["error"] == "exists already, same content: not sent" for r in rows)
    changed = read_csv(tmp_path / "r3.csv")[4]
    assert changed["outcome"] == "skipped" and "other content (status)" in changed["error"]
    assert "--on-existing update" in changed["error"] and edited.returncode == 0


def test_fail_and_ambiguous_names_touch_nothing(tmp_path: Path) -> None:
    """--on-existing fail: rows whose offer exists fail, saying so (exit 1). --on-existing update with two
    offers of one name in the sandbox: that row fails as ambiguous and neither offer changes."""
    source = offers_csv(tmp_path / "o.csv", 3)
    with EmulatorServer(EmulatorConfig()) as emu:
        args = [*emulator_args(emu), "--rate", "200"]
        assert run_cli("import", str(source), *args, "--results", str(tmp_path / "r1.csv")).returncode == 0
        refused = run_cli("import", str(source), *args, "--on-existing", "fail", "--results", str(tmp_path / "r2.csv"))
        body = stored(emu)["weekly 001"]["body"]
        admin(emu, "/__emulator/offers", {"body": {**body, "status": "draft"}})  # a second "weekly 001"
        before = admin(emu, "/__emulator/offers")
        edited = offers_csv(tmp_path / "e.csv", 3, edits={1: {"description": "new text"}})
        ambiguous = run_cli("import", str(edited), *args, "--on-existing", "update", "--results", str(tmp_path / "r3.csv"))
        after = admin(emu, "/__emulator/offers")
    assert refused.returncode == 1
    assert all(r["outcome"] == "failed" and "exists already" in r["error"] for r in read_csv(tmp_path / "r2.csv"))
    assert ambiguous.returncode == 1
    row = read_csv(tmp_path / "r3.csv")[1]
    assert row["outcome"] == "failed" and row["error"].startswith("ambiguous: 2 offers named 'weekly 001'")
    assert [o["body"] for o in before] == [o["body"] for o in after]


def test_a_stale_etag_is_read_again_once_then_the_update_succeeds(tmp_path: Path) -> None:
    """xcore checks If-Match: an update from a stale read gets 409, reads the offer again and applies the
    patch to what is there now (one extra GET, two PATCHes); a second conflict fails the row."""
    source = offers_csv(tmp_path / "o.csv", 2, "xcore")
    with EmulatorServer(EmulatorConfig()) as emu:
        cfg = config(emu, tmp_path, source, target=Target(api="xcore", base_url=emu.url, ims_url=emu.url))
        assert run_cli("import", str(source), *emulator_args(emu), "--api", "xcore",
                       "--results", str(tmp_path / "r.csv")).returncode == 0
        edited = offers_csv(tmp_path / "e.csv", 2, "xcore", {0: {"delivery_url": "https://cdn.example.com/n.png"},
                                                              1: {"status": "draft"}})
        cfg = config(emu, tmp_path, edited, target=Target(api="xcore", base_url=emu.url, ims_url=emu.url))
        loaded = load(cfg)
        jobs = list(with_payloads(prepare(loaded.rows(), loaded.cmap, loaded.plan, loaded.ctx), "xcore"))

        async def go() -> list[Any]:
            api = ApiConfig(cfg.target, CREDS, RateLimit(100), RetryPolicy(base=0.01, timeout=5))
            async with open_library(api) as lib:
                sender = Sender(lib, RateLimiter(api.rate), api.retry)
                out = []
                for i, prepared in enumerate(jobs):
                    [found] = await sender.named(prepared.name)
                    for _ in range(i + 1):  # someone else edits the offer after our read: 1, then 2 times
                        bump = [{"op": "replace", "path": "/_instance/xdm:status", "value": "pending"}]
                        now = await sender.read(found.id)
                        assert now is not None
                        assert (await lib.patch(found.id, bump, now.etag)).status == 200
                    if i == 1:  # and keeps editing: the re-read is stale again
                        emu.set_faults(Faults())
                        await _edit_on_every_read(emu)
                    before = dict(emu.stats()["requests"])
                    result = await sender.step(Job(prepared, sender.budget(), existing=found, before={}))
                    out.append((result, before, dict(emu.stats()["requests"])))
                return out

        (ok, *_), (conflicted, *_) = anyio.run(go)
        offers = stored(emu)
    assert ok is not None and ok.outcome == "updated" and "xdm:representations" in ok.fields["changes"]
    assert ok.fields["attempts"] == 2  # the 409, then the patch on what was re-read
    assert offers["weekly 000"]["body"].get("xdm:status") == "approved"  # the row's content won
    assert conflicted is not None and conflicted.outcome == "failed" and "twice" in conflicted.fields["error"]


async def _edit_on_every_read(emu: EmulatorServer) -> None:
    """From now on, every lookup by id of offer 'weekly 001' is followed by someone else's edit."""
    from bulkoffers.emulator.state import STATE

    app = emu._app
    assert app is not None
    store = app[STATE].store
    original = store.get

    def get(sandbox: str, flavor: str, ref: str) -> Any:
        found = original(sandbox, flavor, ref)
        if found is not None and found.name == "weekly 001":
            store.update(found, {**found.body, "xdm:status": "rejected"}, found.name, "rejected", found.client_id)
            return original(sandbox, flavor, ref)
        return found

    store.get = get  # type: ignore[method-assign]


@pytest.mark.parametrize("api", ["dps", "xcore"])
def test_rollback_after_an_update_run_restores_every_offer(tmp_path: Path, api: str) -> None:
    """A run that updated 5 offers and created 1: rollback deletes the new one and gives the 5 back the
    content they had before the run; the others are untouched. An offer changed since the run is not
    overwritten: rollback says so and fails that row."""
    with EmulatorServer(EmulatorConfig()) as emu:
        args = [*emulator_args(emu), "--api", api, "--rate", "200"]
        assert run_cli("import", str(offers_csv(tmp_path / "v1.csv", 10, api)), *args,
                       "--results", str(tmp_path / "r1.csv")).returncode == 0
        original = {n: o["body"] for n, o in stored(emu).items()}
        edits = {i: {"description": f"changed {i}", "status": "draft"} for i in range(5)}  # xcore: status only
        run = run_cli("import", str(offers_csv(tmp_path / "v2.csv", 11, api, edits)), *args, "--on-existing",
                      "update", "--results", str(tmp_path / "r2.csv"))
        assert run.returncode == 0, run.stderr
        assert sum(r["outcome"] == "updated" for r in read_csv(tmp_path / "r2.csv")) == 5
        back = run_cli("rollback", str(tmp_path / "r2.csv"), "--yes", *emulator_args(emu))
        assert back.returncode == 0, back.stderr
        assert "6 offers: 1 deleted, 0 already gone, 5 restored, 0 failed" in back.stderr
        now = {n: o["body"] for n, o in stored(emu).items()}
        assert now == original
        # an offer someone changes after an update run is left as it is
        run = run_cli("import", str(offers_csv(tmp_path / "v3.csv", 10, api, {0: {"status": "draft"}})), *args,
                      "--on-existing", "update", "--results", str(tmp_path / "r3.csv"))
        assert run.returncode == 0, run.stderr
        emu._call(_touch(emu, "weekly 000"))
        refused = run_cli("rollback", str(tmp_path / "r3.csv"), "--yes", *emulator_args(emu))
    assert refused.returncode == 1 and "0 restored, 1 failed" in refused.stderr
    report = read_csv(tmp_path / "r3.rollback.csv")
    assert report[0]["outcome"] == "failed" and "changed since the run" in report[0]["error"]


def _touch(emu: EmulatorServer, name: str) -> Any:
    async def go() -> None:
        store = emu.state.store
        [offer] = [o for o in store.scan("prod") if o.name == name]
        key = "description" if offer.flavor == "dps" else "xdm:status"
        store.update(offer, {**offer.body, key: "rejected" if offer.flavor == "xcore" else "someone else's"},
                     offer.name, offer.status, offer.client_id)

    return go


@pytest.mark.parametrize("api", ["dps", "xcore"])
def test_sigkill_during_an_update_run_then_resume_applies_every_update_once(tmp_path: Path, api: str) -> None:
    """40 updates while 15% of answers are lost after the commit, the importer killed with SIGKILL twice and
    resumed: every offer ends with the new content and each update was applied exactly once (the
    emulator's etag: 1 at create, 2 after one update), and no offer was created twice."""
    n = 40
    with EmulatorServer(EmulatorConfig()) as emu:
        args = [*emulator_args(emu), "--rate", "40", "--timeout", "2", "--retries", "10", "--settle", "1"]
        assert run_cli("import", str(offers_csv(tmp_path / "v1.csv", n, api)), *args, "--api", api,
                       "--results", str(tmp_path / "r1.csv")).returncode == 0
        emu.set_faults(Faults(drop_rate=0.15, seed=12, latency_ms=5))
        edited = offers_csv(tmp_path / "v2.csv", n, api,
                            {i: {"delivery_url": f"https://cdn.example.com/new{i}.png"} for i in range(n)})
        results = tmp_path / "r2.csv"
        proc = start("import", str(edited), *args, "--api", api, "--on-existing", "update", "--results", str(results))
        # killed when the server has applied some updates (not after a fixed pause: a slow start-up would
        # kill it before its journal began, which tests nothing)
        for applied in (10, 25):
            assert kill_when(proc, lambda: _updated(emu, api) >= applied, timeout=60), "ended before the kill"
            proc = start("resume", str(results), *args)
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            again = run_cli("retry", str(results), *args)
            assert again.returncode == 0, again.stderr
        emu.set_faults(Faults())
        offers = admin(emu, "/__emulator/offers")
        etags = {o["name"]: _etag(emu, o["id"], api) for o in offers}
        stats = emu.stats()
    assert stats["sandboxes"]["prod"]["duplicates"] == 0 and len(offers) == n
    assert stats["faults_injected"].get("commit_then_drop", 0) > 0
    reps, comps, url = ("representations", "components", "deliveryURL") if api == "dps" else \
        ("xdm:representations", "xdm:components", "xdm:deliveryURL")
    assert all(o["body"][reps][0][comps][0][url] == f"https://cdn.example.com/new{int(o['name'][-3:])}.png"
               for o in offers)
    assert set(etags.values()) == {2}, etags
    rows = read_csv(results)
    assert len(rows) == n and {r["outcome"] for r in rows} == {"updated"}


def _updated(emu: EmulatorServer, api: str) -> int:
    """How many stored offers already carry the new delivery URL."""
    return sum("/new" in json.dumps(o["body"]) for o in admin(emu, "/__emulator/offers"))


def _etag(emu: EmulatorServer, offer_id: str, api: str) -> int:
    async def go() -> int:
        offer = emu.state.store.get("prod", api, offer_id)
        assert offer is not None
        return offer.etag

    return int(emu._call(go))


def test_dps_update_sends_a_json_patch_of_only_what_differs(tmp_path: Path) -> None:
    """The DPS update is a PATCH whose operations name only the changed fields; the offer's own fields
    (id, etag, created) and everything else stay as they were."""
    with EmulatorServer(EmulatorConfig()) as emu:
        args = [*emulator_args(emu), "--rate", "200"]
        assert run_cli("import", str(offers_csv(tmp_path / "v1.csv", 2)), *args,
                       "--results", str(tmp_path / "r1.csv")).returncode == 0
        before = stored(emu)
        edited = offers_csv(tmp_path / "v2.csv", 2, edits={1: {"delivery_url": "https://cdn.example.com/x.png"}})
        assert run_cli("import", str(edited), *args, "--on-existing", "update",
                       "--results", str(tmp_path / "r2.csv")).returncode == 0
        after = stored(emu)
    row = read_csv(tmp_path / "r2.csv")[1]
    assert row["outcome"] == "updated" and row["changes"] == "representations/0/components/0/deliveryURL"
    assert after["weekly 001"]["id"] == before["weekly 001"]["id"]
    assert after["weekly 001"]["body"]["representations"][0]["components"][0]["deliveryURL"].endswith("/x.png")
    assert after["weekly 000"] == before["weekly 000"]
    assert json.dumps(after["weekly 001"]["body"]["description"]) == json.dumps("offer 1")
    assert same_content(before["weekly 000"]["body"], after["weekly 000"]["body"], "dps")


def test_dry_run_online_says_per_row_what_an_import_would_do_and_writes_nothing(tmp_path: Path) -> None:
    """`validate --online` (and `import --dry-run` with credentials) read the sandbox and print per offer:
    create, update with the fields that would change, unchanged, skip or fail; no request writes."""
    with EmulatorServer(EmulatorConfig()) as emu:
        args = [*emulator_args(emu), "--rate", "200"]
        assert run_cli("import", str(offers_csv(tmp_path / "v1.csv", 3)), *args,
                       "--results", str(tmp_path / "r1.csv")).returncode == 0
        edited = offers_csv(tmp_path / "v2.csv", 4, edits={1: {"status": "draft"}})
        before = dict(emu.stats()["requests"])
        seen = run_cli("validate", str(edited), "--online", "--on-existing", "update", *emulator_args(emu))
        dry = run_cli("import", str(edited), "--dry-run", "--on-existing", "skip", *args)
        after = emu.stats()
    assert seen.returncode == 0, seen.stderr
    lines = seen.stdout.strip().splitlines()
    assert lines == [f"{edited}: row 2, 'weekly 000': unchanged", f"{edited}: row 3, 'weekly 001': update (status)",
                     f"{edited}: row 4, 'weekly 002': unchanged", f"{edited}: row 5, 'weekly 003': create"]
    assert "rows in sandbox 'prod': 1 create, 1 update, 2 unchanged" in seen.stderr
    assert dry.returncode == 0 and "row 3, 'weekly 001': skip: exists already with other content (status)" in dry.stdout
    assert after["creates_seen"] == 3 and after["requests"].get("create") == before.get("create")
    assert after["sandboxes"]["prod"]["offers"] == 3
