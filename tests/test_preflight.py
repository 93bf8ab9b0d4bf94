"""The preflight: rows checked against the sandbox's placements and the offers guardrail before the
first create; --no-preflight sends them and reports the API's answers. Real emulator, real command."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from bulkoffers.emulator import EmulatorConfig, EmulatorServer, container_id

from .conftest import emulator_args, run_cli
from .test_import import read_csv

HEADER = ["name", "channel", "placement", "component_type", "delivery_url", "content"]
ROWS = [
    ["Good A", "web", "offerPlacementWeb01", "imagelink", "https://x.com/a.png", ""],
    ["Unknown placement", "web", "offerPlacementWeb99", "imagelink", "https://x.com/b.png", ""],
    ["Wrong channel", "email", "offerPlacementWeb01", "imagelink", "https://x.com/c.png", ""],
    ["Wrong type", "web", "offerPlacementWeb01", "html", "", "<p>hi</p>"],
    ["Good by name", "web", "Web banner", "imagelink", "https://x.com/e.png", ""],
    ["Good F", "email", "offerPlacementMail01", "html", "", "<p>f</p>"],
    ["One too many", "web", "offerPlacement1234", "imagelink", "https://x.com/g.png", ""],
]


def write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def fill(emu: EmulatorServer, n: int) -> None:
    """n offers already in the sandbox (stored directly: the guardrail counts them)."""
    async def go() -> None:
        store = emu.state.store
        body = {"name": "x", "status": "approved"}
        for i in range(n):
            store.insert("prod", "dps", f"existing {i}", "approved", {**body, "name": f"existing {i}"}, "someone")

    emu._call(go)


def test_rows_that_cannot_work_are_invalid_before_anything_is_sent(tmp_path: Path) -> None:
    """With 9,997 offers in the sandbox: an unknown placement, a channel that is not the placement's, a
    component type the placement does not take, and the offer that would be the 10,001st are invalid,
    each with its own line (row, column, the placements that would fit); a placement given by its name
    is resolved to its id; the valid rows are created; exit 1."""
    source = write(tmp_path / "offers.csv", ROWS)
    with EmulatorServer(EmulatorConfig()) as emu:
        fill(emu, 9_997)
        out = run_cli("import", str(source), *emulator_args(emu), "--rate", "1000", "--results",
                      str(tmp_path / "r.csv"))
        stats = emu.stats()
        named = [o for o in emu.state.store.scan("prod", "dps") if o.name == "Good by name"]
    assert out.returncode == 1, out.stderr
    rows = {r["name"]: r for r in read_csv(tmp_path / "r.csv")}
    assert [n for n, r in rows.items() if r["outcome"] == "created"] == ["Good A", "Good by name", "Good F"]
    assert rows["Unknown placement"]["error"].startswith(
        "placement: 'offerPlacementWeb99' is not a placement of sandbox 'prod'; placements for web: Web banner "
        "(offerPlacementWeb01)")
    assert rows["Wrong channel"]["error"].startswith(
        "channel: 'email' is not the channel of placement 'Web banner' (web); use web, or placements for email:")
    assert rows["Wrong type"]["error"].startswith(
        "component_type: 'html' does not fit placement 'Web banner', which takes imagelink components; "
        "placements for web taking html: Placement one (offerPlacement5678)")
    assert rows["One too many"]["outcome"] == "invalid"
    assert "sandbox holds 9,997 offers" in rows["One too many"]["error"] and "10,000" in rows["One too many"]["error"]
    assert stats["creates_seen"] == 3 and stats["sandboxes"]["prod"]["offers"] == 10_000
    assert named[0].body["representations"][0]["placement"] == "offerPlacementWeb01"


def test_no_preflight_sends_them_and_reports_the_apis_answers(tmp_path: Path) -> None:
    """The same file with --no-preflight: every row is sent; the service refuses the four (unknown
    placement, channel, type, guardrail) and the results carry its answers. A placement name cannot be
    resolved without the preflight, so that row is refused too."""
    source = write(tmp_path / "offers.csv", ROWS)
    with EmulatorServer(EmulatorConfig()) as emu:
        fill(emu, 9_998)  # the named row is refused here, so the last one is the 10,001st
        out = run_cli("import", str(source), *emulator_args(emu), "--rate", "1000", "--no-preflight",
                      "--on-existing", "create", "--concurrency", "1", "--results", str(tmp_path / "r.csv"))
        stats = emu.stats()
    assert out.returncode == 1
    rows = {r["name"]: r for r in read_csv(tmp_path / "r.csv")}
    assert stats["creates_seen"] == 7
    assert "placement 'offerPlacementWeb99' is not a placement of this sandbox" in rows["Unknown placement"]["error"]
    assert "is not the channel of placement" in rows["Wrong channel"]["error"]
    assert "does not fit placement 'offerPlacementWeb01'" in rows["Wrong type"]["error"]
    assert "placement 'Web banner' is not a placement" in rows["Good by name"]["error"]
    assert rows["One too many"]["http_status"] == "400" and "Guardrail" in rows["One too many"]["error"]
    assert {r["http_status"] for n, r in rows.items() if r["outcome"] == "failed"} == {"400"}


def test_an_ambiguous_placement_name_asks_for_the_id(tmp_path: Path) -> None:
    """Two placements with the same name: a row naming it is invalid and the line lists both ids."""
    twins: tuple[dict[str, Any], ...] = (
        {"id": "twinA", "name": "Twin", "channel": "https://ns.adobe.com/xdm/channel-types/web",
         "component_type": "imagelink"},
        {"id": "twinB", "name": "Twin", "channel": "https://ns.adobe.com/xdm/channel-types/web",
         "component_type": "imagelink"})
    source = write(tmp_path / "o.csv", [["Uses twin", "web", "Twin", "imagelink", "https://x.com/t.png", ""]])
    with EmulatorServer(EmulatorConfig(placements=twins)) as emu:
        out = run_cli("validate", str(source), "--online", *emulator_args(emu))
    assert out.returncode == 1
    assert "row 2, placement: 2 placements are named 'Twin' (twinA, twinB): give the id" in out.stdout


@pytest.mark.parametrize("api", ["dps", "xcore"])
def test_a_placement_list_that_cannot_be_read_stops_with_one_line(tmp_path: Path, api: str) -> None:
    """When the placements cannot be listed (every list request fails), the import stops before sending,
    with one line naming what to check and --no-preflight, never a traceback."""
    from bulkoffers.emulator import Faults

    source = write(tmp_path / "o.csv", [ROWS[0]] if api == "dps" else [
        ["X", "web", "xcore:offer-placement:1250c9f1a2b3c4d6", "imagelink", "https://x.com/x.png", ""]])
    with EmulatorServer(EmulatorConfig(faults=Faults(error_rate=1.0, scope="list"))) as emu:
        out = run_cli("import", str(source), *emulator_args(emu), "--api", api, "--retries", "2", "--on-existing",
                      "create", "--results", str(tmp_path / "r.csv"), "--container-id", container_id("prod"))
        creates = emu.stats()["creates_seen"]
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and "Traceback" not in out.stderr and creates == 0
    assert lines[-1].startswith("Error: cannot list the sandbox's offers: HTTP 5") and "--no-preflight" in lines[-1]


def test_a_container_lookup_that_keeps_failing_stops_with_one_line(tmp_path: Path) -> None:
    """xcore: the container lookup is retried like any request; when it keeps failing the run stops with
    one line naming --container-id."""
    from bulkoffers.emulator import Faults

    source = write(tmp_path / "o.csv", [["X", "web", "xcore:offer-placement:1250c9f1a2b3c4d6", "imagelink",
                                         "https://x.com/x.png", ""]])
    with EmulatorServer(EmulatorConfig(faults=Faults(error_rate=1.0, scope="list"))) as emu:
        out = run_cli("import", str(source), *emulator_args(emu), "--api", "xcore", "--retries", "2",
                      "--results", str(tmp_path / "r.csv"))
        seen = emu.stats()["requests"]["api"]
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 2 and last.startswith("Error: cannot look up the sandbox's decisioning container: HTTP 5")
    assert "--container-id" in last and seen == 2  # retried: two attempts


def test_json_output_parses_and_its_counts_are_the_files(tmp_path: Path) -> None:
    """--json on import, validate, resume, retry, verify and rollback: stdout holds exactly one JSON object
    whose exit code is the process's and whose counts equal what the results (or report) file says; the
    settings carry no secret."""
    import json
    from collections import Counter

    from bulkoffers.emulator import DEFAULT_CLIENT_SECRET

    source = write(tmp_path / "offers.csv", ROWS[:4])
    results = tmp_path / "r.csv"
    with EmulatorServer(EmulatorConfig()) as emu:
        args = [*emulator_args(emu), "--rate", "500", "--json"]
        runs = {
            "import": run_cli("import", str(source), *args, "--results", str(results)),
            "validate": run_cli("validate", str(source), "--online", *emulator_args(emu), "--json"),
            "resume": run_cli("resume", str(results), *args),
            "retry": run_cli("retry", str(results), *args),
            "verify": run_cli("verify", str(results), *args, "--settle", "0"),
            "rollback": run_cli("rollback", str(results), "--yes", *args),
        }
    objects = {}
    for command, out in runs.items():
        obj = json.loads(out.stdout)  # the whole of stdout is the one object
        assert obj["command"] == command and obj["exit_code"] == out.returncode
        assert obj["ok"] is (out.returncode == 0) and DEFAULT_CLIENT_SECRET not in out.stdout
        objects[command] = obj
    outcomes = Counter(r["outcome"] for r in read_csv(results))
    for command in ("import", "resume", "retry"):
        counts = objects[command]["counts"]
        assert {k: v for k, v in counts.items() if v and k not in ("not_attempted", "may_exist")} == outcomes
        assert objects[command]["results"] == str(results) and objects[command]["rows"] == 4
        assert objects[command]["settings"]["sandbox"] == "prod" and objects[command]["settings"]["rate"] == 500
    assert objects["import"]["counts"]["created"] == 1 and objects["import"]["exit_code"] == 1
    assert objects["validate"]["counts"] == {"valid": 1, "invalid": 3, "skip": 1}  # the import made it already
    verified = Counter(r["verified"] for r in read_csv(tmp_path / "r.verify.csv"))
    assert objects["verify"]["counts"] == {"present": 1, "missing": 0, "duplicated": 0, "changed": 0} == \
        {"present": verified["present"], "missing": 0, "duplicated": 0, "changed": 0}
    report = Counter(r["outcome"] for r in read_csv(tmp_path / "r.rollback.csv"))
    assert {k: v for k, v in objects["rollback"]["counts"].items() if v} == report
