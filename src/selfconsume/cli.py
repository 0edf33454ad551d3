"""The `selfconsume` command line: run, presets, runs, export, report.

Exit codes: 0 success, 2 bad input (one line naming the key or file), 1 a failure inside a run.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from selfconsume.errors import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
DEFAULT_STORE = Path("runs/store.sqlite")
StoreOpt = Annotated[Path, typer.Option("--store", help="SQLite store (artifacts beside it).")]


class ExecutorKind(StrEnum):
    local = "local"
    dask = "dask"


def wide_console() -> Console:
    """A console at least 160 columns wide, so tables stay readable when piped."""
    console = Console()
    return console if console.width >= 160 else Console(width=160)


def _bad_input(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command()
def run(
    config: Annotated[str, typer.Argument(help="A YAML file or a preset name.")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override: key.path=value (repeatable).")
    ] = None,
    store: StoreOpt = DEFAULT_STORE,
    executor: Annotated[
        ExecutorKind, typer.Option(help="Where runs execute.")
    ] = ExecutorKind.local,
    workers: Annotated[int, typer.Option(min=1, help="Parallel worker processes.")] = 1,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Use the config's quick scale.")] = False,
) -> None:
    """Run an experiment (and its sweep), resuming whatever part is already in the store."""
    from selfconsume.api import run_experiment

    try:
        outcomes = run_experiment(
            config, set_ or [], store, executor.value, workers, scheduler, quick
        )
    except ConfigError as exc:
        raise _bad_input(str(exc)) from None
    bad = [o for o in outcomes if o.status == "bad_input"]
    if bad:
        raise _bad_input(bad[0].error or "bad input")
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        typer.echo(f"run {o.run_id} failed: {o.error}", err=True)
    typer.echo(f"{len(outcomes) - len(failed)}/{len(outcomes)} runs done; store: {store}", err=True)
    if failed:
        raise typer.Exit(1)


@app.command()
def presets(
    kinds: Annotated[
        bool, typer.Option("--kinds", help="List every registered kind instead.")
    ] = False,
) -> None:
    """List the presets shipped with selfconsume (or, with --kinds, every kind)."""
    from selfconsume.config import preset_names, read_raw

    console = wide_console()
    if kinds:
        from selfconsume.data.base import DATA
        from selfconsume.metrics.base import METRICS
        from selfconsume.models.base import MODELS
        from selfconsume.plan import check_config  # noqa: F401  (fills the registries)
        from selfconsume.rewards.base import REWARDS

        table = Table("role", "kind", "params", "what")
        for registry in (DATA, MODELS, REWARDS, METRICS):
            for e in registry.kinds():
                fields = ", ".join(e.params.model_fields)
                table.add_row(registry.role, e.kind, fields, escape(e.doc))
        console.print(table)
        return
    table = Table("preset", "description")
    for name in preset_names():
        raw, _ = read_raw(name)
        table.add_row(name, str(raw.get("description", "")))
    console.print(table)


@app.command()
def runs(store: StoreOpt = DEFAULT_STORE) -> None:
    """List the runs in the store with their status."""
    from selfconsume.store.sqlite import Store

    if not store.exists():
        raise _bad_input(f"{store}: no such store")
    table = Table("run_id", "name", "status", "generations", "replicates", "created", "error")
    for r in Store(store).runs():
        table.add_row(
            r.run_id,
            r.name,
            r.status,
            str(r.generations_done),
            str(r.replicates),
            r.created_at,
            r.error or "",
        )
    wide_console().print(table)


@app.command()
def export(
    store: StoreOpt = DEFAULT_STORE,
    format: Annotated[str, typer.Option("--format", help="csv, json, parquet or arrow.")] = "csv",
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: standard output).")
    ] = None,
    summary: Annotated[
        bool,
        typer.Option("--summary", help="mean, sd, se, 95% interval per run/generation/metric."),
    ] = False,
) -> None:
    """Write every value in long format (run_id, name, replicate, generation, metric, value, then
    one column per swept key), or with --summary its summary over replicates. Reads the store only."""
    from selfconsume.store.export import export as write_export

    try:
        write_export(store, format, out, summary)
    except ConfigError as exc:
        raise _bad_input(str(exc)) from None


@app.command()
def report(
    store: StoreOpt = DEFAULT_STORE,
    out: Annotated[Path, typer.Option("--out", help="Folder for figures and index.html.")] = Path(
        "report"
    ),
) -> None:
    """Write figures (PNG and SVG) and one self-contained HTML page for every experiment in the
    store. Reads the store only and never runs user code."""
    from selfconsume.report.html import write_report

    try:
        page = write_report(store, out)
    except ConfigError as exc:
        raise _bad_input(str(exc)) from None
    typer.echo(f"report: {page}", err=True)
