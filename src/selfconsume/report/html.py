"""Load every experiment from the store, run the figure makers, and write one HTML page."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from selfconsume.report import makers  # noqa: F401  (registers the figure makers)
from selfconsume.report.base import FIGURES, Experiment, Figure, RunData
from selfconsume.store.sqlite import RunRecord, Store


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def run_labels(records: list[RunRecord]) -> list[str]:
    """Label each run by the config values that differ between runs of one experiment."""
    flat = [_flatten(r.config) for r in records]
    keys = sorted({k for f in flat for k in f})
    differing = [k for k in keys if len({json.dumps(f.get(k)) for f in flat}) > 1]
    differing = [k for k in differing if k != "name"]
    if not differing:
        return [r.run_id for r in records] if len(records) > 1 else [records[0].name]
    return [", ".join(f"{k.split('.')[-1]}={f.get(k)}" for k in differing) for f in flat]


def load_experiments(store: Store) -> list[Experiment]:
    by_name: dict[str, list[RunRecord]] = defaultdict(list)
    for record in store.runs():
        by_name[record.name].append(record)
    experiments = []
    for name, records in by_name.items():
        exp = Experiment(name)
        for record, label in zip(records, run_labels(records), strict=True):
            series: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
            for generation, metric, values in store.metric_arrays(record.run_id):
                series[metric][generation] = values
            metrics = {m: np.stack([v[g] for g in sorted(v)]) for m, v in series.items()}
            exp.runs.append(RunData(record, metrics, label, store))
        experiments.append(exp)
    return experiments


def write_report(store_path: Path, out: Path) -> Path:
    """Write figures (PNG) and index.html for every experiment in the store; return the page."""
    out.mkdir(parents=True, exist_ok=True)
    store = Store.open_existing(store_path)
    sections = []
    for exp in load_experiments(store):
        figures: list[Figure] = []
        for maker in FIGURES:
            figures.extend(maker(exp, out))
        sections.append(_section(exp, figures))
    store.close()
    page = out / "index.html"
    page.write_text(_PAGE.format(store=html.escape(str(store_path)), body="\n".join(sections)))
    return page


def _section(exp: Experiment, figures: list[Figure]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.label)}</td><td>{r.record.run_id}</td><td>{r.record.status}</td>"
        f"<td>{r.record.generations_done}</td><td>{r.record.replicates}</td>"
        f"<td>{html.escape(r.record.error or '')}</td></tr>"
        for r in exp.runs
    )
    figs = "".join(
        f'<figure><img src="{f.path.name}" alt="{html.escape(f.title)}">'
        f"<figcaption><b>{html.escape(f.title)}</b> {html.escape(f.caption)}</figcaption></figure>"
        for f in figures
    )
    return (
        f"<section><h2>{html.escape(exp.name)}</h2><table><tr><th>run</th><th>id</th>"
        f"<th>status</th><th>generations</th><th>replicates</th><th>error</th></tr>{rows}</table>"
        f"{figs}</section>"
    )


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>selfconsume report</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}}img{{max-width:100%}}
table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px}}
figure{{margin:1em 0}}figcaption{{font-size:13px;color:#333}}</style></head>
<body><h1>selfconsume report</h1><p>Store: {store}</p>
{body}
</body></html>
"""
