"""The `selfconsume` command line: run, presets, runs, export, report.

Exit codes: 0 success, 2 bad input (one line naming the key or file),
1 a failure inside a run, 75 a run is being computed by another live process (rerun when it
ends, or `run --wait`), 130 / 143 stopped by Ctrl-C / SIGTERM (rerun to resume).
"""

from __future__ import annotations

import os
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from selfconsume.errors import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
DEFAULT_STORE = Path("runs/store.sqlite")
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Characters a terminal acts on (escape sequences, bells, carriage returns, bidi overrides)."""
EXIT_BUSY = 75
"""`run`: some run is held by another live process and every other run is done (EX_TEMPFAIL)."""
MAX_MESSAGE = 500
"""Characters of a bad-input message printed (a key or value quoted in it may be huge)."""
StoreOpt = Annotated[Path, typer.Option("--store", help="SQLite store (artifacts beside it).")]


class ExecutorKind(StrEnum):
    local = "local"
    dask = "dask"


def wide_console() -> Console:
    """A console at least 160 columns wide, so tables stay readable when piped."""
    console = Console()
    return console if console.width >= 160 else Console(width=160)


def plain(text: object, lines: bool = False) -> str:
    """Text from a store or a user's code made safe for a terminal: control characters removed,
    and newlines and tabs turned into spaces unless `lines` (so a message stays one line)."""
    text = str(text)
    if not lines:
        text = text.replace("\n", " ").replace("\t", " ")
    return CONTROL.sub("", text)


def _bad_input(message: str) -> typer.Exit:
    """Print the message on one line (any line separator a space, cut at MAX_MESSAGE), exit 2."""
    line = " ".join(plain(message).split())
    cut = line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"
    typer.echo(f"error: {cut}", err=True)
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
    wait_workers: Annotated[
        float, typer.Option(min=0, help="Seconds a scheduler may have no workers (then exit 1).")
    ] = 60.0,
    quick: Annotated[bool, typer.Option("--quick", help="Use the config's quick scale.")] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Wait for runs another process is computing, then report them."
        ),
    ] = False,
) -> None:
    """Run an experiment (and its sweep), resuming whatever part is already in the store.

    A failed run is listed on one line (its traceback is kept in the store:
    `selfconsume runs --traceback RUN_ID`) and the other runs go on; Ctrl-C or
    SIGTERM stops every worker and marks unfinished runs interrupted.

    A run another live process is computing is skipped, and the command exits 75
    (if nothing failed); with --wait it waits for that process, then reports the
    run as it ended (or resumes it, if the process stopped before the end).

    Exit codes: 0 all runs done; 1 a run failed; 2 bad input (nothing written);
    75 a run is busy in another process; 130 / 143 Ctrl-C / SIGTERM."""
    from selfconsume.api import run_experiment
    from selfconsume.sweep.interrupts import Terminated

    try:
        outcomes = run_experiment(
            config,
            set_ or [],
            store,
            executor.value,
            workers,
            scheduler,
            quick,
            wait_workers,
            wait,
        )
    except ConfigError as exc:
        raise _bad_input(str(exc)) from None
    except KeyboardInterrupt as exc:
        name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("SIGINT", 130)
        typer.echo(
            f"interrupted by {name}: unfinished runs are marked interrupted; "
            "run the same command again to resume",
            err=True,
        )
        _quiet_teardown()
        raise typer.Exit(code) from None
    except Exception as exc:
        typer.echo(f"error: {plain(_one_line(exc))} (traceback: {_log_traceback(exc)})", err=True)
        raise typer.Exit(1) from None
    for o in outcomes:
        if o.status == "failed":
            note = f"traceback: selfconsume runs --store {store} --traceback {o.run_id}"
            typer.echo(f"run {o.run_id} failed: {plain(o.error)} ({note})", err=True)
        elif o.status == "busy":
            typer.echo(
                f"run {o.run_id} skipped: {plain(o.error)}; rerun when it ends, or --wait", err=True
            )
    bad = [o for o in outcomes if o.status == "bad_input"]
    if bad:
        raise _bad_input(bad[0].error or "bad input")
    done = sum(o.status == "done" for o in outcomes)
    busy = sum(o.status == "busy" for o in outcomes)
    held = f", {busy} busy in another process" if busy else ""
    typer.echo(f"{done}/{len(outcomes)} runs done{held}; store: {store}", err=True)
    if done + busy < len(outcomes):
        raise typer.Exit(1)
    if busy:
        raise typer.Exit(EXIT_BUSY)


def _quiet_teardown() -> None:
    """After an interrupt the runs are recorded: what finalizers of half-stopped pools and threads
    raise while the interpreter shuts down is noise, not news, so it is not printed."""
    import threading

    sys.unraisablehook = lambda _unraisable: None
    threading.excepthook = lambda _args: None


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _log_traceback(exc: BaseException) -> str:
    """Write an error outside any run to a temporary log file; return its path."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="selfconsume-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write("".join(traceback.format_exception(exc)))
    return path


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
        from selfconsume.loop.cures import CURES
        from selfconsume.loop.schemes import SCHEMES
        from selfconsume.loop.selection import SELECTIONS
        from selfconsume.metrics.base import METRICS
        from selfconsume.models.base import MODELS
        from selfconsume.rewards.base import REWARDS

        table = Table("role", "kind", "params", "outputs", "what")

        def registered(*registries: Any) -> list[tuple[str, str, str, str, str]]:
            return [
                (r.role, e.kind, ", ".join(e.params.model_fields), ", ".join(e.outputs), e.doc)
                for r in registries
                for e in r.kinds()
            ]

        rows = registered(DATA, MODELS, SCHEMES, SELECTIONS, REWARDS, METRICS, CURES)
        for role, kind, fields, outputs, what in rows:
            table.add_row(role, kind, fields, escape(outputs), escape(what))
        console.print(table)
        return
    table = Table("preset", "description")
    for name in preset_names():
        raw, _ = read_raw(name)
        table.add_row(name, str(raw.get("description", "")))
    console.print(table)


