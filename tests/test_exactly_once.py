"""Exactly once across crashes: SIGKILL at random points, resume, retry, rollback, skip-existing.
Real subprocesses against the real emulator, with lost answers switched on."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bulkoffers.emulator import EmulatorConfig, EmulatorServer, Faults

from .conftest import ROOT, cli_env, emulator_args, run_cli
from .test_import import read_csv, write_offers

CHAOS = Faults(drop_rate=0.08, reset_rate=0.04, error_rate=0.03, latency_ms=5, jitter_ms=20, seed=5)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bulkoffers", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT)


def kill_and_resume(source: Path, results: Path, common: list[str], rng: random.Random, times: int,
                    pause: tuple[float, float]) -> int:
    """Starts an import, then up to `times` times waits a random pause, SIGKILLs it and starts `resume`
    (or the import again when it was killed before its journal began: nothing was sent). The last run
    is waited for, and a final `retry` finishes what it left failed. Returns how many kills there were."""
    kills = 0
    proc = start("import", str(source), "--results", str(results), *common)
    for _ in range(times):
        time.sleep(rng.uniform(*pause))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        journal = results.with_name(results.name + ".journal")
        if journal.exists() and journal.read_text().strip():
            proc = start("resume", str(results), *common)
        else:
            proc = start("import", str(source), "--results", str(results), "--force", *common)
    proc.communicate(timeout=120)
    if proc.returncode != 0:
        again = run_cli("retry", str(results), *common)
        assert again.returncode == 0, again.stderr
    return kills


def assert_complete(emu: EmulatorServer, results: Path, n: int) -> list[dict[str, str]]:
    """Every valid row exists exactly once at the server, and results list every row once."""
    rows = read_csv(results)
    assert sorted(int(r["row"]) for r in rows) == list(range(2, n + 2))
    assert {r["outcome"] for r in rows} == {"created"}, [r for r in rows if r["outcome"] != "created"][:3]
    stats = emu.stats()["sandboxes"]["prod"]
    assert stats["duplicate_names"] == {} and stats["offers"] == n
    assert len({r["id"] for r in rows}) == n
    return rows


def test_sigkill_at_random_points_then_resume_creates_each_offer_once(tmp_path: Path) -> None:
    """SIGKILL at random moments under lost answers, resets and 5xx, then resume until done: every offer
    exists once and results list every row once."""
    n = 80
    rng = random.Random(1234)
    source = write_offers(tmp_path / "offers.csv", n)
    results = tmp_path / "r.csv"
    with EmulatorServer(EmulatorConfig(faults=CHAOS)) as emu:
        common = [*emulator_args(emu), "--rate", "60", "--timeout", "2", "--retries", "10", "--settle", "1"]
        kills = kill_and_resume(source, results, common, rng, times=6, pause=(0.15, 0.6))
        assert kills >= 3
        assert_complete(emu, results, n)
        assert emu.stats()["faults_injected"].get("commit_then_drop", 0) > 0


def test_import_resume_flag_finds_the_last_run(tmp_path: Path) -> None:
    """import FILE --resume finds the newest run of FILE by its results file and journal and finishes it."""
    source = write_offers(tmp_path / "offers.csv", 30)
    with EmulatorServer(EmulatorConfig()) as emu:
        proc = start("import", str(source), *emulator_args(emu), "--rate", "15", "--settle", "1")
        deadline = time.monotonic() + 30
        while emu.stats()["creates_seen"] < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out = run_cli("import", str(source), "--resume", *emulator_args(emu), "--rate", "100", "--settle", "1")
        assert out.returncode == 0, out.stderr
        assert "continuing the run of" in out.stderr
        [results] = list(tmp_path.glob("offers.*.results.csv"))
        assert_complete(emu, results, 30)


def test_changed_input_is_refused_unless_forced(tmp_path: Path) -> None:
    """Resume refuses an input whose SHA-256 changed since the run, naming --force; forced, only the new row
    is sent."""
    source = write_offers(tmp_path / "offers.csv", 3)
    results = tmp_path / "r.csv"
    with EmulatorServer(EmulatorConfig()) as emu:
        assert run_cli("import", str(source), "--results", str(results), *emulator_args(emu)).returncode == 0
        with source.open("a") as fh:
            fh.write("extra offer,web,offerPlacementWeb01,imagelink,https://x.com/e.png\n")
        refused = run_cli("resume", str(results), *emulator_args(emu))
        assert refused.returncode == 2 and "changed since the run started" in refused.stderr
        assert "--force" in refused.stderr
        forced = run_cli("resume", str(results), *emulator_args(emu), "--force")
        assert forced.returncode == 0, forced.stderr
        assert emu.stats()["sandboxes"]["prod"]["offers"] == 4  # only the new row was sent
        assert len(read_csv(results)) == 4


def test_retry_sends_only_failed_rows_and_updates_results(tmp_path: Path) -> None:
    """retry sends only the rows that failed, and their outcomes replace the failures in RESULTS."""
    source = write_offers(tmp_path / "offers.csv", 20)
    results = tmp_path / "r.csv"
    with EmulatorServer(EmulatorConfig(faults=Faults(error_rate=0.5, seed=2, scope="create"))) as emu:
        first = run_cli("import", str(source), "--results", str(results), *emulator_args(emu), "--rate", "100",
                        "--retries", "1")
        assert first.returncode == 1
        before = read_csv(results)
        failed = [r for r in before if r["outcome"] == "failed"]
        assert failed and len(failed) < 20
        emu.set_faults(Faults())
        sent_before = emu.stats()["creates_seen"]
        again = run_cli("retry", str(results), *emulator_args(emu), "--rate", "100")
        assert again.returncode == 0, again.stderr
        assert emu.stats()["creates_seen"] - sent_before == len(failed)
        after = read_csv(results)
        assert len(after) == 20 and {r["outcome"] for r in after} == {"created"}
        kept = {r["row"]: r["id"] for r in before if r["outcome"] == "created"}
        assert all(r["id"] == kept[r["row"]] for r in after if r["row"] in kept)
        assert_complete(emu, results, 20)


def test_retry_from_a_fixed_failures_file(tmp_path: Path) -> None:
    """retry --from takes the fixed failures file, matched by source_row, and puts the outcome on the run's
    own row."""
    source = tmp_path / "offers.csv"
    source.write_text("name,channel,placement,component_type,delivery_url\n"
                      "Good,web,offerPlacementWeb01,imagelink,https://x.com/a.png\n"
                      "Broken,tv,offerPlacementWeb01,imagelink,https://x.com/b.png\n"
                      "Also good,web,offerPlacementWeb01,imagelink,https://x.com/c.png\n", encoding="utf-8")
    results, failures = tmp_path / "r.csv", tmp_path / "f.csv"
    with EmulatorServer(EmulatorConfig()) as emu:
        first = run_cli("import", str(source), "--results", str(results), "--failures", str(failures),
                        *emulator_args(emu))
        assert first.returncode == 1
        [bad] = read_csv(failures)
        assert bad["source_row"] == "3" and bad["Channel" if "Channel" in bad else "channel"] == "tv"
        text = failures.read_text().replace(",tv,", ",web,")
        failures.write_text(text)
        again = run_cli("retry", str(results), "--from", str(failures), *emulator_args(emu))
        assert again.returncode == 0, again.stderr
        rows = read_csv(results)
        assert [(r["row"], r["name"], r["outcome"]) for r in rows] == [
            ("2", "Good", "created"), ("3", "Broken", "created"), ("4", "Also good", "created")]
        assert emu.stats()["sandboxes"]["prod"]["offers"] == 3


def test_skip_existing_makes_a_rerun_harmless(tmp_path: Path) -> None:
    """Re-running a spreadsheet with --skip-existing lists every page and skips each row with the existing
    id: nothing new is created."""
    source = write_offers(tmp_path / "offers.csv", 12)
    with EmulatorServer(EmulatorConfig(page_limit=5)) as emu:  # small pages: the listing must follow next links
        assert run_cli("import", str(source), "--results", str(tmp_path / "1.csv"), *emulator_args(emu),
                       "--rate", "100").returncode == 0
        again = run_cli("import", str(source), "--results", str(tmp_path / "2.csv"), *emulator_args(emu),
                        "--skip-existing", "--rate", "100")
        assert again.returncode == 0, again.stderr
        rows = read_csv(tmp_path / "2.csv")
        assert {r["outcome"] for r in rows} == {"skipped"} and all(r["id"] for r in rows)
        first = {r["row"]: r["id"] for r in read_csv(tmp_path / "1.csv")}
        assert all(first[r["row"]] == r["id"] for r in rows)
        assert emu.stats()["sandboxes"]["prod"]["offers"] == 12 and "12 offer names already" in again.stderr


@pytest.mark.parametrize("api", ["dps", "xcore"])
def test_rollback_deletes_what_the_run_created(tmp_path: Path, api: str) -> None:
    """rollback (DPS and xcore) asks first, then deletes exactly the offers the run created and leaves other
    offers alone."""
    source = tmp_path / "offers.csv"
    placement = "xcore:offer-placement:1250c9f1a2b3c4d6" if api == "xcore" else "offerPlacementWeb01"
    source.write_text("name,channel,placement,component_type,delivery_url\n" + "".join(
        f"o{i},web,{placement},imagelink,https://x.com/{i}.png\n" for i in range(6)), encoding="utf-8")
    results = tmp_path / "r.csv"
    with EmulatorServer(EmulatorConfig(faults=Faults(error_rate=0.2, seed=4))) as emu:
        assert run_cli("import", str(source), "--api", api, "--results", str(results), *emulator_args(emu),
                       "--rate", "100", "--retries", "10").returncode == 0
        other = run_cli("import", str(write_offers(tmp_path / "keep.csv", 2, "keep")), "--api", "dps",
                        "--results", str(tmp_path / "k.csv"), *emulator_args(emu), "--rate", "100", "--retries", "10")
        assert other.returncode == 0
        no = run_cli("rollback", str(results), *emulator_args(emu))
        assert no.returncode == 2 and "--yes" in no.stderr  # no terminal to confirm on
        out = run_cli("rollback", str(results), "--yes", *emulator_args(emu), "--rate", "50", "--retries", "10")
        assert out.returncode == 0, out.stderr
        assert "6 offers: 6 deleted, 0 already gone, 0 failed" in out.stderr
        report = read_csv(tmp_path / "r.rollback.csv")
        assert [r["outcome"] for r in report] == ["deleted"] * 6
        names = {o for o in emu.stats()["sandboxes"]["prod"]["duplicate_names"]}
        assert names == set() and emu.stats()["sandboxes"]["prod"]["offers"] == 2  # the other run's stay
        again = run_cli("rollback", str(results), "--yes", "--out", str(tmp_path / "again.csv"), *emulator_args(emu))
        assert again.returncode == 0 and "0 deleted, 6 already gone" in again.stderr


def kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], timeout: float = 30) -> bool:
    """SIGKILLs `proc` once the server shows `ready()` (progress, not a fixed pause: a slow machine's
    start-up must not decide where the kill lands), or when `timeout` passed. Returns whether it killed
    a running process (False: it had ended on its own)."""
    deadline = time.monotonic() + timeout
    while not ready() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return alive


def test_sigkill_during_retry_then_retry_again(tmp_path: Path) -> None:
    """A retry killed while answers are being lost, then retried again: every offer once."""
    n = 40
    source = write_offers(tmp_path / "offers.csv", n)
    results = tmp_path / "r.csv"
    with EmulatorServer(EmulatorConfig(faults=Faults(error_rate=0.6, seed=9, scope="create"))) as emu:
        common = [*emulator_args(emu), "--rate", "20", "--timeout", "2", "--settle", "1"]
        first = run_cli("import", str(source), "--results", str(results), *common, "--retries", "1")
        assert first.returncode == 1
        failed = sum(r["outcome"] == "failed" for r in read_csv(results))
        assert failed > 10
        emu.set_faults(Faults(drop_rate=0.2, seed=3, scope="create"))
        base = emu.stats()["creates_seen"]
        proc = start("retry", str(results), *common, "--retries", "10")
        kill_when(proc, lambda: emu.stats()["creates_seen"] >= base + 5)
        again = run_cli("retry", str(results), *common, "--retries", "10")
        assert again.returncode == 0, again.stderr
        assert_complete(emu, results, n)


def test_sigkill_during_rollback_then_rollback_again(tmp_path: Path) -> None:
    """A rollback killed half-way and run again (with --force for its report) deletes the rest and nothing
    else."""
    n = 30
    source = write_offers(tmp_path / "offers.csv", n)
    results = tmp_path / "r.csv"
    with EmulatorServer(EmulatorConfig()) as emu:
        assert run_cli("import", str(source), "--results", str(results), *emulator_args(emu),
                       "--rate", "100").returncode == 0
        keep = run_cli("import", str(write_offers(tmp_path / "keep.csv", 3, "keep")), "--results",
                       str(tmp_path / "k.csv"), *emulator_args(emu), "--rate", "100")
        assert keep.returncode == 0
        proc = start("rollback", str(results), "--yes", *emulator_args(emu), "--rate", "10")
        kill_when(proc, lambda: emu.stats()["sandboxes"]["prod"]["offers"] <= n + 3 - 5)
        left = emu.stats()["sandboxes"]["prod"]["offers"]
        assert 3 < left < n + 3  # killed part way
        again = run_cli("rollback", str(results), "--yes", "--force", *emulator_args(emu), "--rate", "100")
        assert again.returncode == 0, again.stderr
        assert f"{n} offers: {left - 3} deleted, {n + 3 - left} already gone, 0 failed" in again.stderr
        offers = emu.stats()["sandboxes"]["prod"]["offers"]
        assert offers == 3  # only the other run's offers remain
