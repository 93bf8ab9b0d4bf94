"""The record of a run, in one place: the journal written beside the results (a write-ahead log of
every send and every outcome), its header (what the run was: input and the input's SHA-256, target,
settings; never credentials), and what resume, retry and rollback read back from it, including the
`ImportConfig` a continued run uses.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from .config import ApiConfig, Credentials, ImportConfig, MappingSpec, ReadOptions, Target
from .errors import ConfigError
from .redact import Redactor
from .results import RowResult

JOURNAL_VERSION = 2  # 2 adds times ("t"), ticks and content digests; version 1 journals still load
TICK_SECONDS = 1.0  # a live run writes a tick this often: a killed run sent nothing later than its last
# line plus this margin (a tick's interval, and time for the flush), which bounds its rows' last send
DEATH_MARGIN = TICK_SECONDS + 0.5


def journal_path(results: Path) -> Path:
    return results.with_name(results.name + ".journal")


class Journal:
    """Write-ahead log beside the results: `send` before every POST, `done` after every row's outcome,
    a `tick` every second while the run lives. One JSON line per event, each with its wall-clock time
    `t`. A `send` line is flushed to the OS before its POSTs go out, taking every earlier line with it;
    `done` lines wait for the next flush. So `kill -9` at any instant loses at most some `done` lines of
    rows already sent, and those rows count as in doubt: resume looks them up instead of sending them
    again, and not before the settle window after their last send, which the last line bounds. A torn
    last line is ignored by `load_journal`. Only ids, names, outcomes and content digests go in, never
    credentials (error texts are redacted all the same)."""

    def __init__(self, path: Path, redact: Redactor | None = None) -> None:
        self.path = path
        self._redact = redact or Redactor()
        self._fh: IO[bytes] = path.open("ab")  # orjson writes UTF-8 bytes

    def _write(self, entry: dict[str, Any], flush: bool) -> None:
        entry["t"] = int(time.time() * 1000) / 1000  # to the millisecond (round() costs more, per row)
        self._fh.write(orjson.dumps(entry) + b"\n")
        if flush:
            self._fh.flush()

    def start(self, header: dict[str, Any]) -> None:
        self._write({"type": "run", "version": JOURNAL_VERSION, **header}, flush=True)

    def sending(self, rows: list[int], attempt: int, name: str | None = None,
                update: tuple[str, dict[str, Any]] | None = None) -> None:
        """Rows about to be sent. First attempts of creates are announced a slice at a time, as the
        engine hands the slice to the workers (one flush per slice, not one per POST); a kill then
        leaves at most the rows announced and not finished in doubt, and resume looks those up before
        sending them. `update` is (offer id, its content before the update): rollback restores it."""
        entry: dict[str, Any] = {"type": "send", "rows": rows, "attempt": attempt}
        if name is not None:
            entry["name"] = name
        if update is not None:
            entry["update"], entry["before"] = update
        self._write(entry, flush=True)

    def tick(self) -> None:
        """Proof of life, once a second: a kill leaves the time of death known to within DEATH_MARGIN."""
        self._write({"type": "tick"}, flush=True)

    def done(self, result: RowResult, in_doubt: bool = False, sent: float | None = None,
             digest: str | None = None) -> None:
        """A row's outcome. `sent` (wall time) is its last send when the answer was lost (in doubt);
        `digest` the content a created offer holds (payloads.content_digest), for `verify`."""
        entry: dict[str, Any] = {"type": "done", "row": result.row, "offer_key": result.offer_key,
                                 "name": result.name, "outcome": result.outcome, "id": result.id,
                                 "at_id": result.at_id, "http_status": result.http_status,
                                 "attempts": result.attempts, "error": self._redact(result.error),
                                 "elapsed_ms": result.elapsed_ms}
        if result.changes:
            entry["changes"] = result.changes
        if in_doubt:
            entry["in_doubt"] = True
            if sent is not None:
                entry["sent"] = round(sent, 3)
        if digest is not None:
            entry["digest"] = digest
        if result.needs_rerun:
            entry["cells"] = result.cells  # so retry and the failures file need no second read of the input
        self._write(entry, flush=False)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


@dataclass
class JournalState:
    """What a journal says about an earlier run: its header, each row's last outcome, the rows in doubt."""

    header: dict[str, Any]
    done: dict[int, dict[str, Any]]  # row → its last `done` entry
    in_flight: set[int]  # rows sent whose outcome was never written: the answer may have been lost
    last_write: float = 0.0  # wall time of the journal's last line (a killed run died within DEATH_MARGIN)
    first_send: float = 0.0  # wall time of the first send of the run (verify: what the run may have made)
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)  # row → {"id", "before"}: first update sent

    def result(self, row: int) -> RowResult:
        e = self.done[row]
        return RowResult(row, e["offer_key"], e["name"], e["outcome"], e["id"], e["at_id"], e["http_status"],
                         e["attempts"], e["error"], e["elapsed_ms"], e.get("changes", ""), cells=e.get("cells") or {})

    def in_doubt(self, row: int) -> bool:
        return row in self.in_flight or bool(self.done.get(row, {}).get("in_doubt"))

    def last_sent(self, row: int) -> float:
        """The latest wall time the row may have been sent at: the send recorded with a lost answer, or
        for a row whose answer never got written, the end of the run (its last line + DEATH_MARGIN)."""
        entry = self.done.get(row)
        if entry is not None and entry.get("in_doubt") and row not in self.in_flight:
            return float(entry.get("sent") or entry.get("t") or 0.0)
        return self.last_write + DEATH_MARGIN if self.last_write else 0.0

    @property
    def created(self) -> list[RowResult]:
        return [self.result(r) for r, e in sorted(self.done.items()) if e["outcome"] == "created"]

    @property
    def updated(self) -> list[tuple[RowResult, dict[str, Any], str | None]]:
        """Rows whose existing offer the run updated: (result, the offer's content before, the digest of
        the content the run wrote)."""
        return [(self.result(r), self.updates[r]["before"], e.get("digest")) for r, e in sorted(self.done.items())
                if e["outcome"] == "updated" and r in self.updates]


