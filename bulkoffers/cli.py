"""The `bulkoffers` command: a thin click shell over the library. Heavy modules load inside commands
so `bulkoffers --help` stays fast. Library errors become one `Error: ...` line here, and only here."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import shlex
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__
from .config import (DEFAULT_MAX_RATE, DEFAULT_SCOPES, DEFAULT_SETTLE, ApiConfig, OnExisting, PRODUCTION_BASE_URL, PRODUCTION_IMS_URL, Credentials, ImportConfig,
                     RateLimit, ReadOptions, RetryPolicy, Target, load_mapping)
from .errors import BulkOffersError, ConfigError, FatalApiError, InputError, Interrupted
from .console import CONSOLE, REDACT, plural

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


def _read(sheet: str | None, delimiter: str | None) -> ReadOptions:
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


# ---- commands ----------------------------------------------------------------------------------------

@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="bulkoffers")
def main() -> None:
    """Bulk-create Adobe Offer Library fallback offers from spreadsheets (CSV, TSV, TXT, XLSX, XLSM, XLS,
    ODS).

    \b
    Rehearse against the built-in emulator, no credentials needed:
      bulkoffers import offers.xlsx --emulator
    Check a file without sending anything:
      bulkoffers validate offers.xlsx
    Start from a template:
      bulkoffers template offers.xlsx
    """


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


@main.command("validate", context_settings=CONTEXT)
@click.argument("file", type=click.Path(path_type=Path))
@json_option
@input_options
@click.option("--online", is_flag=True, help="Also read the sandbox (credentials or --emulator needed) and say "
                                             "per offer what an import would do: create, update (which fields), "
                                             "unchanged, skip or fail.")
@existing_options
@target_options
@auth_options
def validate_cmd(file: Path, **opts: Any) -> None:
    """Check FILE without sending anything: one line per problem (file, row, column, fix).

    With --online, the sandbox is read too (nothing is written) and each offer gets a line saying what
    an import would do to it under --on-existing.

    Exit code 0 when every row is valid (and, online, no row would fail), 1 otherwise."""
    CONSOLE.start("validate", opts["json"])
    run_guarded(lambda: _validate(file, opts, online=opts["online"]))


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


def emulator_state(results: Path) -> Path:
    """Where `import --emulator` keeps the offers of the run that writes RESULTS: beside it, so that
    resume, retry, verify and rollback with --emulator rehearse on them too."""
    name = results.name
    for suffix in (".results.csv", ".csv"):
        if name.endswith(suffix):
            return results.with_name(name.removesuffix(suffix) + ".emulator.sqlite")
    return results.with_name(name + ".emulator.sqlite")


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


def _validate(file: Path, opts: dict[str, Any], online: bool) -> int:
    from .reader import check_readable

    check_readable(file)
    cfg = ImportConfig(input=file, results=file, failures=file, read=_read(opts["sheet"], opts["delimiter"]),
                       target=Target(api=opts["api"], base_url=opts.get("base_url") or PRODUCTION_BASE_URL,
                                     ims_url=opts.get("ims_url") or PRODUCTION_IMS_URL,
                                     container_id=opts.get("container_id")),
                       mapping=load_mapping(opts["mapping_path"]), default_status=opts["default_status"],
                       payloads_out=opts["payloads_out"], on_existing=on_existing(opts))
    load_heavy(network=online)
    from .source import validate

    sandbox, server = None, None
    try:
        if online:
            from .sandbox import snapshot

            target, creds, server = connect(opts, cfg.target)
            cfg = dataclasses.replace(cfg, target=target, credentials=creds)
            sandbox = snapshot(cfg.api_config)
        summary = validate(cfg, CONSOLE.line, sandbox)
    finally:
        if server is not None:
            server.stop()
    record_settings(cfg, online=online)
    CONSOLE.summary(summary, dry=True, sandbox=cfg.credentials.sandbox if online else None)
    if opts["payloads_out"]:
        CONSOLE.note(f"payloads: {opts['payloads_out']}")
        CONSOLE.set(payloads=str(opts["payloads_out"]))
    ok = summary.counts.get("invalid", 0) == 0 and summary.counts.get("fail", 0) == 0 and summary.rows
    return EXIT_OK if ok else EXIT_ROWS_FAILED







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


@main.command("import", context_settings=CONTEXT)
@click.argument("file", type=click.Path(path_type=Path))
@json_option
@input_options
@click.option("--dry-run", is_flag=True, help="Send nothing: validate, build payloads and, with credentials (or "
                                              "--emulator), read the sandbox and say per offer what the import "
                                              "would do (`validate --online`).")
@existing_options
@click.option("--no-preflight", "preflight", flag_value=False, default=True,
              help="Skip the check of every row against the sandbox's placements (they exist, with the row's "
                   "channel and component type; names resolved to ids) and the offers guardrail before the "
                   "first send.")
@click.option("--verify", is_flag=True, help="After the run (and the settle window), check that every created "
                                              "offer exists once with the run's content (see `bulkoffers verify`).")
@click.option("--resume", is_flag=True, help="Continue the last run of FILE (or the one --results names) "
                                              "after a crash or Ctrl-C: created rows are not sent again.")
@send_options
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Results CSV [next to FILE: NAME.<time>.results.csv]; its journal goes beside it.")
@click.option("--failures", "failures_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Failures CSV: original columns + source_row + error [beside the results: NAME.failures.csv].")
@click.option("--force", is_flag=True, help="Overwrite existing results/failures files.")
@target_options
@auth_options
def import_cmd(file: Path, **opts: Any) -> None:
    """Create one fallback offer per offer in FILE and write a results CSV.

    Rows sharing an offer_key column (or, without one, a name) become one offer with several
    representations. Invalid rows are never sent; every row ends up in the results file exactly once.
    A journal beside the results lets `--resume`, `bulkoffers retry` and `bulkoffers rollback` continue
    or undo the run.

    \b
    Exit codes: 0 all created, 1 some rows failed/invalid/not attempted, 2 usage or credentials,
    3 unreadable input, 130 interrupted.
    """
    CONSOLE.start("import", opts["json"])
    run_guarded(lambda: _import(file, opts))


def _import(file: Path, opts: dict[str, Any]) -> int:
    if opts["dry_run"]:
        return _validate(file, opts, online=can_connect(opts))
    if opts["resume"]:
        from .runrecord import latest_results

        results = opts["results_path"] or latest_results(file)
        return _continue(results, opts, redo_failed=False, override_input=file)
    # Every option, and the input's name, is checked before anything starts (the in-process emulator included).
    from .reader import check_readable

    check_readable(file)
    read, mapping, sending = _read(opts["sheet"], opts["delimiter"]), load_mapping(opts["mapping_path"]), \
        send_settings(opts)
    target = Target(api=opts["api"], base_url=opts["base_url"], ims_url=opts["ims_url"],
                    container_id=opts["container_id"])
    results = opts["results_path"] or default_output(file, "results")
    from .runrecord import failures_beside

    failures = opts["failures_path"] or failures_beside(results)
    cfg = ImportConfig(input=file, results=results, failures=failures, target=target, read=read, mapping=mapping,
                       default_status=opts["default_status"], force=opts["force"], payloads_out=opts["payloads_out"],
                       on_existing=on_existing(opts), preflight=opts["preflight"], **sending)
    load_heavy()
    from .engine import import_file
    from .progress import TqdmProgress

    state = None
    if opts["emulator"]:
        state = emulator_state(results)
        if state.exists() and (opts["force"] or not results.exists()):
            state.unlink()  # a new run starts on an empty emulator; an old results file must be --forced first
    target, creds, server = connect(opts, target, state)
    cfg = dataclasses.replace(cfg, target=target, credentials=creds)
    record_settings(cfg)
    try:
        with resume_hint(cfg.results, opts):
            summary = import_file(cfg, TqdmProgress(quiet=opts["quiet"]))
        code = report(summary)
        if opts["verify"]:
            from .runrecord import journal_path, load_journal

            record = load_journal(journal_path(cfg.results))
            code = max(code, report_verification(record, cfg.api_config, cfg.results, None, False, True))
    finally:
        if server is not None:
            server.stop()
    return code


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


def _continue(results: Path, opts: dict[str, Any], redo_failed: bool, override_input: Path | None = None,
              fixed: Path | None = None) -> int:
    """resume / retry: the journal says what the run was; flags only say how to send."""
    load_heavy()
    from .engine import import_file
    from .progress import TqdmProgress
    from .runrecord import continued_config, journal_path, load_journal

    state = load_journal(journal_path(results))
    source = Path(state.header["input"])
    if override_input is not None and override_input.resolve() != source:
        raise ConfigError(f"{results} is a run of {source}, not of {override_input}")
    sending = send_settings(opts)
    endpoints, creds, server = continued_target(opts, results, state.header)
    try:
        cfg = continued_config(state, creds, results=results, fixed=fixed, force=opts.get("force", False),
                               **endpoints, **sending,
                               **({"on_existing": "skip"} if opts.get("skip_existing") else {}))
        already = sum(1 for e in state.done.values() if e["outcome"] == "created")
        record_settings(cfg)
        CONSOLE.note(f"continuing the run of {source}: {already} rows created before, {len(state.in_flight)} in "
                     f"doubt (looked up before sending); writing {cfg.results} again from its journal "
                     f"{journal_path(results)}")
        with resume_hint(cfg.results, opts):
            summary = import_file(cfg, TqdmProgress(quiet=opts["quiet"]), prior=state, redo_failed=redo_failed,
                                  renumber=fixed is not None)
        return report(summary)
    finally:
        if server is not None:
            server.stop()


@main.command("resume", context_settings=CONTEXT)
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@click.option("--skip-existing", is_flag=True, help="Skip rows whose name exists in the sandbox, whatever "
                                                    "--on-existing the run had.")
@continue_options
@send_options
@emulator_option
@auth_options
def resume_cmd(results: Path, **opts: Any) -> None:
    """Continue the run that wrote RESULTS after a crash, kill or Ctrl-C.

    Rows already created are not sent again; rows whose answer was lost are looked up by name first
    and sent only if absent. Same input, sandbox and API as the run (from its journal); RESULTS and its
    failures file are rewritten. Exit codes as for import."""
    CONSOLE.start("resume", opts["json"])
    run_guarded(lambda: _continue(results, opts, redo_failed=False))


@main.command("retry", context_settings=CONTEXT)
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@click.option("--from", "fixed", type=click.Path(dir_okay=False, path_type=Path),
              help="Send the rows of this fixed failures file (matched by its source_row column) instead of "
                   "the run's input.")
@continue_options
@send_options
@emulator_option
@auth_options
def retry_cmd(results: Path, fixed: Path | None, **opts: Any) -> None:
    """Send the failed rows of the run that wrote RESULTS again.

    By default the rows come from the run's input; with --from, from its failures file after you fixed
    it. Rows that may exist (a lost answer) are looked up first. RESULTS is updated in place; rows that
    were created are left alone. Exit codes as for import."""
    CONSOLE.start("retry", opts["json"])
    run_guarded(lambda: _continue(results, opts, redo_failed=True, fixed=fixed))


@main.command("rollback", context_settings=CONTEXT)
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Rollback results CSV [RESULTS with .rollback.csv].")
@click.option("--force", is_flag=True, help="Overwrite the rollback results CSV (e.g. after an interrupted rollback).")
@click.option("--base-url", help="Platform API base URL [the run's].")
@click.option("--ims-url", help="IMS base URL [the run's].")
@send_options
@emulator_option
@auth_options
def rollback_cmd(results: Path, yes: bool, out: Path | None, force: bool, **opts: Any) -> None:
    """Delete the offers that the run which wrote RESULTS created.

    Asks first unless --yes. Deletes go at --rate like an import; an offer already gone counts as
    rolled back, so an interrupted rollback is simply run again (with --force for its report). Writes one line per created row to its own CSV (outcome deleted, gone or failed).
    Exit code 0 when every offer is gone, 1 otherwise."""
    CONSOLE.start("rollback", opts["json"])
    run_guarded(lambda: _rollback(results, yes, out, force, opts))


def _rollback(results: Path, yes: bool, out: Path | None, force: bool, opts: dict[str, Any]) -> int:
    from .runrecord import api_config_of, journal_path, load_journal
    from .undo import rollback

    state = load_journal(journal_path(results))
    h = state.header
    created, updated = len({r.id for r in state.created}), len({r.id for r, _, _ in state.updated})
    offers = created + updated
    if not offers:
        CONSOLE.note(f"the run of {h['input']} created and updated no offers: nothing to roll back")
        return EXIT_OK
    out = out or results.with_name(results.name.removesuffix(".csv") + ".rollback.csv")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists", hint="pass --force to overwrite it, or choose another --out")
    if not yes:
        restore = f" and restore {updated} offers it updated" if updated else ""
        ask(f"Delete {created} offers created by the run of {h['input']}{restore} in sandbox {h['sandbox']!r} "
            f"({h['api']})?", "rollback deletes offers")
    sending = send_settings(opts)
    endpoints, creds, server = continued_target(opts, results, h)
    try:
        api = api_config_of(state, creds, **endpoints, **sending)
        record_settings(api)
        summary = rollback(state, api, out)
    finally:
        if server is not None:
            server.stop()
    restored = f", {summary.restored} restored" if updated else ""
    CONSOLE.note(f"{summary.offers} offers: {summary.deleted} deleted, {summary.gone} already gone{restored}, "
                 f"{summary.failed} failed; details: {out}")
    CONSOLE.set(counts={k: getattr(summary, k) for k in ("deleted", "gone", "restored", "failed")},
                offers=summary.offers, report=str(out))
    return EXIT_OK if summary.failed == 0 else EXIT_ROWS_FAILED


@main.command("verify", context_settings=CONTEXT)
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@click.option("--fix", is_flag=True, help="Delete the extra copies the run made (same name and content, not the "
                                          "recorded id, created by the run's client since the run began).")
@click.option("--yes", "-y", is_flag=True, help="With --fix: do not ask for confirmation.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Verification CSV [RESULTS with .verify.csv].")
@click.option("--base-url", help="Platform API base URL [the run's].")
@click.option("--ims-url", help="IMS base URL [the run's].")
@send_options
@emulator_option
@auth_options
def verify_cmd(results: Path, fix: bool, yes: bool, out: Path | None, **opts: Any) -> None:
    """Check that every offer the run which wrote RESULTS created exists once, with the run's content.

    Each created offer is read by its id; its name is looked up (after the settle window since the
    run's last send) for other offers with the same name and content. Prints the rows that are missing,
    duplicated or changed, and writes every checked row to RESULTS.verify.csv. With --fix, deletes the
    extra copies the run itself made (asks first unless --yes) and never any other offer.

    Exit code 0 when every created row is present once, 1 otherwise."""
    CONSOLE.start("verify", opts["json"])
    run_guarded(lambda: _verify(results, fix, yes, out, opts))


def _verify(results: Path, fix: bool, yes: bool, out: Path | None, opts: dict[str, Any]) -> int:
    from .runrecord import api_config_of, journal_path, load_journal

    state = load_journal(journal_path(results))
    h = state.header
    sending = send_settings(opts)
    endpoints, creds, server = continued_target(opts, results, h)
    try:
        api = api_config_of(state, creds, **endpoints, **sending)
        record_settings(api)
        return report_verification(state, api, results, out, fix, yes)
    finally:
        if server is not None:
            server.stop()


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


@main.command("check-auth", context_settings=CONTEXT)
@click.option("--api", type=click.Choice(["dps", "xcore"]), default="dps", show_default=True, help="API flavor.")
@click.option("--container-id", metavar="ID", help="xcore container id [looked up for the sandbox].")
@click.option("--sandbox", help="Sandbox name [env BULKOFFERS_SANDBOX; default prod].")
@click.option("--base-url", default=PRODUCTION_BASE_URL, show_default=True, help="Platform API base URL.")
@click.option("--ims-url", default=PRODUCTION_IMS_URL, show_default=True, help="IMS base URL.")
@click.option("--verbose", "-v", is_flag=True, help="Log every request to stderr; secrets are redacted.")
@auth_options
def check_auth_cmd(**opts: Any) -> None:
    """Test the credentials before a large run: get a token and list one page of fallback offers.

    Shows where each credential value came from (flag, environment, .env, config file; secrets are
    only said to be set). Exit code 0 when both work, 2 with the header or setting to fix otherwise."""

    def run() -> int:

        from .whoami import check_auth

        resolved = resolve_credentials(opts)
        for line in resolved.describe():
            click.echo(f"  {line}")
        creds = make_credentials(opts, resolved=resolved)
        target = Target(api=opts["api"], base_url=opts["base_url"], ims_url=opts["ims_url"],
                        container_id=opts["container_id"])
        result = check_auth(ApiConfig(target, creds))
        click.echo(f"token: ok, from {result.token_source}")
        if result.container_id:
            click.echo(f"xcore container: {result.container_id}")
        sample = ", ".join(repr(n) for n in result.names) or "none yet"
        click.echo(f"sandbox {creds.sandbox!r} ({opts['api']} at {opts['base_url']}): {result.total} fallback "
                   f"offers; first page: {sample}")
        return EXIT_OK

    run_guarded(run)


def _alias(command: click.Command, of: str) -> click.Command:
    alias = copy.copy(command)
    alias.short_help = f"The same as {of}."
    alias.help = f"The same as `bulkoffers {of}`.\n\n{command.help or ''}"
    return alias


main.add_command(_alias(check_auth_cmd, "check-auth"), "whoami")


filter_option = click.option(
    "--filter", "filters", multiple=True, metavar="name=PATTERN|status=S",
    help="Only offers whose name matches PATTERN (* and ?, case-sensitive) or whose status is S; repeat to "
         "combine (all must hold).")


class ExportProgress:
    """A count of offers listed, on stderr (off when stderr is not a terminal, or with --quiet)."""

    def __init__(self, quiet: bool) -> None:
        self._bar: Any = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(unit=" offers", desc="listing", file=sys.stderr, dynamic_ncols=True)

    def __call__(self, listed: int, total: int | None) -> None:
        if self._bar is not None:
            self._bar.update(listed - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@main.command("export", context_settings=CONTEXT)
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@click.option("--api", type=click.Choice(["dps", "xcore"]), default="dps", show_default=True,
              help="Offer Library API flavor to read.")
@filter_option
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@send_options
@target_options
@auth_options
def export_cmd(out: Path, **opts: Any) -> None:
    """Write the sandbox's fallback offers to OUT (.csv or .xlsx), in the columns `import` reads.

    One row per component; `offer_key` is the offer's id (the rows of one offer stay one offer);
    placements by name where the name is unique in the sandbox (so another sandbox maps them), else by
    id; dates as ISO instants. The read-only columns id, at_id, etag and modified follow; import ignores
    them. Every page is listed, at --rate. Edit the file and import it with --on-existing update, or
    import it into another sandbox (or see `bulkoffers copy`).

    Exit code 0 when written, 2 for usage or credentials."""
    CONSOLE.start("export", opts["json"])
    run_guarded(lambda: _export(out, opts))


def _export(out: Path, opts: dict[str, Any]) -> int:
    from .export import OfferFilter, export_offers

    keep, sending = OfferFilter.parse(opts["filters"]), send_settings(opts)
    if out.suffix.lower() not in (".csv", ".xlsx", ".xlsm"):
        raise ConfigError(f"cannot export to {out.suffix or 'a file without suffix'}", hint="name OUT .csv or .xlsx")
    if out.exists() and not opts["force"]:
        raise ConfigError(f"{out} already exists", hint="pass --force to overwrite it, or choose another file")
    target = Target(api=opts["api"], base_url=opts["base_url"], ims_url=opts["ims_url"],
                    container_id=opts["container_id"])
    load_heavy()
    target, creds, server = connect(opts, target)
    api = ApiConfig(target, creds, **sending)
    record_settings(api)
    progress = ExportProgress(opts["quiet"])
    try:
        summary = export_offers(api, out, keep, force=opts["force"], progress=progress)
    finally:
        progress.close()
        if server is not None:
            server.stop()
    for warning in summary.warnings:
        CONSOLE.warn(warning)
    shown = f" of {summary.listed}" if summary.listed != summary.offers else ""
    CONSOLE.note(f"exported {plural(summary.offers, 'offer')}{shown} from sandbox {creds.sandbox!r} ({target.api}) "
                 f"as {plural(summary.rows, 'row')}: {out}")
    CONSOLE.set(counts={"offers": summary.offers, "rows": summary.rows, "listed": summary.listed}, out=str(out))
    return EXIT_OK


@main.command("copy", context_settings=CONTEXT)
@json_option
@click.option("--from-sandbox", required=True, help="The sandbox to copy from.")
@click.option("--to-sandbox", required=True, help="The sandbox to copy to (may be the same, with another API).")
@click.option("--from-api", type=click.Choice(["dps", "xcore"]), default="dps", show_default=True,
              help="The API to read with.")
@click.option("--to-api", type=click.Choice(["dps", "xcore"]), default="dps", show_default=True,
              help="The API to create with.")
@filter_option
@existing_options
@click.option("--export", "export_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where the exported offers go (the copy's input) [beside RESULTS: NAME.export.csv].")
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Results CSV [./copy.FROM-to-TO.<time>.results.csv]; its journal goes beside it.")
@click.option("--force", is_flag=True, help="Overwrite existing export, results and failures files.")
@click.option("--verify", is_flag=True, help="After the copy (and the settle window), check every created offer.")
@send_options
@click.option("--emulator", is_flag=True, help="Rehearse on the built-in emulator (both sandboxes in it; its "
                                               "offers are kept beside RESULTS).")
@click.option("--base-url", default=PRODUCTION_BASE_URL, show_default=True, help="Platform API base URL.")
@click.option("--ims-url", default=PRODUCTION_IMS_URL, show_default=True, help="IMS base URL.")
@auth_options
def copy_cmd(**opts: Any) -> None:
    """Copy the fallback offers of one sandbox (or API) to another: `export`, then `import` of that file,
    in one run with one journal, so `resume`, `verify` and `rollback` work on it as on any import.

    \b
      bulkoffers copy --from-sandbox dev --to-sandbox prod
      bulkoffers copy --from-sandbox prod --to-sandbox prod --from-api xcore --to-api dps

    Placements differ between sandboxes and APIs: each is mapped by its name (and channel), checked
    by the preflight; an offer whose placement has no match in the target is invalid, with the fix in
    its error, never sent to a guessed placement. Offers whose name exists in the target are skipped
    (--on-existing). Exit codes as for import."""
    CONSOLE.start("copy", opts["json"])
    run_guarded(lambda: _copy(opts))


def _copy(opts: dict[str, Any]) -> int:
    from .export import OfferFilter, copy_offers
    from .runrecord import failures_beside

    if opts["from_sandbox"] == opts["to_sandbox"] and opts["from_api"] == opts["to_api"]:
        raise ConfigError("--from-sandbox and --to-sandbox are the same, with the same API: nothing to copy",
                          hint="name another sandbox, or another API with --from-api/--to-api")
    keep, sending = OfferFilter.parse(opts["filters"]), send_settings(opts)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    results = opts["results_path"] or Path(f"copy.{opts['from_sandbox']}-to-{opts['to_sandbox']}.{stamp}.results.csv")
    export = opts["export_path"] or failures_beside(results).with_name(
        failures_beside(results).name.removesuffix(".failures.csv") + ".export.csv")
    if export.suffix.lower() != ".csv":
        raise ConfigError(f"--export {export}: the copy's export must be a .csv", hint="name it NAME.csv")
    for path in (export, results):
        if path.exists() and not opts["force"]:
            raise ConfigError(f"{path} already exists", hint="pass --force to overwrite it, or choose another --results")
    state = None
    if opts["emulator"]:
        state = emulator_state(results)
        if state.exists() and (opts["force"] or not results.exists()):
            state.unlink()
    load_heavy()
    from .progress import TqdmProgress

    base = Target(base_url=opts["base_url"], ims_url=opts["ims_url"])
    target, creds, server = connect({**opts, "sandbox": opts["to_sandbox"]}, base, state)
    source = ApiConfig(dataclasses.replace(target, api=opts["from_api"]),
                       dataclasses.replace(creds, sandbox=opts["from_sandbox"]), **sending)
    cfg = ImportConfig(input=export, results=results, failures=failures_beside(results),
                       target=dataclasses.replace(target, api=opts["to_api"]),
                       credentials=dataclasses.replace(creds, sandbox=opts["to_sandbox"]),
                       force=opts["force"], on_existing=on_existing(opts), **sending)
    record_settings(cfg, from_sandbox=opts["from_sandbox"], from_api=opts["from_api"])

    def exported(summary: Any) -> None:
        for warning in summary.warnings:
            CONSOLE.warn(warning)
        CONSOLE.note(f"exported {plural(summary.offers, 'offer')} from sandbox {opts['from_sandbox']!r} "
                     f"({opts['from_api']}): {export}")
        CONSOLE.set(exported={"offers": summary.offers, "rows": summary.rows, "file": str(export)})

    try:
        with resume_hint(results, opts):
            _, summary = copy_offers(source, cfg, keep, TqdmProgress(quiet=opts["quiet"]), exported)
        code = report(summary)
        if opts["verify"]:
            from .runrecord import journal_path, load_journal

            record = load_journal(journal_path(results))
            code = max(code, report_verification(record, cfg.api_config, results, None, False, True))
    finally:
        if server is not None:
            server.stop()
    return code


@main.command("template", context_settings=CONTEXT)
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def template_cmd(out: Path, force: bool) -> None:
    """Write a starter spreadsheet OUT (.xlsx or .csv) with every column and example rows.

    The example is one offer with two representations (web image, email HTML): rows sharing an
    offer_key become one offer. In the .xlsx, each header has a comment explaining its values and the
    cells are formatted as text so leading zeros survive. Check your edits with `bulkoffers validate OUT`.
    """

    def run() -> int:
        from .template import write_template

        if out.exists() and not force:
            raise ConfigError(f"{out} already exists", hint="pass --force to overwrite it")
        write_template(out)
        click.echo(f"wrote {out}", err=True)
        return EXIT_OK

    run_guarded(run)


@main.command("emulator", context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8787, show_default=True, help="Port (0 = any free port).")
@click.option("--db", type=click.Path(dir_okay=False), help="SQLite file so offers survive restarts [in memory].")
@click.option("--client-id", default=None, help="Client id IMS accepts [bulkoffers-emulator].")
@click.option("--client-secret", default=None, help="Client secret IMS accepts [emulator-secret].")
@click.option("--org-id", default=None, help="IMS org the API accepts [the emulator's].")
@click.option("--token-ttl", default=86399, show_default=True, help="Seconds a token lives.")
@click.option("--max-offers", default=10_000, show_default=True, help="Guardrail: offers per sandbox.")
@click.option("--latency-ms", default=0.0, show_default=True, help="Fixed delay before every API answer.")
@click.option("--jitter-ms", default=0.0, show_default=True, help="Plus a random 0..N ms.")
@click.option("--rate-limit", type=float, help="API requests per second; beyond it 429.")
@click.option("--no-retry-after", is_flag=True, help="Send 429s without a Retry-After header.")
@click.option("--error-rate", default=0.0, show_default=True, help="Share of requests answered 500/502/503.")
@click.option("--throttle-rate", default=0.0, show_default=True,
              help="Share of requests answered 429 at random, whatever the pace (no Retry-After).")
@click.option("--reset-rate", default=0.0, show_default=True, help="Share of connections closed before processing.")
@click.option("--drop-rate", default=0.0, show_default=True,
              help="Share of creates and edits stored and then dropped without an answer (commit-then-drop).")
@click.option("--slow-rate", default=0.0, show_default=True, help="Share of answers delayed by --slow-seconds.")
@click.option("--slow-seconds", default=30.0, show_default=True, help="Delay of a slow answer.")
@click.option("--fault-scope", type=click.Choice(["all", "create", "list"]), default="all", show_default=True,
              help="Faults hit all API requests, only creates, or only list/search/lookup requests.")
@click.option("--seed", type=int, help="Seed for reproducible random faults.")
@click.option("--index-lag", type=float, default=0.0, show_default=True,
              help="List and search show a new offer only this many seconds after it is stored "
                   "(lookup by id at once), as search indexes do.")
@click.option("--placements", type=click.Path(dir_okay=False),
              help="JSON list of placements every sandbox starts with (name, channel, componentType, optional "
                   "id, @id, description) instead of the built-in set.")
@click.option("--max-placements", default=1_000, show_default=True, help="Guardrail: placements per sandbox.")
def emulator_cmd(host: str, port: int, **options: Any) -> None:
    """Run a local Offer Library API (DPS and xcore, with IMS) to rehearse imports against.

    Stats for tests and rehearsals: GET /__emulator/stats. Change faults while it runs:
    POST /__emulator/faults with a JSON object of the fault settings.
    """

    def run() -> int:
        import asyncio

        from .emulator import EmulatorConfig, serve_forever
        from .emulator.settings import DEFAULT_CLIENT_SECRET

        try:
            cfg = EmulatorConfig.from_options(options)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

        def ready(bound: int) -> None:
            click.echo(f"Offer Library emulator on http://{host}:{bound}  (Ctrl-C stops it)", err=True)
            click.echo(f"  --base-url http://{host}:{bound} --ims-url http://{host}:{bound} "
                       f"--client-id {cfg.client_id} --org-id {cfg.org_id}", err=True)
            if cfg.client_secret == DEFAULT_CLIENT_SECRET:
                click.echo(f"  client secret: the built-in default ({DEFAULT_CLIENT_SECRET})", err=True)
            sys.stderr.flush()

        try:
            asyncio.run(serve_forever(cfg, host, port, ready))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}",
                              hint="choose another --port") from exc
        except KeyboardInterrupt:
            pass
        return EXIT_OK

    run_guarded(run)


if __name__ == "__main__":
    main()
