"""The `bulkoffers` command: a thin click shell over the library. Heavy modules load inside commands
so `bulkoffers --help` stays fast. Library errors become one `Error: ...` line at one boundary,
`cli_shared.run_guarded`, and only there.

This module holds the group and the commands of a run's life: validate, import, resume, retry,
verify, rollback and check-auth (alias whoami). `cli_tools` holds export, copy, template and the
emulator; `cli_shared` what they all share (exit codes, option groups, credentials)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import click

from . import __version__
from .cli_shared import (CONTEXT, EXIT_OK, EXIT_ROWS_FAILED, ask, auth_options, can_connect, connect,
                         continue_options, continued_target, default_output, emulator_option, existing_options,
                         fresh_emulator_state, input_options, json_option, load_heavy, make_credentials, on_existing,
                         read_options, record_settings, report, report_verification, resolve_credentials,
                         resume_hint, run_guarded, send_options, send_settings, stop_emulator, target_options,
                         verify_run)
from .cli_tools import copy_cmd, emulator_cmd, export_cmd, template_cmd
from .config import PRODUCTION_BASE_URL, PRODUCTION_IMS_URL, ApiConfig, ImportConfig, Target, load_mapping
from .console import CONSOLE, plural
from .errors import ConfigError


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


def _validate(file: Path, opts: dict[str, Any], online: bool) -> int:
    from .reader import check_readable

    check_readable(file)
    cfg = ImportConfig(input=file, results=file, failures=file, read=read_options(opts["sheet"], opts["delimiter"]),
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
        stop_emulator(server)
    record_settings(cfg, online=online)
    CONSOLE.summary(summary, dry=True, sandbox=cfg.credentials.sandbox if online else None)
    if opts["payloads_out"]:
        CONSOLE.note(f"payloads: {opts['payloads_out']}")
        CONSOLE.set(payloads=str(opts["payloads_out"]))
    ok = summary.counts.get("invalid", 0) == 0 and summary.counts.get("fail", 0) == 0 and summary.rows
    return EXIT_OK if ok else EXIT_ROWS_FAILED


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
    read, mapping, sending = read_options(opts["sheet"], opts["delimiter"]), load_mapping(opts["mapping_path"]), \
        send_settings(opts)
    target = Target(api=opts["api"], base_url=opts["base_url"], ims_url=opts["ims_url"],
                    container_id=opts["container_id"])
    results = opts["results_path"] or default_output(file, "results")
    from .runrecord import failures_beside

    failures = opts["failures_path"] or failures_beside(results)
    cfg = ImportConfig(input=file, results=results, failures=failures, target=target, read=read, mapping=mapping,
                       default_status=opts["default_status"], force=opts["force"], payloads_out=opts["payloads_out"],
                       on_existing=on_existing(opts), preflight=opts["preflight"], **sending)
    from .results import check_writable

    check_writable(results, failures, force=opts["force"])  # (import_file checks too; here before an emulator starts)
    load_heavy()
    from .engine import import_file
    from .progress import TqdmProgress

    state = fresh_emulator_state(opts, results)
    target, creds, server = connect(opts, target, state)
    cfg = dataclasses.replace(cfg, target=target, credentials=creds)
    record_settings(cfg)
    try:
        with resume_hint(cfg.results, opts):
            summary = import_file(cfg, TqdmProgress(quiet=opts["quiet"]))
        code = report(summary)
        if opts["verify"]:
            code = max(code, verify_run(cfg))
    finally:
        stop_emulator(server, state, cfg.results)
    return code


def _continue(results: Path, opts: dict[str, Any], redo_failed: bool, override_input: Path | None = None,
              fixed: Path | None = None) -> int:
    """resume / retry: the journal says what the run was; flags only say how to send."""
    load_heavy()
    from .engine import import_file
    from .progress import TqdmProgress
    from .runrecord import continued_config, journal_path, load_run

    state = load_run(results)
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
        stop_emulator(server)


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
    from .runrecord import api_config_of, load_run
    from .undo import rollback

    state = load_run(results)
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
        restore = f" and restore {plural(updated, 'offer')} it updated" if updated else ""
        ask(f"Delete {plural(created, 'offer')} created by the run of {h['input']}{restore} in sandbox {h['sandbox']!r} "
            f"({h['api']})?", "rollback deletes offers")
    sending = send_settings(opts)
    endpoints, creds, server = continued_target(opts, results, h)
    try:
        api = api_config_of(state, creds, **endpoints, **sending)
        record_settings(api)
        summary = rollback(state, api, out)
    finally:
        stop_emulator(server)
    restored = f", {summary.restored} restored" if updated else ""
    CONSOLE.note(f"{plural(summary.offers, 'offer')}: {summary.deleted} deleted, {summary.gone} already gone{restored}, "
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
    from .runrecord import api_config_of, load_run

    state = load_run(results)
    h = state.header
    sending = send_settings(opts)
    endpoints, creds, server = continued_target(opts, results, h)
    try:
        api = api_config_of(state, creds, **endpoints, **sending)
        record_settings(api)
        return report_verification(state, api, results, out, fix, yes)
    finally:
        stop_emulator(server)


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
for _command in (export_cmd, copy_cmd, template_cmd, emulator_cmd):  # defined in cli_tools
    main.add_command(_command)


if __name__ == "__main__":
    main()
