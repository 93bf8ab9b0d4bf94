"""What every `bulkoffers` command shares: the exit-code table, the one boundary where library errors
become an `Error: ...` line (`run_guarded`), the option groups, and the set-up of credentials, the
in-process emulator and the settings a run records. Commands live in `cli` (a run and what continues
it) and `cli_tools` (export, copy, template, the emulator)."""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from .config import (DEFAULT_MAX_RATE, DEFAULT_SCOPES, DEFAULT_SETTLE, PRODUCTION_BASE_URL, PRODUCTION_IMS_URL,
                     ApiConfig, Credentials, ImportConfig, OnExisting, RateLimit, ReadOptions, RetryPolicy,
                     Target)
from .console import CONSOLE, REDACT, plural
from .errors import BulkOffersError, ConfigError, FatalApiError, InputError, Interrupted


# Exit codes, one table for every command.
EXIT_OK = 0  # every row created (or skipped as already existing)
EXIT_ROWS_FAILED = 1  # some rows failed, were invalid or were not attempted: see the failures file
EXIT_USAGE = 2  # bad flags, mapping file, credentials or output paths
EXIT_INPUT = 3  # the input file cannot be read
EXIT_INTERRUPTED = 130  # Ctrl-C

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def fail(message: str, code: int) -> NoReturn:
    CONSOLE.error(message)
    CONSOLE.finish(code)
    sys.exit(code)


def exit_code(exc: BulkOffersError) -> int:
    """The exit code table, by error type (see errors.py for the tree)."""
    if isinstance(exc, InputError):
        return EXIT_INPUT
    if isinstance(exc, (ConfigError, FatalApiError)):
        return EXIT_USAGE
    if isinstance(exc, Interrupted):
        return EXIT_INTERRUPTED
    return EXIT_ROWS_FAILED


def run_guarded(fn: Callable[[], int]) -> NoReturn:
    """The one boundary where library errors become an exit code and a single line. An error that
    ended a run carries the run's summary: it is shown first, so every row is accounted for."""
    try:
        code = fn()
    except BulkOffersError as exc:
        if exc.summary is not None:
            CONSOLE.summary(exc.summary)
        if isinstance(exc, Interrupted) and exc.summary is not None:
            if exc.hint:
                CONSOLE.note(exc.hint)
            CONSOLE.set(error="interrupted")
            CONSOLE.finish(EXIT_INTERRUPTED)
            sys.exit(EXIT_INTERRUPTED)  # the summary and the progress notes said it
        fail(str(exc), exit_code(exc))
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    CONSOLE.finish(code)
    sys.exit(code)


def ask(question: str, what: str) -> None:
    """A yes/no question on the terminal; without one (stdin closed or piped) the user must say --yes."""
    stdin = sys.stdin
    if stdin is None or stdin.closed or not stdin.isatty():
        raise ConfigError(f"{what} and needs confirmation, but there is no terminal to ask on", hint="pass --yes")
    click.confirm(question, abort=True, err=True)


def parse_sheet(sheet: str | None) -> str | int | None:
    if sheet is None:
        return None
    return int(sheet) if sheet.isdigit() else sheet


def default_output(input_path: Path, kind: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return input_path.with_name(f"{input_path.stem}.{stamp}.{kind}.csv")


# ---- shared options --------------------------------------------------------------------------------

def input_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--api", type=click.Choice(["dps", "xcore"]), default="dps", show_default=True,
                     help="Offer Library API flavor: dps (current) or xcore (legacy repository API)."),
        click.option("--sheet", metavar="NAME|INDEX", help="Excel/ODS sheet by name or 0-based index [first sheet]."),
        click.option("--delimiter", metavar="CHAR", help="CSV delimiter [sniffed: , ; tab or |]."),
        click.option("--mapping", "mapping_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="TOML file: [columns] maps your headers to fields, [defaults] sets constant values."),
        click.option("--status", "default_status", type=click.Choice(["draft", "approved", "archived"]),
                     default="approved", show_default=True, help="Status for rows whose status cell is empty."),
        click.option("--payloads-out", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write the JSON payload of every valid offer here (JSON Lines)."),
    ]):
        fn = option(fn)
    return fn


def read_options(sheet: str | None, delimiter: str | None) -> ReadOptions:
    if delimiter is not None:
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
        if len(delimiter) != 1:
            raise ConfigError(f"--delimiter must be one character, got {delimiter!r}")
    return ReadOptions(sheet=parse_sheet(sheet), delimiter=delimiter)


