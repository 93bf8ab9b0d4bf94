"""Exactly once when list and search lag behind writes (the emulator's --index-lag), and `verify`.
Real subprocesses against the real emulator; duplicates counted by the emulator."""

from __future__ import annotations

import json
import random
import urllib.request
from pathlib import Path
from typing import Any

from bulkoffers.emulator import DEFAULT_CLIENT_ID, EmulatorConfig, EmulatorServer, Faults

from .conftest import emulator_args, run_cli
from .test_exactly_once import assert_complete, kill_and_resume
from .test_import import read_csv, write_offers


def admin(emu: EmulatorServer, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(emu.url + path, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # loopback only
        return json.loads(resp.read())


def test_lost_answers_with_a_lagging_index_make_no_duplicates(tmp_path: Path) -> None:
    """200 rows, 10% of answers lost after the commit, list/search 3 s behind: with the settle window no
    offer is created twice and every row is recorded created with its id. The same run without a window
    (--settle 0: one lookup right after the lost answer, taken as proof) does make duplicates, so the
    setup really is the trap the window guards against."""
    source = write_offers(tmp_path / "offers.csv", 200)
    faults = Faults(drop_rate=0.1, index_lag=3.0, seed=21)
    with EmulatorServer(EmulatorConfig(faults=faults)) as emu:
        out = run_cli("import", str(source), *emulator_args(emu), "--rate", "200", "--settle", "4",
                      "--timeout", "3", "--results", str(tmp_path / "r.csv"), "--sandbox", "prod")
        assert out.returncode == 0, out.stderr
        assert "200 created" in out.stderr
        rows = assert_complete(emu, tmp_path / "r.csv", 200)
        stored = {o["id"] for o in admin(emu, "/__emulator/offers?sandbox=prod")}
        assert {r["id"] for r in rows} == stored
        assert emu.stats()["faults_injected"]["commit_then_drop"] >= 10
        naive = run_cli("import", str(source), *emulator_args(emu), "--rate", "200", "--settle", "0",
                        "--timeout", "3", "--results", str(tmp_path / "naive.csv"), "--sandbox", "naive")
        assert naive.returncode == 0, naive.stderr
        assert emu.stats()["sandboxes"]["naive"]["duplicates"] > 0


def test_sigkill_with_a_lagging_index_then_resume_creates_each_offer_once(tmp_path: Path) -> None:
    """SIGKILL at random points while answers are lost and the index lags 3 s; each resume honours the
    settle window of rows the killed run may have sent (their last send is bounded by the journal's
    ticks), so nothing is sent twice."""
    n = 80
    rng = random.Random(77)
    source = write_offers(tmp_path / "offers.csv", n)
    results = tmp_path / "r.csv"
    faults = Faults(drop_rate=0.1, reset_rate=0.03, index_lag=3.0, latency_ms=5, jitter_ms=20, seed=8)
    with EmulatorServer(EmulatorConfig(faults=faults)) as emu:
        common = [*emulator_args(emu), "--rate", "60", "--timeout", "2", "--retries", "10", "--settle", "4"]
        kills = kill_and_resume(source, results, common, rng, times=5, pause=(0.3, 0.9))
        assert kills >= 3
        assert_complete(emu, results, n)


def test_verify_finds_a_planted_duplicate_and_fix_removes_only_the_runs_copies(tmp_path: Path) -> None:
    """`verify` reads each created offer by id and looks its name up: a copy with the same name and
    content planted behind the tool's back (by the run's client, during the run) is reported duplicated,
    exit 1; `verify --fix --yes` deletes it and nothing else: not an offer with the same name and other
    content, not an identical one made long before the run, not one made by another client. Then
    `verify` passes (exit 0) with the journal and results unchanged."""
    source = write_offers(tmp_path / "offers.csv", 12)
    results = tmp_path / "r.csv"
    with EmulatorServer(EmulatorConfig()) as emu:
        args = [*emulator_args(emu), "--rate", "100", "--settle", "0.5"]
        assert run_cli("import", str(source), "--results", str(results), *args).returncode == 0
        rows = read_csv(results)
        body = next(o["body"] for o in admin(emu, "/__emulator/offers") if o["name"] == "offer 00003")
        planted = admin(emu, "/__emulator/offers", {"body": body})  # the run's client, just now: the run's copy
        other_content = admin(emu, "/__emulator/offers", {"body": {**body, "status": "draft"}})
        old = admin(emu, "/__emulator/offers", {"body": body, "created": "2020-01-01T00:00:00.000000Z"})
        stranger = admin(emu, "/__emulator/offers", {"body": body, "client_id": "someone-else"})
        before = {o["id"] for o in admin(emu, "/__emulator/offers")}
        journal_before = (tmp_path / "r.csv.journal").read_bytes()

        checked = run_cli("verify", str(results), *args)
        assert checked.returncode == 1, checked.stderr
        assert "row 5, 'offer 00003': duplicated" in checked.stdout and planted["id"] in checked.stdout
        assert "11 present, 0 missing, 1 duplicated, 0 changed" in checked.stderr
        report = {r["row"]: r for r in read_csv(tmp_path / "r.verify.csv")}
        assert report["5"]["verified"] == "duplicated" and planted["id"] in report["5"]["copies"].split()

        fixed = run_cli("verify", str(results), "--fix", "--yes", *args)
        assert fixed.returncode == 1, fixed.stderr  # the old and the stranger's copies are not the run's to delete
        after = {o["id"] for o in admin(emu, "/__emulator/offers")}
        assert before - after == {planted["id"]}
        assert {other_content["id"], old["id"], stranger["id"]} <= after
        assert "1 extra copies deleted" in fixed.stderr

        admin(emu, "/__emulator/reset", {})  # a clean sandbox: only the run's offers and its copy
        assert run_cli("import", str(source), "--results", str(tmp_path / "r2.csv"), *args).returncode == 0
        body = next(o["body"] for o in admin(emu, "/__emulator/offers") if o["name"] == "offer 00007")
        copy = admin(emu, "/__emulator/offers", {"body": body})
        assert run_cli("verify", str(tmp_path / "r2.csv"), *args).returncode == 1
        assert run_cli("verify", str(tmp_path / "r2.csv"), "--fix", "--yes", "--out", str(tmp_path / "v.csv"),
                       *args).returncode == 0
        assert copy["id"] not in {o["id"] for o in admin(emu, "/__emulator/offers")}
        passed = run_cli("verify", str(tmp_path / "r2.csv"), *args)
        assert passed.returncode == 0 and "12 present, 0 missing, 0 duplicated" in passed.stderr
        assert (tmp_path / "r.csv.journal").read_bytes() == journal_before
        assert read_csv(results) == rows


def test_verify_reports_missing_and_changed_offers(tmp_path: Path) -> None:
    """An offer deleted since the run is missing; one edited since is changed; both exit 1."""
    source = write_offers(tmp_path / "offers.csv", 3)
    results = tmp_path / "r.csv"
    with EmulatorServer(EmulatorConfig()) as emu:
        args = [*emulator_args(emu), "--rate", "100", "--settle", "0"]
        assert run_cli("import", str(source), "--results", str(results), *args).returncode == 0
        rows = read_csv(results)
        emu._call(_delete(emu, rows[0]["id"]))
        emu._call(_edit(emu, rows[1]["id"]))
        out = run_cli("verify", str(results), *args)
    assert out.returncode == 1
    assert f"row 2, 'offer 00000': missing, id {rows[0]['id']}" in out.stdout
    assert "row 3, 'offer 00001': changed" in out.stdout
    assert "1 present, 1 missing, 0 duplicated, 1 changed" in out.stderr


def _delete(emu: EmulatorServer, offer_id: str) -> Any:
    async def go() -> None:
        store = emu.state.store
        offer = store.get("prod", "dps", offer_id)
        assert offer is not None
        store.delete(offer)

    return go


def _edit(emu: EmulatorServer, offer_id: str) -> Any:
    async def go() -> None:
        store = emu.state.store
        offer = store.get("prod", "dps", offer_id)
        assert offer is not None
        store.update(offer, {**offer.body, "status": "draft"}, offer.name, "draft", DEFAULT_CLIENT_ID)

    return go


def test_a_lookup_that_keeps_failing_leaves_the_row_may_exist(tmp_path: Path) -> None:
    """Every create is stored but its answer lost, and every lookup fails: the rows are failed "may exist"
    (in doubt in the journal, for retry), the summary says so and the exit code is 1, never "all created"."""
    source = write_offers(tmp_path / "offers.csv", 3)
    results = tmp_path / "r.csv"
    faults = Faults(drop_rate=1.0, error_rate=1.0, scope="list", seed=3)
    with EmulatorServer(EmulatorConfig(faults=faults)) as emu:
        out = run_cli("import", str(source), *emulator_args(emu), "--rate", "100", "--retries", "2",
                      "--settle", "0.5", "--results", str(results), "--on-existing", "create", "--no-preflight")
        assert emu.stats()["sandboxes"]["prod"]["offers"] == 3
    assert out.returncode == 1, out.stderr
    assert "3 failed (3 may exist" in out.stderr and "0 created" in out.stderr
    rows = read_csv(results)
    assert all(r["outcome"] == "failed" and "it may exist" in r["error"] for r in rows)
    journal = [json.loads(line) for line in (tmp_path / "r.csv.journal").read_text().splitlines()]
    assert all(e.get("in_doubt") and e.get("sent") for e in journal if e["type"] == "done")
