"""Generic figures: every metric against the generation, mean and 95% t-interval over replicates."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from selfconsume.errors import ConfigError
from selfconsume.metrics.base import METRICS, is_series, output_pattern
from selfconsume.report.base import Experiment, Figure, RunData, figure_maker, save, t_interval

MAX_PANELS = 12
MAX_LINES = 12
"""More runs than this cannot be told apart in one legend: such sweeps are read from their heat map
(two numeric keys, `report.stability_map`) or the export."""


def mean_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over replicates and its 95% t-interval, per generation (values (G, R)); with fewer
    than 3 replicates (a t-interval 9 to 13 times the spread), the replicates' range instead."""
    if values.shape[1] < 3:
        return np.nanmean(values, axis=1), np.nanmin(values, axis=1), np.nanmax(values, axis=1)
    mean, half = t_interval(values)
    return mean, mean - half, mean + half


def plot_metric(ax: plt.Axes, run: RunData, metric: str, color: str | None = None) -> None:
    values = run.metrics[metric]
    gens = np.arange(values.shape[0])
    mean, lo, hi = mean_interval(values)
    (line,) = ax.plot(gens, mean, label=run.label, color=color)
    ax.fill_between(gens, lo, hi, alpha=0.25, color=line.get_color())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def run_color(index: int) -> str:
    """One color per run, the same in every panel (a run missing a metric keeps its color)."""
    return f"C{index % 10}"


def legend_columns(labels: list[str]) -> int:
    """As many legend columns as the labels' length lets fit across a figure."""
    longest = max((len(label) for label in labels), default=0)
    return min(len(labels), 4 if longest <= 30 else 3 if longest <= 42 else 2) or 1


SERIES_FIGURES = {"mass_": ("mass-curves", "Mass per mode or state")}
"""Figures of the indexed series the metrics declare, by stem (others: `<stem>-curves`)."""
DRAWN_ELSEWHERE = {"class_hist_", "p0_perplexity_q"}
"""Series another maker draws: the class histograms of `report.images`, the perplexity
percentiles under p_0 of `report.text`."""


def series(exp: Experiment) -> dict[str, list[str]]:
    """The stored names of each indexed series (`mass_{i}` -> mass_0, mass_1, ...) that the
    runs' metric groups declare (`METRICS` outputs), by stem, in index order. A group the
    report does not know (a plug-in not imported here) declares nothing."""
    patterns: dict[str, re.Pattern[str]] = {}
    for run in exp.runs:
        for group in run.config.metrics:
            try:
                outputs = METRICS.get(group).outputs
            except ConfigError:
                continue
            for output in filter(is_series, outputs):
                patterns.setdefault(output.partition("{")[0], output_pattern(output))
    return {
        stem: sorted(found, key=lambda m: int(m[len(stem) :]))
        for stem, pattern in patterns.items()
        if (found := [m for m in exp.metric_names if pattern.match(m)])
    }


INTERVAL = "95% t-interval shaded (the replicates' range with fewer than 3)"


def panels(
    exp: Experiment, names: list[str], cols: int, size: tuple[float, float], titles: dict[str, str]
) -> tuple[plt.Figure, np.ndarray, int]:
    """One panel per metric, one line per run (its colour the same in every panel) with its
    interval, unused axes off, the legend below; returns the figure, its axes and legend rows."""
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax, metric in zip(axes.flat, names, strict=False):
        for i, run in enumerate(exp.runs):
            if metric in run.metrics:
                plot_metric(ax, run, metric, run_color(i))
        ax.set_title(titles.get(metric, metric), fontsize=10)
        ax.set_xlabel("generation")
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    ncol = legend_columns(labels)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8)
    return fig, axes, -(-len(labels) // ncol)


def curves_figure(
    exp: Experiment, names: list[str], path: Path, title: str, constant: str = ""
) -> Figure:
    """Save one panel per metric, one line per run with its 95% interval."""
    cols = min(3 if len(names) <= 9 else 4, len(names))
    fig, _, legend_rows = panels(exp, names, cols, (4.2, 3.2), {})
    caption = f"Mean over replicates, {INTERVAL}; one line per run.{constant}"
    return save(fig, path, title, caption, rect=(0, 0.06 + 0.03 * legend_rows, 1, 1))


def constant_value(exp: Experiment, metric: str) -> float | None:
    """The one value a metric takes at every generation of every run and replicate (such as the
    data classifier's held-out accuracy: a flat line, said in words instead), else None."""
    values = np.concatenate([r.metrics[metric].ravel() for r in exp.runs if metric in r.metrics])
    return float(values[0]) if values.size and np.all(values == values[0]) else None


@figure_maker
def metric_curves(exp: Experiment, out: Path) -> list[Figure]:
    """Every stored metric against the generation: mean over replicates with its 95% interval
    (for at most MAX_LINES runs)."""
    if len(exp.runs) > MAX_LINES:
        return []
    indexed = series(exp)
    in_series = {m for names in indexed.values() for m in names}
    names = sorted(m for m in exp.metric_names - in_series if not m.startswith("train_"))
    constants = {m: v for m in names if (v := constant_value(exp, m)) is not None}
    names = [m for m in names if m not in constants]
    said = "".join(
        f" {m} = {v:.4g} at every generation of every run." for m, v in constants.items()
    )
    groups = [("metrics", names[:MAX_PANELS], "Metrics by generation", said)]
    for stem, members in indexed.items():
        if stem not in DRAWN_ELSEWHERE:
            name = stem.rstrip("_")
            suffix, title = SERIES_FIGURES.get(stem, (f"{name}-curves", f"{name} by index"))
            groups.append((suffix, members, title, ""))
    return [
        curves_figure(exp, group, exp.path(out, suffix), f"{exp.name}: {title.lower()}", said)
        for suffix, group, title, said in groups
        if group
    ]
