"""Figures show only what they can: no empty reward panel at beta = inf, no flat line for a metric
that never changes (said in the caption), class-histogram bars inside the replicates' range."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import curated_discrete, record
from matplotlib.container import BarContainer

from selfconsume.report import curation, curves, images
from selfconsume.report.base import Experiment, RunData

DIGITS = {
    "name": "panels",
    "data": {"kind": "digits", "n_real": 40, "n_test": 30},
    "model": {"kind": "kde"},
    "metrics": ["fd", "classes"],
}


@pytest.fixture
def drawn(monkeypatch):
    """The titles of each saved figure's panels and its caption, by file name."""
    seen: dict[str, tuple[list[str], str]] = {}
    for module in (curation, curves, images):
        original = module.save

        def keep(fig, path, title, caption, rect=None, original=original):
            seen[path.name] = ([ax.get_title() for ax in fig.axes if ax.axison], caption)
            return original(fig, path, title, caption, rect)

        monkeypatch.setattr(module, "save", keep)
    return seen


def experiment(raw: dict, metrics: dict[str, np.ndarray]) -> Experiment:
    exp = Experiment(raw["name"])
    exp.runs.append(RunData(record(raw), metrics, "arm", store=None))
    return exp


def test_a_reward_figure_at_beta_inf_has_no_empty_panel(drawn, tmp_path):
    raw = curated_discrete("inf", 2, 2, 10, metrics=("reward",), beta=float("inf"))
    exp = experiment(raw, {"reward_mean": np.arange(6.0).reshape(3, 2)})
    curation.reward_curves(exp, tmp_path)
    assert drawn["inf-reward.png"][0] == ["reward_mean"]
    both = {m: np.arange(6.0).reshape(3, 2) for m in curation.PANELS}
    curation.reward_curves(experiment(curated_discrete("one", 2, 2, 10), both), tmp_path)
    assert drawn["one-reward.png"][0] == list(curation.PANELS)


def test_a_metric_that_never_changes_is_said_not_drawn(drawn, tmp_path):
    exp = experiment(
        DIGITS, {"fd": np.arange(6.0).reshape(3, 2), "classifier_accuracy": np.full((3, 2), 0.5)}
    )
    curves.metric_curves(exp, tmp_path)
    titles, caption = drawn["panels-metrics.png"]
    assert titles == ["fd"] and "classifier_accuracy = 0.5 at every generation" in caption
    exp.runs[0].metrics["classifier_accuracy"][2, 1] = 0.25  # it changes: drawn
    curves.metric_curves(exp, tmp_path)
    assert drawn["panels-metrics.png"][0] == ["classifier_accuracy", "fd"]


def test_class_histogram_bars_stay_in_the_range_of_two_replicates(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    shares = rng.dirichlet(np.ones(10), size=(3, 2))  # (G, R, classes)
    exp = experiment(DIGITS, {f"class_hist_{j}": shares[..., j] for j in range(10)})
    figures = {}
    monkeypatch.setattr(images, "save", lambda fig, path, *_: figures.setdefault(path.name, fig))
    images.class_histograms(exp, tmp_path)
    ax = figures["panels-class-histograms.png"].axes[0]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    for container, g in zip(bars, (0, 2), strict=True):
        (lines,) = container.errorbar.lines[2]
        ends = np.array([[start[1], end[1]] for start, end in lines.get_segments()])
        np.testing.assert_allclose(ends, np.sort(shares[g].T, axis=1))
    plt.close("all")
