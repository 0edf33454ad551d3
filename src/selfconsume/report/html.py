"""Load every experiment read-only from the store, run the figure and table makers, and write one
self-contained HTML page (navigation, one section per experiment: runs, resolved configs, theory
vs simulation, figures as PNG with an SVG beside each). Everything from the store is escaped.
"""

from __future__ import annotations

import html
import json
import multiprocessing
import os
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from selfconsume.errors import ConfigError
from selfconsume.report import makers  # noqa: F401  (registers the figure and table makers)
from selfconsume.report.base import FIGURES, TABLES, Experiment, Figure, RunData, TheoryRow
from selfconsume.report.labels import run_labels, talk_order
from selfconsume.store.reader import StoreReader
from selfconsume.store.reads import StoreReads
from selfconsume.store.records import RunRecord, stored_json


def load_experiments(
    store: StoreReads, problems: list[str] | None = None, name: str | None = None
) -> list[Experiment]:
    """Every experiment of a store (a StoreReader, or a Store), or only the one called `name`,
    runs in the talk's order. A run that cannot be read (its config, its metrics, later its
    samples) is a ConfigError or, given `problems`, left out with its one-line reason appended
    there."""
    by_name: dict[str, list[tuple[RunRecord, dict[str, np.ndarray]]]] = defaultdict(list)
    for record in store.runs(name, problems=problems):
        try:
            series = store.series(record.run_id)
        except ConfigError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            continue
        by_name[record.name].append((record, series))
    experiments = []
    for name, runs in by_name.items():
        runs = [runs[i] for i in talk_order([record for record, _ in runs])]
        labels = run_labels([record for record, _ in runs])
        exp = Experiment(name)
        for (record, series), label in zip(runs, labels, strict=True):
            exp.runs.append(RunData(record, series, label, store, problems))
        experiments.append(exp)
    return experiments


def draw(exp: Experiment, out: Path) -> tuple[list[Figure], list[TheoryRow]]:
    """Every figure (saved under out) and theory row the registered makers make of an experiment."""
    figures = [f for maker in FIGURES for f in maker(exp, out)]
    return figures, [r for maker in TABLES for r in maker(exp)]


@dataclass(frozen=True)
class Section:
    """One experiment's part of the page, drawn by a worker or in this process (`body` None when
    none of its runs can be read), and the lines saying which runs it left out."""

    anchor: str
    name: str
    runs: int
    body: str | None
    problems: list[str]


def drawn_section(
    store_path: str | os.PathLike[str], out: Path, keep_problems: bool, item: tuple[int, str]
) -> Section:
    """Experiment `item` = (index, name) read from its own snapshot of the store, its figures
    saved and its section written."""
    index, name = item
    anchor, problems = f"exp-{index}", [] if keep_problems else None
    with StoreReader(store_path) as store:
        experiments = load_experiments(store, problems, name)
        if not experiments:
            return Section(anchor, name, 0, None, problems or [])
        (exp,) = experiments
        page = _section(anchor, exp, *draw(exp, out))
    return Section(anchor, name, len(exp.runs), page, problems or [])