def load_heavy(network: bool = True) -> None:
    """Imports pandas and the pipeline (and aiohttp when the command sends), the collector paused,
    then freezes what they made: imports create ~10^5 long-lived objects and no garbage, so
    collecting them only costs time (the collections during the imports, and one full pass of
    ~60 ms soon after)."""
    import gc

    gc.disable()
    try:
        import pandas  # noqa: F401  (the reader needs it; loaded here, not in the middle of a run)

        from . import source  # noqa: F401
        if network:
            from . import client, engine  # noqa: F401  (aiohttp: ~0.15 s that validate does without)
    finally:
        gc.freeze()
        gc.enable()


class RateParam(click.ParamType):
    """--rate: a number of requests per second, or `auto`."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | str:
        if isinstance(value, float) or str(value).strip().lower() == "auto":
            return value if isinstance(value, float) else "auto"
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number of requests per second nor auto", param, ctx)


def auth_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Credentials: flags > BULKOFFERS_* environment > .env > config file (see credentials.py)."""
    for option in reversed([
        click.option("--client-id", help="Adobe client id, also sent as x-api-key [env BULKOFFERS_CLIENT_ID]."),
        click.option("--client-secret", help="Client secret for IMS OAuth server-to-server "
                                             "[env BULKOFFERS_CLIENT_SECRET]."),
        click.option("--org-id", help="IMS organization id, ...@AdobeOrg [env BULKOFFERS_ORG_ID]."),
        click.option("--scopes", help=f"Comma-separated IMS scopes [env BULKOFFERS_SCOPES; "
                                      f"default {','.join(DEFAULT_SCOPES)}]."),
        click.option("--access-token", help="A ready access token instead of client credentials "
                                            "[env BULKOFFERS_ACCESS_TOKEN]."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="bulkoffers.toml ([credentials] table) or the credential JSON downloaded from Adobe "
                          "Developer Console [env BULKOFFERS_CONFIG; ./bulkoffers.toml if present]."),
    ]):
        fn = option(fn)
    return fn


def send_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--rate", type=RateParam(), default="10", show_default=True,
                     help="Requests per second, evenly spaced; never more. `auto`: start low and find the pace the "
                          "API takes, just under where it answers 429 (up to --max-rate)."),
        click.option("--max-rate", type=float,
                     help=f"With --rate auto: the pace it never goes above [default: {DEFAULT_MAX_RATE:g}]."),
        click.option("--concurrency", type=int, help="Requests in flight at most [from the rate: 1.5 x rate + 1]."),
        click.option("--retries", type=int, default=6, show_default=True, help="Attempts per offer, first one included."),
        click.option("--deadline", type=float, default=300.0, show_default=True,
                     help="Seconds one offer may spend in retries."),
        click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds one request may take."),
        click.option("--settle", type=float, default=DEFAULT_SETTLE, show_default=True,
                     help="Seconds after a lost answer before a lookup that finds nothing counts as proof that "
                          "the offer is absent (list and search may lag behind writes)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
        click.option("--verbose", "-v", is_flag=True,
                     help="Log every request (method, URL, status, time) to stderr; secrets are redacted."),
    ]):
        fn = option(fn)
    return fn


def continue_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """For commands that continue a run: where the run went, unless it moved."""
    for option in reversed([
        click.option("--base-url", help="Platform API base URL [the run's]."),
        click.option("--ims-url", help="IMS base URL [the run's]."),
        click.option("--force", is_flag=True, help="Go on even though the run's input file changed."),
    ]):
        fn = option(fn)
    return fn


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "json", is_flag=True,
                        help="At the end, print one JSON object on stdout (counts, files, exit code, elapsed, rate, "
                             "settings; see README); per-row lines go to stderr.")(fn)


