"""End to end against the real emulator on loopback: the library entry point and the real command."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from bulkoffers.client import OfferLibrary
from bulkoffers.config import Credentials, ImportConfig, RateLimit, RetryPolicy, Target
from bulkoffers.emulator import (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID, EmulatorConfig,
                                 EmulatorServer, Faults)
from bulkoffers.engine import import_file
from bulkoffers.results import RESULT_COLUMNS

from .conftest import FIXTURES, ROOT, cli_env, emulator_args, run_cli

CREDS = Credentials(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID)


def config(emu: EmulatorServer, tmp: Path, source: Path, **over: Any) -> ImportConfig:
    base: dict[str, Any] = dict(
        input=source, results=tmp / "results.csv", failures=tmp / "failures.csv",
        target=Target(base_url=emu.url, ims_url=emu.url), credentials=CREDS, rate=RateLimit(200),
        retry=RetryPolicy(base=0.05, cap=0.5, timeout=5))
    base.update(over)
    return ImportConfig(**base)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_offers(path: Path, n: int, prefix: str = "offer") -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "channel", "placement", "component_type", "delivery_url"])
        for i in range(n):
            w.writerow([f"{prefix} {i:05d}", "web", "offerPlacementWeb01", "imagelink",
                        f"https://cdn.example.com/{i}.png"])
    return path


def assert_exactly_once(emu: EmulatorServer, results: list[dict[str, str]], sandbox: str = "prod") -> None:
    """Every created row's id exists once on the server; no name was created twice."""
    stats = emu.stats()["sandboxes"].get(sandbox, {"offers": 0, "duplicate_names": {}})
    assert stats["duplicate_names"] == {}
    created_ids = {r["id"] for r in results if r["outcome"] == "created"}
    assert stats["offers"] == len(created_ids)


@pytest.mark.parametrize("name", ["offers.xlsx", "offers.xlsm", "offers.xls", "offers.csv", "offers.tsv", "offers_pipe.txt",
                                  "offers_bom_semicolon.csv", "offers.ods", "offers_cp1252.csv"])
def test_every_fixture_format_imports(emulator: EmulatorServer, tmp_path: Path, name: str) -> None:
    """Every fixture format (CSV, TSV, TXT, XLSX, XLSM, XLS, ODS, BOM, cp1252) imports completely, once,
    results in row order."""
    summary = import_file(config(emulator, tmp_path, FIXTURES / name))
    results = read_csv(tmp_path / "results.csv")
    assert list(results[0]) == list(RESULT_COLUMNS)
    rows = [int(r["row"]) for r in results]
    assert rows == sorted(rows) and len(rows) == len(set(rows)) == summary.rows
    assert {r["outcome"] for r in results} == {"created"} and summary.all_done
    assert_exactly_once(emulator, results)
    assert not (tmp_path / "failures.csv").exists()
    offers = {o["name"]: o for o in json.loads(_admin(emulator, "/__emulator/offers"))}
    if name != "offers_cp1252.csv":
        assert len(offers) == 11
        assert offers["NA"]["body"]["representations"][0]["components"][0]["content"] == "null"
        four = offers["Fallback offer 04"]["body"]
        assert [r["placement"] for r in four["representations"]] == ["offerPlacementWeb01", "offerPlacementMail01"]
        # rows of one offer share its id
        ids = {r["id"] for r in results if r["offer_key"] == "004"}
        assert len(ids) == 1 and ids <= {o["id"] for o in offers.values()}
    else:
        assert offers["Café crème offer"]["body"]["description"] == "Prix spécial à 5 €"