def load_run(results: Path) -> JournalState:
    """The record of the run that wrote `results` (its journal beside it)."""
    return load_journal(journal_path(results))


def load_journal(path: Path) -> JournalState:
    if not path.exists():
        results = path.with_name(path.name.removesuffix(".journal"))
        given = "resume, retry, verify and rollback take the results CSV a run wrote: the one its 'results: PATH' " \
                "line names"
        if results.suffix.lower() != ".csv":
            raise ConfigError(f"{results} is not the results file of a run", hint=given)
        if not results.exists():
            raise ConfigError(f"{results}: no such file", hint=given)
        raise ConfigError(f"{path} not found: no journal for the results {results}",
                          hint="resume, retry, verify and rollback need the .journal file the run wrote beside its "
                               "results; copy it back there")
    header: dict[str, Any] | None = None
    done: dict[int, dict[str, Any]] = {}
    sent: set[int] = set()
    last_write = first_send = 0.0
    updates: dict[int, dict[str, Any]] = {}
    with path.open("rb") as fh:
        for line in fh:
            try:
                entry = orjson.loads(line)
            except ValueError:
                continue  # the line a kill interrupted
            kind = entry.get("type")
            t = entry.get("t")
            if isinstance(t, (int, float)):
                last_write = max(last_write, float(t))
                if kind == "send" and not first_send:
                    first_send = float(t)
            if kind == "run":
                header = header or entry  # the first run defines input and settings
            elif kind == "send":
                for row in entry["rows"]:
                    sent.add(row)
                    if "update" in entry and row not in updates:  # the first before is what the row had
                        updates[row] = {"id": entry["update"], "before": entry.get("before") or {}}
                    if done.get(row, {}).get("outcome") != "created":
                        done.pop(row, None)  # sent again (retry): in doubt until its new outcome
            elif kind == "done":
                done[int(entry["row"])] = entry
                sent.discard(int(entry["row"]))
    if header is None:
        raise ConfigError(f"{path} is not a bulkoffers journal (no run header)")
    if header.get("version") not in (1, JOURNAL_VERSION):
        raise ConfigError(f"{path} was written by another bulkoffers version ({header.get('version')})")
    return JournalState(header, done, sent, last_write, first_send, updates)




def run_header(cfg: ImportConfig, container_id: str | None, mode: str, input_sha256: str,
               headers: list[str] | None) -> dict[str, Any]:
    """What a later resume, retry or rollback needs to know about this run. No credentials.
    `headers` are the input's columns, written by the first run only (a retry --from reads a
    failures file whose columns differ)."""
    header: dict[str, Any] = {
        "mode": mode, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "input": str(cfg.input.resolve()), "input_sha256": input_sha256,
        "results": str(cfg.results.resolve()), "failures": str(cfg.failures.resolve()),
        "api": cfg.target.api, "base_url": cfg.target.base_url, "ims_url": cfg.target.ims_url,
        "container_id": container_id, "sandbox": cfg.credentials.sandbox, "org_id": cfg.credentials.org_id,
        "sheet": cfg.read.sheet, "delimiter": cfg.read.delimiter, "default_status": cfg.default_status,
        "on_existing": cfg.on_existing, "preflight": cfg.preflight,
        "mapping": {"columns": list(map(list, cfg.mapping.columns)), "defaults": list(map(list, cfg.mapping.defaults))},
    }
    if headers is not None:
        header["headers"] = headers
    return header


