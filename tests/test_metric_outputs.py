"""A metric declares the names it outputs: `presets --kinds` lists them, the report draws an
indexed series from the declaration, and a new metric is one function plus its registration."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_raw
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.metrics.base import METRICS, MetricContext, MetricValues
from selfconsume.report.curves import metric_curves, series
from selfconsume.report.html import load_experiments

RUN = {
    "name": "outputs",
    "replicates": 3,
    "generations": 2,
    "data": {"kind": "gaussian", "n_real": 10, "n_test": 20, "params": {"dim": 1}},
    "model": {"kind": "gaussian"},
    "scheme": {"kind": "replace"},
}


def quartiles(ctx: MetricContext) -> MetricValues:
    """quartile_k: the k-th quartile of p_t's samples (k = 1, 2, 3) and their spread."""
    q = np.quantile(ctx.samples[..., 0], [0.25, 0.5, 0.75], axis=1)
    return {**{f"quartile_{k + 1}": q[k] for k in range(3)}, "quartile_spread": q[2] - q[0]}


@pytest.fixture
def toy_metric(monkeypatch):
    """A user's metric: the function above and its registration, nothing else."""
    METRICS.kinds()  # every built-in module imported first: none registers into the copy
    monkeypatch.setattr(METRICS, "_entries", dict(METRICS._entries))
    METRICS.register("quartiles", outputs=("quartile_{k}", "quartile_spread"))(quartiles)
    return "quartiles"


def test_presets_kinds_lists_every_metrics_outputs():
    rows = CliRunner().invoke(app, ["presets", "--kinds"]).output.splitlines()
    cells = [[c.strip() for c in row.split("│")] for row in rows if row.count("│") > 4]
    listed = {cells[i][2]: cells[i][4] for i in range(len(cells)) if cells[i][1] == "metrics"}
    for entry in METRICS.kinds():
        assert listed[entry.kind].startswith(entry.outputs[0]), entry.kind
    assert listed["mass"] == "mass_{i}"


def test_a_new_metric_is_its_function_and_registration(toy_metric, store_path, tmp_path):
    store, (run_id,) = run_raw({**RUN, "metrics": [toy_metric, "w2"]}, store_path)
    (exp,) = load_experiments(store)
    assert series(exp) == {"quartile_": ["quartile_1", "quartile_2", "quartile_3"]}
    figures = {f.path.name: f for f in metric_curves(exp, tmp_path)}
    assert set(figures) == {"outputs-metrics.png", "outputs-quartile-curves.png"}
    assert figures["outputs-quartile-curves.png"].title == "outputs: quartile by index"


def test_the_report_draws_only_what_the_run_declared_as_a_series(store_path, tmp_path):
    raw = {**RUN, "data": {"kind": "discrete", "n_real": 50, "params": {"probs": [0.5, 0.5]}}}
    store, _ = run_raw({**raw, "model": {"kind": "discrete"}, "metrics": ["mass"]}, store_path)
    (exp,) = load_experiments(store)
    assert series(exp) == {"mass_": ["mass_0", "mass_1"]}
    assert [f.path.name for f in metric_curves(exp, tmp_path)] == ["outputs-mass-curves.png"]