def write_report(
    store_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    problems: list[str] | None = None,
    workers: int = 1,
) -> Path:
    """Write figures (PNG + SVG) and index.html for every experiment in the store; return the page.
    The store is opened read-only; a missing store or one without runs is a ConfigError. Given
    `problems`, a run that cannot be read is left out with its one-line reason there (a
    ConfigError if no run can be read), else it is a ConfigError. With `workers` > 1 that many
    processes draw the experiments (matplotlib is single-threaded, and drawing is most of the
    report's time), each reading its experiment from its own read-only snapshot."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file, not a folder")
    with StoreReader(store_path) as store:
        names = list(dict.fromkeys(record.name for record in store.runs(problems=problems)))
    if not names and problems:
        raise ConfigError(f"no run of the store can be read; {problems[0]}")
    if not names:
        raise ConfigError(f"{store_path}: the store has no runs")
    out.mkdir(parents=True, exist_ok=True)
    draw_one = partial(drawn_section, store_path, out, problems is not None)
    workers = min(workers, len(names))
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=_context()) as pool:
            drawn = list(pool.map(draw_one, enumerate(names)))
    else:
        drawn = [draw_one(item) for item in enumerate(names)]
    sections = [s for s in drawn if s.body is not None]
    if problems is not None:
        lines = [line for s in drawn for line in s.problems if line not in problems]
        problems.extend(dict.fromkeys(lines))
    if not sections and problems:
        raise ConfigError(f"no run of the store can be read; {problems[0]}")
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.name)}</a>' for s in sections)
    page = out / "index.html"
    runs = sum(s.runs for s in sections)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    about = f"{html.escape(str(store_path))}: {runs} runs in {len(sections)} experiments; {stamp}"
    body = "\n".join(s.body for s in sections)
    page.write_text(_PAGE.format(nav=nav, about=about, body=body), encoding="utf-8")
    return page


def _context() -> BaseContext:
    """Fork where it is safe and cheap (Linux: the workers inherit the imports, no store is open
    while they start), spawn elsewhere."""
    return multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _runs_table(exp: Experiment) -> str:
    head = "<tr><th>arm</th><th>run id</th><th>status</th><th>generations</th><th>replicates</th>"
    rows = "".join(
        f"<tr><td>{_e(r.label)}</td><td><code>{_e(r.record.run_id)}</code></td>"
        f"<td>{_e(r.record.status)}</td><td>{_e(r.record.generations_done)}</td>"
        f"<td>{_e(r.record.replicates)}</td><td>{_e(r.record.error or '')}</td></tr>"
        for r in exp.runs
    )
    return f"<table>{head}<th>error</th></tr>{rows}</table>"


def _configs(exp: Experiment) -> str:
    blocks = "".join(
        f"<h4>{_e(r.label)} · <code>{_e(r.record.run_id)}</code></h4>"
        f"<pre>{_e(json.dumps(stored_json(r.config), indent=2, ensure_ascii=False))}</pre>"
        for r in exp.runs
    )
    return f"<details><summary>Resolved config of each run ({len(exp.runs)})</summary>{blocks}</details>"


def _theory_table(rows: list[TheoryRow]) -> str:
    """One line per (arm, quantity), the generations it reports side by side."""
    if not rows:
        return ""
    lines: dict[tuple[str, str], list[TheoryRow]] = defaultdict(list)
    for r in rows:
        lines[(r.run, r.quantity)].append(r)
    width = max(len(v) for v in lines.values())
    group = "<th>t</th><th>theory</th><th>simulation</th><th>s.e.</th><th>z</th>"
    head = f"<tr><th>arm</th><th>quantity</th>{group * width}</tr>"
    body = ""
    for (run, quantity), cells in lines.items():
        body += f"<tr><td>{_e(run)}</td><td>{_e(quantity)}</td>"
        for r in cells:
            flag = ' class="off"' if abs(r.z) > 3 else ""
            body += (
                f'<td class="t">{r.generation}</td><td>{r.theory:.4g}</td><td>{r.mean:.4g}</td>'
                f"<td>{r.se:.2g}</td><td{flag}>{r.z:+.2f}</td>"
            )
        body += "</tr>"
    return (
        "<h3>Theory vs simulation</h3><p class=note>Mean over replicates against the closed form "
        "at the first, middle and last generation; z = (simulation − theory) / sample standard "
        "error, |z| &gt; 3 in red. Squared quantities (σ_t², W₂², errors²) at small n are products "
        "of χ² factors: their mean lives in ever rarer replicates, so late in a run the sample "
        "mean falls short of it and the sample standard error understates the spread (red there "
        "is the tail, not the formula; the tests use exact standard errors).</p>"
        f"<table>{head}{body}</table>"
    )


def _figure(fig: Figure) -> str:
    png, svg = quote(fig.path.name), quote(fig.svg.name)
    return (
        f'<figure><img src="{png}" alt="{_e(fig.title)}">'
        f"<figcaption><b>{_e(fig.title)}</b> {_e(fig.caption)} "
        f'<a href="{svg}">SVG</a></figcaption></figure>'
    )


def _section(anchor: str, exp: Experiment, figures: list[Figure], rows: list[TheoryRow]) -> str:
    description = exp.runs[0].config.description
    return (
        f'<section id="{anchor}"><h2>{_e(exp.name)}</h2>'
        + (f"<p>{_e(description)}</p>" if description else "")
        + _runs_table(exp)
        + _configs(exp)
        + _theory_table(rows)
        + "".join(_figure(f) for f in figures)
        + "</section>"
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>selfconsume report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em}}
nav{{position:sticky;top:0;background:#f4f4f4;padding:.5em;border-bottom:1px solid #ccc;z-index:1;
display:flex;flex-wrap:wrap;gap:.3em 1.2em}}nav a,nav b{{white-space:nowrap}}nav a{{color:#124}}
img{{max-width:100%}}table{{border-collapse:collapse;font-size:12px;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}td.off{{background:#fdd}}td.t{{border-left:2px solid #999}}
figure{{margin:1em 0}}figcaption{{font-size:13px;color:#333}}pre{{font-size:11px;background:#fafafa}}
details{{margin:.5em 0}}summary{{cursor:pointer}}.note{{font-size:12px;color:#555}}
section{{border-top:2px solid #ddd;margin-top:1.5em;scroll-margin-top:3em}}
</style></head>
<body><nav><b>selfconsume report</b>{nav}</nav>
<h1>selfconsume report</h1><p class=note>Store {about}</p>
{body}
</body></html>
"""