def target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Where the offers go: the sandbox and API endpoints, or the built-in emulator."""
    for option in reversed([
        click.option("--sandbox", help="Sandbox name [env BULKOFFERS_SANDBOX; default prod]."),
        click.option("--container-id", metavar="ID", help="xcore container id [looked up for the sandbox]."),
        click.option("--emulator", is_flag=True, help="Start the built-in emulator in-process and use it "
                                                      "(a rehearsal: no credentials, nothing leaves this machine)."),
        click.option("--base-url", default=PRODUCTION_BASE_URL, show_default=True, help="Platform API base URL."),
        click.option("--ims-url", default=PRODUCTION_IMS_URL, show_default=True, help="IMS base URL."),
    ]):
        fn = option(fn)
    return fn


def existing_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--on-existing", type=click.Choice(["create", "skip", "update", "fail"]), default="skip",
                     show_default=True,
                     help="What a row does whose offer name exists in the sandbox (every page is listed first): "
                          "create a second offer, skip it, update it to the row's content, or fail the row."),
        click.option("--skip-existing", is_flag=True, help="The same as --on-existing skip (the default)."),
    ]):
        fn = option(fn)
    return fn


def connect(opts: dict[str, Any], target: Target, state: Path | None = None) -> tuple[Target, Credentials, Any]:
    """The target and credentials a command uses, and the in-process emulator it started (--emulator),
    which the caller stops. `state`: the file the emulator keeps its offers in (else memory)."""
    if not opts.get("emulator"):
        return target, make_credentials(opts), None
    creds, server = start_emulator(opts, opts.get("sandbox") or "prod", state)
    return dataclasses.replace(target, base_url=server.url, ims_url=server.url), creds, server


def start_emulator(opts: dict[str, Any], sandbox: str, state: Path | None) -> tuple[Credentials, Any]:
    load_heavy()
    from .emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID, EmulatorConfig, EmulatorServer

    setup_logging(bool(opts.get("verbose")))
    server = EmulatorServer(EmulatorConfig(db=str(state)) if state is not None else EmulatorConfig()).start()
    kept = (f"its offers are kept in {state} for resume, retry, verify and rollback with --emulator" if state
            else "its offers vanish when the command ends")
    CONSOLE.note(f"emulator: {server.url} (in-process; {kept})")
    return Credentials(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID, sandbox), server


def fresh_emulator_state(opts: dict[str, Any], results: Path) -> Path | None:
    """With --emulator, the file a new run's emulator keeps its offers in (beside RESULTS), emptied: a
    new run starts on an empty emulator, and an old run's file goes only with --force or when its
    results are gone. None without --emulator."""
    if not opts.get("emulator"):
        return None
    state = emulator_state(results)
    if state.exists() and (opts["force"] or not results.exists()):
        state.unlink()
    return state


def stop_emulator(server: Any, state: Path | None = None, results: Path | None = None) -> None:
    """Stops the in-process emulator a command started (None: it started none). A run refused before
    it began (a sheet that is missing, a row too long) wrote no `results`, and leaves no emulator
    `state` file beside its input either."""
    if server is None:
        return
    server.stop()
    if state is not None and results is not None and not results.exists():
        state.unlink(missing_ok=True)


def emulator_state(results: Path) -> Path:
    """Where `import --emulator` keeps the offers of the run that writes RESULTS: beside it, so that
    resume, retry, verify and rollback with --emulator rehearse on them too."""
    from .runrecord import beside

    return beside(results, ".emulator.sqlite")


def continued_target(opts: dict[str, Any], results: Path, header: dict[str, Any]
                     ) -> tuple[dict[str, str | None], Credentials, Any]:
    """For a command that continues a run (resume, retry, verify, rollback): the endpoints to use
    instead of the run's (None: the run's), the credentials, and the emulator it started (--emulator:
    again on the offers the run kept beside RESULTS), which the caller stops."""
    if not opts.get("emulator"):
        creds = make_credentials(opts, header["sandbox"], header.get("org_id"))
        return {"base_url": opts.get("base_url"), "ims_url": opts.get("ims_url")}, creds, None
    state = emulator_state(results)
    if not state.is_file():
        raise ConfigError(f"the run that wrote {results} did not use --emulator (there is no {state})",
                          hint="leave out --emulator and give the credentials of the run's sandbox")
    creds, server = start_emulator(opts, header["sandbox"], state)
    return {"base_url": server.url, "ims_url": server.url}, creds, server


@contextlib.contextmanager
def resume_hint(results: Path, opts: dict[str, Any]) -> Iterator[None]:
    """An interrupted run says the exact command that finishes it."""
    try:
        yield
    except Interrupted as exc:
        command = ["bulkoffers", "resume", str(results)] + (["--emulator"] if opts.get("emulator") else []) + \
            (["--config", str(opts["config_path"])] if opts.get("config_path") else [])
        given = [f"--{f.replace('_', '-')}" for f in ("client_id", "client_secret", "org_id", "access_token", "scopes")
                 if opts.get(f)]  # (never repeated here: a secret must not land in the terminal's scrollback)
        also = f" (with {', '.join(given)} as before)" if given else ""
        exc.hint = f"to finish the run: {shlex.join(command)}{also}"
        CONSOLE.set(resume=shlex.join(command))
        raise


def emulator_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--emulator", is_flag=True, help="The run used --emulator: start it again on the offers it "
                                                        "kept beside RESULTS (NAME.emulator.sqlite).")(fn)


def resolve_credentials(opts: dict[str, Any]) -> Any:
    """Every credential source, flags first (see credentials.py); the Resolved also says where from."""
    from .credentials import resolve_flags

    return resolve_flags(opts, opts.get("config_path"))


def make_credentials(opts: dict[str, Any], sandbox: str | None = None, org_id: str | None = None,
                     resolved: Any = None) -> Credentials:
    """Checked credentials; `sandbox`/`org_id` are the run's when continuing one."""
    from .credentials import checked

    resolved = resolved or resolve_credentials(opts)
    REDACT.add(*resolved.credentials.secrets)
    setup_logging(bool(opts.get("verbose")))
    return checked(resolved, sandbox, org_id)