@app.command()
def runs(
    store: StoreOpt = DEFAULT_STORE,
    traceback: Annotated[
        str | None, typer.Option("--traceback", help="Print a failed run's traceback.")
    ] = None,
) -> None:
    """List the runs in the store with their status (or print one failed run's traceback).
    Reads the store only; what it prints from the store is stripped of control characters and
    never read as markup."""
    from selfconsume.store.reader import StoreReader

    try:
        with StoreReader(store) as reader:
            if traceback is not None:
                try:
                    record = reader.status(traceback)
                except KeyError:
                    raise ConfigError(f"--traceback: no run {traceback!r} in {store}") from None
                note = f"run {traceback} has no traceback ({record.status})"
                typer.echo(plain(record.traceback or note, lines=True))
                return
            records = reader.statuses()
    except ConfigError as exc:
        raise _bad_input(str(exc)) from None
    table = Table("run_id", "name", "status", "generations", "replicates", "created", "error")
    for r in records:
        cells = (r.run_id, r.name, r.status, r.generations_done, r.replicates, r.created_at)
        table.add_row(*(Text(plain(c)) for c in (*cells, r.error or "")))
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
    workers: Annotated[
        int, typer.Option(min=1, help="Processes drawing the experiments' figures.")
    ] = 2,
) -> None:
    """Write figures (PNG and SVG) and one self-contained HTML page for every experiment in the
    store. Reads the store only and never runs user code; a run that cannot be read is left out
    with one line saying why, and the others are reported."""
    from selfconsume.report.html import write_report

    problems: list[str] = []
    try:
        page = write_report(store, out, problems, workers)
    except ConfigError as exc:
        raise _bad_input(str(exc)) from None
    for line in dict.fromkeys(problems):
        typer.echo(f"skipped: {plain(line)}", err=True)
    typer.echo(f"report: {page}", err=True)