def check_input(state: JournalState, digest: str | None, force: bool) -> None:
    """A resume on a changed input could skip or double rows: refuse unless forced. `digest` comes from
    the pass that read the input anyway (reader.Table.digest)."""
    if digest != state.header.get("input_sha256") and not force:
        raise ConfigError(f"{state.header['input']} changed since the run started (its SHA-256 differs)",
                          hint="restore the original, or pass --force if rows were only appended or fixed")


def target_of(state: JournalState, base_url: str | None = None, ims_url: str | None = None) -> Target:
    """Where the run sent its offers (its API flavor, base URLs and xcore container)."""
    h = state.header
    return Target(api=h["api"], base_url=base_url or h["base_url"], ims_url=ims_url or h["ims_url"],
                  container_id=h.get("container_id"))


def api_config_of(state: JournalState, credentials: Credentials, *, base_url: str | None = None,
                  ims_url: str | None = None, **sending: Any) -> ApiConfig:
    """How to reach the run's sandbox again (rollback, verify): its target and sandbox; credentials and
    `sending` (rate, retry, concurrency, settle) from the command line."""
    return ApiConfig(target_of(state, base_url, ims_url), dataclasses.replace(credentials, sandbox=state.header["sandbox"]),
                     **sending)


def continued_config(state: JournalState, credentials: Credentials, *, results: Path | None = None,
                     fixed: Path | None = None, base_url: str | None = None, ims_url: str | None = None,
                     **overrides: Any) -> ImportConfig:
    """The ImportConfig of a run that continues `state` (resume, retry): input, sandbox, API, reading
    and mapping as the run had them; credentials and `overrides` (how to send: rate, retry,
    concurrency, force, ...) from the command line. `results`: the results file the user named (the
    journal beside it was read), written again there even when the run wrote it elsewhere, with its
    failures file beside it. `fixed` is a failures file to read instead of the input (retry --from);
    its rows carry their row in the original input."""
    h = state.header
    source = Path(h["input"])
    if fixed is None and not source.exists():
        raise ConfigError(f"the run's input {source} is gone", hint="put it back where it was")
    failures = Path(h["failures"])
    if results is None or results.resolve() == Path(h["results"]).resolve():
        results = Path(h["results"])
    else:  # the files moved since the run: they follow the results file named
        failures = failures_beside(results)
    if fixed is not None and fixed.resolve() == failures.resolve():
        failures = fixed.with_name(f"{fixed.stem}.{time.strftime('%Y%m%d-%H%M%S')}.failures.csv")
    return ImportConfig(
        input=fixed or source, results=results, failures=failures,
        target=target_of(state, base_url, ims_url),
        credentials=dataclasses.replace(credentials, sandbox=h["sandbox"]),
        read=ReadOptions() if fixed is not None else ReadOptions(sheet=h.get("sheet"), delimiter=h.get("delimiter")),
        mapping=MappingSpec(tuple(map(tuple, h["mapping"]["columns"])), tuple(map(tuple, h["mapping"]["defaults"]))),
        default_status=h["default_status"],
        **{"on_existing": h.get("on_existing", "create"), "preflight": h.get("preflight", False), **overrides})


def beside(results: Path, ending: str) -> Path:
    """A file that goes with a results file: NAME.results.csv (or NAME.csv) → NAME<ending>, else
    RESULTS<ending>, in the same folder."""
    name = results.name
    for suffix in (".results.csv", ".csv"):
        if name.endswith(suffix):
            return results.with_name(name.removesuffix(suffix) + ending)
    return results.with_name(name + ending)


def failures_beside(results: Path) -> Path:
    """The failures file of a results file: NAME.results.csv → NAME.failures.csv."""
    return beside(results, ".failures.csv")


def latest_results(input_path: Path) -> Path:
    """`import FILE --resume`: the newest results file of FILE that has a journal beside it."""
    runs = sorted((p for p in input_path.parent.glob(f"{input_path.stem}.*.results.csv") if journal_path(p).exists()),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise ConfigError(f"no earlier run of {input_path} to resume (no {input_path.stem}.*.results.csv with "
                          "a journal)", hint="name it with --results, or run without --resume")
    return runs[-1]