def setup_logging(verbose: bool) -> None:
    import logging

    logger = logging.getLogger("bulkoffers")
    if verbose and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        handler.addFilter(REDACT.log_filter())
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)


def send_settings(opts: dict[str, Any]) -> dict[str, Any]:
    if opts["rate"] == "auto":
        rate = RateLimit(DEFAULT_MAX_RATE if opts["max_rate"] is None else opts["max_rate"], auto=True)
    else:
        if opts["max_rate"] is not None:
            CONSOLE.warn(f"--max-rate is for --rate auto; ignored at the fixed --rate {opts['rate']:g}")
        rate = RateLimit(opts["rate"])
    return {"rate": rate, "concurrency": opts["concurrency"], "settle": opts["settle"],
            "retry": RetryPolicy(attempts=opts["retries"], deadline=opts["deadline"], timeout=opts["timeout"])}


def report(summary: Any) -> int:
    CONSOLE.summary(summary)
    return EXIT_OK if summary.all_done else EXIT_ROWS_FAILED


def record_settings(cfg: Any, **more: Any) -> None:
    """What the run used, for --json (an ImportConfig or an ApiConfig; never credentials)."""
    rate: Any = f"auto (max {cfg.rate.rate:g})" if cfg.rate.auto else cfg.rate.rate
    settings: dict[str, Any] = {"api": cfg.target.api, "sandbox": cfg.credentials.sandbox,
                                "base_url": cfg.target.base_url, "rate": rate, "concurrency": cfg.workers,
                                "retries": cfg.retry.attempts, "deadline": cfg.retry.deadline,
                                "timeout": cfg.retry.timeout, "settle": cfg.settle}
    for name in ("on_existing", "preflight", "input", "default_status"):
        if hasattr(cfg, name):
            settings[name] = getattr(cfg, name)
    CONSOLE.settings(**settings, **more)


def can_connect(opts: dict[str, Any]) -> bool:
    """Whether a dry run can read the sandbox: --emulator, or complete credentials. Without, it says it
    stays offline."""
    if opts.get("emulator"):
        return True
    try:
        resolve_credentials(opts).credentials.check()
    except ConfigError as exc:
        CONSOLE.note(f"note: dry run offline, the sandbox is not read ({exc})")
        return False
    return True


def on_existing(opts: dict[str, Any]) -> OnExisting:
    """--on-existing, with --skip-existing as its old spelling."""
    if opts.get("skip_existing") and opts.get("on_existing") not in (None, "skip"):
        raise ConfigError(f"--skip-existing and --on-existing {opts['on_existing']} contradict each other",
                          hint="keep one of them")
    return "skip" if opts.get("skip_existing") else opts.get("on_existing") or "skip"


def verify_run(cfg: ImportConfig) -> int:
    """import/copy --verify: the run just made, checked as `bulkoffers verify` would (no --fix)."""
    from .runrecord import load_run

    return report_verification(load_run(cfg.results), cfg.api_config, cfg.results, None, False, True)


def report_verification(state: Any, api: ApiConfig, results: Path, out: Path | None, fix: bool, yes: bool) -> int:
    from .verify import verify

    out = out or results.with_name(results.name.removesuffix(".csv") + ".verify.csv")

    def confirm(copies: int) -> bool:
        if not yes:
            ask(f"Delete {copies} extra copies that the run of {state.header['input']} made in sandbox "
                f"{state.header['sandbox']!r}?", "verify --fix deletes offers")
        return True

    report = verify(state, api, out, fix=fix, confirm=confirm, note=CONSOLE.note)
    for check in report.checks:
        if check.status != "present" or check.action:
            copies = f" (copies: {' '.join(check.copies)})" if check.copies else ""
            action = f"; {check.action}" if check.action else ""
            CONSOLE.line(f"{results}: row {check.row}, {check.name!r}: {check.status}, id {check.id}{copies}: "
                         f"{check.detail}{action}")
    counts = report.counts
    parts = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("present", "missing", "duplicated", "changed"))
    fixed = f"; {report.deleted} extra copies deleted" if fix else ""
    CONSOLE.note(f"verified {plural(len(report.checks), 'created row')}: {parts}{fixed}; details: {out}")
    verified = {k: counts.get(k, 0) for k in ("present", "missing", "duplicated", "changed")}
    CONSOLE.set(verified=verified, deleted=report.deleted, report=str(out))
    if CONSOLE.json is not None and CONSOLE.json["command"] == "verify":
        CONSOLE.set(counts=verified, rows=len(report.checks))
    return EXIT_OK if report.ok else EXIT_ROWS_FAILED
