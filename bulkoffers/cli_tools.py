"""`bulkoffers` commands that read or serve a sandbox around the runs: export, copy, template and the
emulator. `cli` registers them on its group; what they share with the run commands is in `cli_shared`."""

from __future__ import annotations

import dataclasses
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from .cli_shared import (CONTEXT, EXIT_OK, auth_options, connect, existing_options, fresh_emulator_state,
                         json_option, load_heavy, on_existing, record_settings, report, resume_hint, run_guarded,
                         send_options, send_settings, stop_emulator, target_options, verify_run)
from .config import PRODUCTION_BASE_URL, PRODUCTION_IMS_URL, ApiConfig, ImportConfig, Target
from .console import CONSOLE, plural
from .errors import ConfigError


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


@click.command("export", context_settings=CONTEXT)
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
        stop_emulator(server)
    for warning in summary.warnings:
        CONSOLE.warn(warning)
    shown = f" of {summary.listed}" if summary.listed != summary.offers else ""
    CONSOLE.note(f"exported {plural(summary.offers, 'offer')}{shown} from sandbox {creds.sandbox!r} ({target.api}) "
                 f"as {plural(summary.rows, 'row')}: {out}")
    CONSOLE.set(counts={"offers": summary.offers, "rows": summary.rows, "listed": summary.listed}, out=str(out))
    return EXIT_OK


@click.command("copy", context_settings=CONTEXT)
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
    from .runrecord import beside, failures_beside

    if opts["from_sandbox"] == opts["to_sandbox"] and opts["from_api"] == opts["to_api"]:
        raise ConfigError("--from-sandbox and --to-sandbox are the same, with the same API: nothing to copy",
                          hint="name another sandbox, or another API with --from-api/--to-api")
    keep, sending = OfferFilter.parse(opts["filters"]), send_settings(opts)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    results = opts["results_path"] or Path(f"copy.{opts['from_sandbox']}-to-{opts['to_sandbox']}.{stamp}.results.csv")
    export = opts["export_path"] or beside(results, ".export.csv")
    if export.suffix.lower() != ".csv":
        raise ConfigError(f"--export {export}: the copy's export must be a .csv", hint="name it NAME.csv")
    for path in (export, results):
        if path.exists() and not opts["force"]:
            raise ConfigError(f"{path} already exists", hint="pass --force to overwrite it, or choose another --results")
    state = fresh_emulator_state(opts, results)
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
        if summary.offers == 0:
            where = f"sandbox {opts['from_sandbox']!r} ({opts['from_api']})"
            CONSOLE.note(f"nothing to copy: none of the {plural(summary.listed, 'fallback offer')} in {where} match "
                         "--filter" if summary.listed else f"nothing to copy: {where} has no fallback offers")
            CONSOLE.set(exported={"offers": 0, "rows": 0, "file": None})
            return
        CONSOLE.note(f"exported {plural(summary.offers, 'offer')} from sandbox {opts['from_sandbox']!r} "
                     f"({opts['from_api']}): {export}")
        CONSOLE.set(exported={"offers": summary.offers, "rows": summary.rows, "file": str(export)})

    try:
        with resume_hint(results, opts):
            _, summary = copy_offers(source, cfg, keep, TqdmProgress(quiet=opts["quiet"]), exported)
        if summary is None:  # nothing exported, nothing imported: no run, no results file
            CONSOLE.set(counts={}, rows=0, offers=0)
            return EXIT_OK
        code = report(summary)
        if opts["verify"]:
            code = max(code, verify_run(cfg))
    finally:
        stop_emulator(server, state, results)
    return code


@click.command("template", context_settings=CONTEXT)
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


@click.command("emulator", context_settings=CONTEXT)
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