def _admin(emu: EmulatorServer, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(emu.url + path, timeout=10) as resp:  # loopback only
        return resp.read().decode()


def test_xcore_end_to_end_with_container_lookup(emulator: EmulatorServer, tmp_path: Path) -> None:
    """An xcore import looks the container up and records instanceId and @id for each row."""
    out = run_cli("import", str(FIXTURES / "xcore.csv"), "--api", "xcore", *emulator_args(emulator),
                  "--results", str(tmp_path / "r.csv"), "--rate", "100")
    assert out.returncode == 0, out.stderr
    results = read_csv(tmp_path / "r.csv")
    assert len(results) == 5 and all(r["at_id"].startswith("xcore:fallback-offer:") for r in results)
    assert all(r["id"] != r["at_id"] for r in results)
    offers = json.loads(_admin(emulator, "/__emulator/offers"))
    assert {o["flavor"] for o in offers} == {"xcore"} and len(offers) == 5
    assert "5 created" in out.stderr


def test_invalid_rows_never_reach_the_api_and_failures_feed_back(emulator: EmulatorServer, tmp_path: Path) -> None:
    """Invalid rows are never sent; results name each row's problem and the failures file holds exactly
    those rows."""
    out = run_cli("import", str(FIXTURES / "invalid.csv"), *emulator_args(emulator), "--rate", "100",
                  "--results", str(tmp_path / "r.csv"), "--failures", str(tmp_path / "f.csv"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert emulator.stats()["creates_seen"] == 2
    results = read_csv(tmp_path / "r.csv")
    assert [r["outcome"] for r in results].count("invalid") == 8
    bad_date = next(r for r in results if r["row"] == "3")
    assert bad_date["error"].startswith("End Date: '2021-13-01' is not a date")
    failures = read_csv(tmp_path / "f.csv")
    assert [f["offer_key"] for f in failures] == ["B1", "C1", "D1", "E1", "F1", "G1", "H1", "I1"]
    assert list(failures[0])[-1] == "error" and failures[0]["Name"] == "Bad end date"
    # the user fixes failures.csv and imports it as it is (its error column is ignored)
    fixes = {"B1": ("End Date", "2026-12-31"), "C1": ("Name", "Now named"), "D1": ("Status", "draft"),
             "E1": ("End Date", "2026-06-01"), "F1": ("Delivery URL", "https://cdn.example.com/f.png"),
             "G1": ("Name", "Good offer two"), "H1": ("Channel", "web"), "I1": ("Priority", "3")}
    for f in failures:
        col, value = fixes[f["offer_key"]]
        f[col] = value
    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(failures[0]))
        w.writeheader()
        w.writerows(failures)
    again = run_cli("import", str(fixed), *emulator_args(emulator), "--rate", "100",
                    "--results", str(tmp_path / "r2.csv"), "--failures", str(tmp_path / "f2.csv"))
    assert again.returncode == 0, again.stderr
    assert "not used" not in again.stderr  # the error column is known, not an unknown column
    assert emulator.stats()["sandboxes"]["prod"]["offers"] == 10
    assert not (tmp_path / "f2.csv").exists()


def test_retries_through_429_and_server_errors_create_each_offer_once(tmp_path: Path) -> None:
    """Through 429s and random 5xx, retries create every offer exactly once."""
    faults = Faults(error_rate=0.25, rate_limit=12, retry_after=False, seed=3)
    with EmulatorServer(EmulatorConfig(faults=faults)) as emu:
        source = write_offers(tmp_path / "o.csv", 40)
        summary = import_file(config(emu, tmp_path, source, rate=RateLimit(30),
                                     retry=RetryPolicy(attempts=12, base=0.05, cap=1.0, timeout=5)))
        results = read_csv(tmp_path / "results.csv")
        stats = emu.stats()
        assert_exactly_once(emu, results)
    assert summary.created == 40, [r for r in results if r["outcome"] != "created"][:3]
    assert stats["faults_injected"].get("429", 0) > 0 and stats["faults_injected"].get("500", 0) + \
        stats["faults_injected"].get("502", 0) + stats["faults_injected"].get("503", 0) > 0
    assert max(int(r["attempts"]) for r in results) > 1


def test_lost_answers_are_looked_up_not_sent_twice(tmp_path: Path) -> None:
    """Lost answers (commit-then-drop, resets, slow answers) are looked up before any resend: every offer
    once, with the id found."""
    faults = Faults(drop_rate=0.3, reset_rate=0.1, slow_rate=0.05, slow_seconds=1.5, seed=11)
    with EmulatorServer(EmulatorConfig(faults=faults)) as emu:
        source = write_offers(tmp_path / "o.csv", 40)
        summary = import_file(config(emu, tmp_path, source, rate=RateLimit(100), settle=1.0,
                                     retry=RetryPolicy(attempts=10, base=0.05, cap=0.3, timeout=0.8)))
        results = read_csv(tmp_path / "results.csv")
        stats = emu.stats()
        stored = {o["id"] for o in json.loads(_admin(emu, "/__emulator/offers"))}
    assert stats["faults_injected"]["commit_then_drop"] > 0
    assert summary.created == 40, [r for r in results if r["outcome"] != "created"][:3]
    assert stats["sandboxes"]["prod"]["offers"] == 40 and stats["sandboxes"]["prod"]["duplicate_names"] == {}
    # rows whose answer was lost carry the id found by the lookup
    assert {r["id"] for r in results} == stored


def test_rate_20_never_exceeds_20_creates_in_any_second(emulator: EmulatorServer, tmp_path: Path) -> None:
    """--rate 20: the emulator never sees more than 20 creates in any 1-second window."""
    source = write_offers(tmp_path / "o.csv", 50)
    out = run_cli("import", str(source), *emulator_args(emulator), "--rate", "20",
                  "--results", str(tmp_path / "r.csv"))
    assert out.returncode == 0, out.stderr
    stats = emulator.stats()
    assert stats["creates_seen"] == 50 and stats["max_creates_per_second"] <= 20


def test_429_slows_every_worker(tmp_path: Path) -> None:
    """A 429 slows the shared pace for every worker: far fewer 429s than per-worker backoff would provoke."""
    with EmulatorServer(EmulatorConfig(faults=Faults(rate_limit=10, retry_after=True))) as emu:
        source = write_offers(tmp_path / "o.csv", 30)
        summary = import_file(config(emu, tmp_path, source, rate=RateLimit(40), concurrency=8,
                                     retry=RetryPolicy(attempts=20, base=0.05, cap=2.0, timeout=5)))
        stats = emu.stats()
    assert summary.created == 30
    # one shared slow-down: far fewer 429s than a per-worker backoff would provoke
    assert 0 < stats["faults_injected"]["429"] < 30


def test_rate_auto_finds_a_limit_it_was_not_told(tmp_path: Path) -> None:
    """--rate auto against an emulator that answers 429 beyond 15 requests/s (no Retry-After, nothing
    tells the client the limit): every row is created once, 429s stay a small share, and the summary
    and --json report a pace found just under the limit, to pass as --rate next time."""
    with EmulatorServer(EmulatorConfig(faults=Faults(rate_limit=15, retry_after=False))) as emu:
        source = write_offers(tmp_path / "o.csv", 200)
        out = run_cli("import", str(source), *emulator_args(emu), "--rate", "auto", "--max-rate", "60",
                      "--results", str(tmp_path / "r.csv"), "--json")
        stats = emu.stats()
        results = read_csv(tmp_path / "r.csv")
        assert_exactly_once(emu, results)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["counts"]["created"] == 200 and report["settings"]["rate"] == "auto (max 60)"
    assert 0.6 * 15 <= report["rate_found"] <= 15, report
    assert f"(next time: --rate {report['rate_found']:g})" in out.stderr
    requests = sum(stats["statuses"].values())
    assert 0 < stats["faults_injected"]["429"] <= 0.15 * requests, stats


def test_ctrl_c_stops_cleanly_and_failures_finish_the_job(emulator: EmulatorServer, tmp_path: Path) -> None:
    """Ctrl-C: no traceback, exit 130, every row in results, the last line the exact command that finishes
    the run (credentials named, never repeated), and the failures file imports the rest."""
    source = write_offers(tmp_path / "o.csv", 60)
    results, failures = tmp_path / "r.csv", tmp_path / "f.csv"
    proc = subprocess.Popen([sys.executable, "-m", "bulkoffers", "import", str(source), *emulator_args(emulator),
                             "--rate", "10", "--results", str(results), "--failures", str(failures)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT)
    deadline = time.monotonic() + 30
    while emulator.stats()["creates_seen"] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "stopping" in err
    assert err.strip().splitlines()[-1] == (f"to finish the run: bulkoffers resume {results} (with --client-id, "
                                            "--client-secret, --org-id as before)")
    rows = read_csv(results)
    assert sorted(int(r["row"]) for r in rows) == list(range(2, 62))
    created = [r for r in rows if r["outcome"] == "created"]
    assert 5 <= len(created) < 60
    assert_exactly_once(emulator, rows)
    skipped = [r for r in rows if r["outcome"] == "skipped"]
    assert skipped and all(r["error"] == "not attempted: interrupted" for r in skipped)
    # the failures file holds exactly what is left; importing it completes the job
    assert len(read_csv(failures)) == 60 - len(created)
    again = run_cli("import", str(failures), *emulator_args(emulator), "--rate", "100",
                    "--results", str(tmp_path / "r2.csv"))
    assert again.returncode == 0, again.stderr
    stats = emulator.stats()["sandboxes"]["prod"]
    assert stats["offers"] == 60 and stats["duplicate_names"] == {}


def test_second_ctrl_c_aborts_requests_in_flight_and_says_so(tmp_path: Path) -> None:
    """A second Ctrl-C aborts requests in flight at once and records them as may-exist failures."""
    with EmulatorServer(EmulatorConfig(faults=Faults(slow_rate=1.0, slow_seconds=20, scope="create"))) as emu:
        source = write_offers(tmp_path / "o.csv", 40)
        proc = subprocess.Popen([sys.executable, "-m", "bulkoffers", "import", str(source), *emulator_args(emu),
                                 "--rate", "20", "--results", str(tmp_path / "r.csv")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT)
        deadline = time.monotonic() + 30
        while emu.stats()["creates_seen"] < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)  # well before the 20 s answers would come
        in_flight = emu.stats()["creates_seen"]
    assert proc.returncode == 130 and "aborting requests in flight" in err and "Traceback" not in err
    rows = read_csv(tmp_path / "r.csv")
    assert len(rows) == 40
    aborted = [r for r in rows if r["outcome"] == "failed"]
    assert len(aborted) == in_flight and all("the offer may exist" in r["error"] for r in aborted)
    assert all(r["error"] == "not attempted: interrupted" for r in rows if r["outcome"] == "skipped")


def test_403_stops_the_run_at_once(emulator: EmulatorServer, tmp_path: Path) -> None:
    """A 403 (wrong org) stops the run at once with exit 2 and the header to fix: at the listing before
    any row; with --on-existing create --no-preflight (nothing read) at the first creates, not one request per row."""
    source = write_offers(tmp_path / "o.csv", 30)
    args = emulator_args(emulator)
    args[args.index("--org-id") + 1] = "SOMEONE-ELSE@AdobeOrg"
    listed = run_cli("import", str(source), *args, "--rate", "50", "--results", str(tmp_path / "l.csv"))
    assert listed.returncode == 2
    assert "x-gw-ims-org-id: --org-id must be the organization" in listed.stderr.strip().splitlines()[-1]
    assert "create" not in emulator.stats()["requests"]
    out = run_cli("import", str(source), *args, "--rate", "50", "--concurrency", "2",
                  "--results", str(tmp_path / "r.csv"), "--on-existing", "create", "--no-preflight")
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: the API refused the credentials: HTTP 403")
    assert "x-gw-ims-org-id: --org-id must be the organization" in last
    assert emulator.stats()["requests"]["create"] <= 2  # not one request per row
    rows = read_csv(tmp_path / "r.csv")
    assert len(rows) == 30 and sum(r["outcome"] == "skipped" for r in rows) >= 28


def test_a_wrong_xcore_container_stops_the_run_at_once(emulator: EmulatorServer, tmp_path: Path) -> None:
    """A container id the sandbox does not have stops the run with exit 2 naming --container-id: at the
    listing, or (--on-existing create --no-preflight) at the first create, with the other rows not attempted."""
    args = ["import", str(FIXTURES / "xcore.csv"), "--api", "xcore", "--container-id", "not-ours",
            *emulator_args(emulator), "--concurrency", "1"]
    listed = run_cli(*args, "--results", str(tmp_path / "l.csv"))
    assert listed.returncode == 2, listed.stderr
    assert "HTTP 404" in listed.stderr and "--container-id" in listed.stderr.strip().splitlines()[-1]
    out = run_cli(*args, "--results", str(tmp_path / "r.csv"), "--on-existing", "create", "--no-preflight")
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "HTTP 404" in last and "check --container-id" in last
    assert emulator.stats()["requests"]["create"] == 1
    assert [r["outcome"] for r in read_csv(tmp_path / "r.csv")] == ["failed"] + ["skipped"] * 4


def test_token_refresh_on_401_and_before_expiry(tmp_path: Path) -> None:
    """The client refreshes its token once on a 401 and before the token expires."""
    with EmulatorServer(EmulatorConfig(token_ttl=1)) as emu:
        async def go() -> tuple[int, int]:
            async with OfferLibrary(Target(base_url=emu.url, ims_url=emu.url), CREDS) as lib:
                await lib.tokens.get()
                emu._call(_revoke(emu))  # the server forgets every token: the next call answers 401
                first = await lib.find_by_name("nothing")
                await anyio.sleep(1.1)  # beyond the lifetime: refreshed before sending
                second = await lib.find_by_name("nothing")
                return first.status or 0, second.status or 0

        assert anyio.run(go) == (200, 200)
        assert emu.stats()["requests"]["token"] == 3


def _revoke(emu: EmulatorServer) -> Any:
    async def revoke() -> None:
        emu.state.tokens.clear()

    return revoke


def test_a_broken_csv_line_is_refused_before_anything_is_sent(emulator: EmulatorServer, tmp_path: Path) -> None:
    """A ragged CSV line stops the run before any request, with one line naming the line and the fix."""
    source = tmp_path / "ragged.csv"
    source.write_text("name,channel,placement,component_type,delivery_url\n"
                      "A,web,p1,imagelink,https://x.com/a.png\n"
                      "B,web,p1,imagelink,https://x.com/b.png,extra,cells\n", encoding="utf-8")
    out = run_cli("import", str(source), *emulator_args(emulator), "--results", str(tmp_path / "r.csv"))
    assert out.returncode == 3 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last == (f"Error: {source}: line 3 has 7 cells but the header has 5 (remove the extra cells, "
                    "or quote values that contain the delimiter ',')")
    assert emulator.stats()["requests"] == {} and not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("args,code,needle", [
    (["import", "fixtures/nope.csv", "--emulator"], 3, "no such file"),
    (["import", "pyproject.toml", "--emulator"], 3, "unsupported file type .toml"),
    (["import", "fixtures/offers.csv", "--emulator", "--rate", "0"], 2, "--rate must be positive"),
    (["import", "fixtures/offers.csv"], 2, "missing credentials"),
    (["import", "fixtures/offers.csv", "--emulator", "--sheet", "x", "--delimiter", ";;"], 2, "one character"),
    (["import", "fixtures/offers.xlsx", "--emulator", "--sheet", "Missing"], 3, "sheet 'Missing' not found"),
    (["validate", "fixtures/offers.csv", "--mapping", "fixtures/nope.toml"], 2, "cannot read mapping file"),
    (["validate", "fixtures/custom_headers.csv"], 2, "no 'name' column"),
])
def test_usage_and_input_errors_are_one_line(args: list[str], code: int, needle: str) -> None:
    """Usage and input errors end with one Error: line and the right exit code, and leave no file beside
    the input (a refused --emulator run keeps no emulator state either)."""
    before = set(FIXTURES.iterdir())
    out = run_cli(*args)
    assert out.returncode == code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and needle in lines[-1] and "Traceback" not in out.stderr
    assert set(FIXTURES.iterdir()) == before


def test_existing_results_are_not_overwritten_without_force(emulator: EmulatorServer, tmp_path: Path) -> None:
    """An existing results file is kept unless --force, and nothing is sent; with --emulator the refusal
    comes before the emulator starts and the earlier run's emulator file is kept."""
    (tmp_path / "r.csv").write_text("precious")
    args = ["import", "fixtures/xcore.csv", *emulator_args(emulator), "--results", str(tmp_path / "r.csv")]
    out = run_cli(*args)
    assert out.returncode == 2 and "--force" in out.stderr and (tmp_path / "r.csv").read_text() == "precious"
    assert emulator.stats()["creates_seen"] == 0
    # with --emulator, refused before the emulator starts: one line, and the earlier run's offers kept
    (tmp_path / "r.emulator.sqlite").write_bytes(b"the earlier run's")
    out = run_cli("import", "fixtures/xcore.csv", "--emulator", "--results", str(tmp_path / "r.csv"))
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'r.csv'} already exists (pass --force to overwrite it, or choose another path)"]
    assert (tmp_path / "r.emulator.sqlite").read_bytes() == b"the earlier run's"


def test_emulator_flag_runs_the_demo_without_credentials(tmp_path: Path) -> None:
    """The README's demo: import --emulator creates all 13 offers without credentials."""
    out = run_cli("import", str(FIXTURES / "offers.xlsx"), "--emulator", "--results", str(tmp_path / "r.csv"),
                  "--rate", "100")
    assert out.returncode == 0, out.stderr
    assert "13 rows: 13 created, 0 failed, 0 invalid, 0 skipped" in out.stderr
    assert len(read_csv(tmp_path / "r.csv")) == 13


def test_default_results_path_is_next_to_the_input(emulator: EmulatorServer, tmp_path: Path) -> None:
    """Without --results, the results file goes beside the input with the start time in its name."""
    source = write_offers(tmp_path / "mine.csv", 2)
    out = run_cli("import", str(source), *emulator_args(emulator), "--rate", "100")
    assert out.returncode == 0, out.stderr
    [made] = list(tmp_path.glob("mine.*.results.csv"))
    assert f"results: {made}" in out.stderr


def test_dry_run_and_validate_send_nothing_and_write_payloads(emulator: EmulatorServer, tmp_path: Path) -> None:
    """`import --dry-run` validates (one line per problem), writes the payloads it would send and, having
    credentials, says per valid offer what the import would do; it writes nothing to the sandbox.
    Offline `validate` makes no request at all."""
    payloads = tmp_path / "p.jsonl"
    out = run_cli("import", str(FIXTURES / "invalid.csv"), *emulator_args(emulator), "--dry-run",
                  "--payloads-out", str(payloads))
    assert out.returncode == 1
    assert "fixtures/invalid.csv: row 3, End Date: '2021-13-01' is not a date" in out.stdout
    lines = out.stdout.strip().splitlines()
    assert len([x for x in lines if not x.endswith(": create")]) == 8
    assert [x.split(", ", 1)[1] for x in lines if x.endswith(": create")] == ["'Good offer': create",
                                                                               "'Another good one': create"]
    parsed = [json.loads(x) for x in payloads.read_text().splitlines()]
    assert [x["offer_key"] for x in parsed] == ["A1", "J1"] and parsed[0]["payload"]["name"] == "Good offer"
    assert emulator.stats()["creates_seen"] == 0 and "create" not in emulator.stats()["requests"]
    before = dict(emulator.stats()["requests"])
    ok = run_cli("validate", str(FIXTURES / "offers.xlsx"))
    assert ok.returncode == 0 and "13 rows: 13 valid in 11 offers, 0 invalid" in ok.stderr
    assert emulator.stats()["requests"] == before


def test_secrets_never_reach_outputs(emulator: EmulatorServer, tmp_path: Path) -> None:
    """The client secret appears in no output or file of a run."""
    out = run_cli("import", str(FIXTURES / "invalid.csv"), *emulator_args(emulator), "--rate", "100",
                  "--results", str(tmp_path / "r.csv"), "--failures", str(tmp_path / "f.csv"))
    assert out.returncode == 1
    texts = [out.stdout, out.stderr] + [p.read_text() for p in tmp_path.iterdir()]
    assert not any(DEFAULT_CLIENT_SECRET in t for t in texts)


@pytest.mark.parametrize("command", ["", "import", "validate", "template", "emulator"])
def test_every_command_explains_itself(command: str) -> None:
    """Every command has a --help that explains it."""
    out = run_cli(*([command] if command else []), "--help")
    assert out.returncode == 0 and "Usage: " in out.stdout and len(out.stdout) > 300


def test_template_round_trips(tmp_path: Path) -> None:
    """The template (xlsx and csv) validates as written, and is not overwritten without --force."""
    for name in ("t.xlsx", "t.csv"):
        made = run_cli("template", str(tmp_path / name))
        assert made.returncode == 0, made.stderr
        checked = run_cli("validate", str(tmp_path / name))
        assert checked.returncode == 0 and "2 rows: 2 valid in 1 offer," in checked.stderr
    again = run_cli("template", str(tmp_path / "t.csv"))
    assert again.returncode == 2 and "--force" in again.stderr
