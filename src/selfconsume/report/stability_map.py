"""The stability map: W2(last) / W2(0) over a two-key numeric sweep, as a heat map.

It applies to an experiment whose runs form a complete grid over exactly two numeric swept keys
(a key the others fix, such as scheme.params.n_synthetic = lam n_real, is derived, not a third) and
store `w2` (or else `sliced_w2`) at generation 0 and later. Each cell is the mean over replicates
of the paired ratio W2(last) / W2(0) with its 95% interval; below 1 the loop contracts towards the
data (the stability theorem of Bertrand et al., ICLR 2024), above 1 it drifts away. The contour
marks 1. Runs that store `high_quality` (mixtures with modes) get a second panel, its paired change
last minus first: W2 on a finite test set has a sampling floor and can miss samples leaving the
modes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.ticker import FuncFormatter

from selfconsume.report.base import Experiment, Figure, figure_maker, save, t_interval
from selfconsume.store.records import swept_keys

METRICS = ("w2", "sliced_w2")
DIFFERENCES = ("high_quality",)
"""Metrics drawn beside the W2 map as last minus first generation, when every run stores them."""
AXIS_NAMES = {
    "scheme.params.lam": "λ (synthetic samples per real one)",
    "model.params.train_steps": "generation-0 training steps",
    "model.params.start_scale": "p₀'s std ÷ p_data's (start_scale)",
    "model.params.start_shift": "p₀'s mean shift (start_shift)",
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def grid_keys(exp: Experiment) -> tuple[str, str] | None:
    """(x key, y key) of a complete two-key numeric grid (λ on x when swept), or None.

    A key whose value the axes before it fix in every run (scheme.params.n_synthetic, fixed by scheme.params.lam
    and data.n_real) is derived, not an axis."""
    flats = [r.record.flat for r in exp.runs]
    keys = swept_keys([r.record for r in exp.runs])
    if not keys or not all(_is_number(f.get(k)) for f in flats for k in keys):
        return None
    axes: list[str] = []
    for key in keys:
        if not _determined(flats, axes, key):
            axes.append(key)
    if len(axes) != 2:
        return None
    cells = {(f[axes[0]], f[axes[1]]) for f in flats}
    sizes = [len({f[a] for f in flats}) for a in axes]
    if len(cells) != len(flats) or len(cells) != sizes[0] * sizes[1]:
        return None
    x, y = axes
    return (y, x) if y == "scheme.params.lam" else (x, y)


def _determined(flats: list[dict[str, Any]], axes: list[str], key: str) -> bool:
    """Whether the values of `axes` fix the value of `key` in every run (n_synthetic by lam and
    n_real): then `key` is derived, not an axis of its own."""
    if not axes:
        return False
    given = [tuple(f[a] for a in axes) for f in flats]
    return len(set(given)) == len(set(zip(given, (f[key] for f in flats), strict=True)))


def _metric(exp: Experiment) -> str | None:
    """The W2-type metric every run stores at generation 0 and at least one later generation."""
    return next((name for name in METRICS if _stored(exp, name)), None)


def paired_grid(
    exp: Experiment, x_key: str, y_key: str, metric: str, ratio: bool = True
) -> tuple[list[float], list[float], np.ndarray, np.ndarray, np.ndarray]:
    """x values, y values, the mean over replicates of the paired change of `metric`, last over
    first generation (ratio) or last minus first (Y, X; NaN where a ratio's first value is 0), the
    half-width of its 95% Student t-interval, and the mean first value of each y row."""
    xs = sorted({r.record.flat[x_key] for r in exp.runs})
    ys = sorted({r.record.flat[y_key] for r in exp.runs})
    mean, half = np.full((len(ys), len(xs)), np.nan), np.zeros((len(ys), len(xs)))
    start = np.zeros(len(ys))
    for run in exp.runs:
        flat = run.record.flat
        i, j = ys.index(flat[y_key]), xs.index(flat[x_key])
        values = run.metrics[metric]
        with np.errstate(divide="ignore", invalid="ignore"):
            change = values[-1] / values[0] if ratio else values[-1] - values[0]
        change = change[np.isfinite(change)]  # a start with W2(0) = 0 has no ratio
        if change.size:
            (mean[i, j],), (half[i, j],) = t_interval(change[None, :])
        start[i] += values[0].mean() / len(xs)
    return xs, ys, mean, half, start


def _number(value: float) -> str:
    """Two decimals, or one significant digit in scientific notation below 0.01."""
    return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.0e}"


def _tick(value: float) -> str:
    return f"{value:g}"


def _panel(
    fig: Any, ax: Any, exp: Experiment, keys: tuple[str, str], metric: str, ratio: bool
) -> bool:
    """One heat map: the paired ratio on a log scale centred at 1 (blue below), or the difference
    centred at 0 (blue above: `high_quality` rises); the contour marks no change. Returns whether
    the map crosses it."""
    xs, ys, mean, half, start = paired_grid(exp, *keys, metric, ratio)
    last = exp.runs[0].metrics[metric].shape[0] - 1
    shown, centre, cmap = (np.log10(mean), 1.0, "RdBu_r") if ratio else (mean, 0.0, "RdBu")
    margin = 0.2 if ratio else 0.05
    norm = TwoSlopeNorm(0.0, min(np.nanmin(shown), -margin), max(np.nanmax(shown), margin))
    image = ax.imshow(shown, cmap=cmap, norm=norm, origin="lower", aspect="auto")
    form = FuncFormatter(lambda v, _: f"{10**v:.2g}") if ratio else None
    bar = fig.colorbar(image, ax=ax, format=form)
    bar.set_label(f"{metric}({last}) / {metric}(0)" if ratio else f"{metric}({last}) − {metric}(0)")
    crosses = bool(np.nanmin(mean) < centre < np.nanmax(mean))
    if crosses:
        ax.contour(np.arange(len(xs)), np.arange(len(ys)), shown, levels=[0.0], colors="k")
    for (i, j), value in np.ndenumerate(mean):
        if np.isnan(value):
            ax.text(j, i, f"{metric}(0) = 0", ha="center", va="center", fontsize=7)
            continue
        text = _number(value) + (f"\n±{_number(half[i, j])}" if half[i, j] > 0 else "")
        ax.text(
            j,
            i,
            text,
            ha="center",
            va="center",
            fontsize=7,
            color="w" if abs(norm(shown[i, j]) - 0.5) > 0.3 else "k",
            fontweight="bold" if 0 < half[i, j] < abs(value - centre) else "normal",
        )
    ax.set_xticks(range(len(xs)), [_tick(v) for v in xs])
    ax.set_yticks(
        range(len(ys)),
        [f"{_tick(v)}\n{metric}(0) = {w:.2g}" for v, w in zip(ys, start, strict=True)],
    )
    ax.set_xlabel(AXIS_NAMES.get(keys[0], keys[0]))
    ax.set_ylabel(AXIS_NAMES.get(keys[1], keys[1]))
    return crosses


def _draw(exp: Experiment, keys: tuple[str, str], metric: str, out: Path) -> Figure:
    panels = [(metric, True)] + [(m, False) for m in DIFFERENCES if _stored(exp, m)]
    xs, ys = (len({r.record.flat[k] for r in exp.runs}) for k in keys)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(len(panels) * (1.1 * xs + 3.4), 0.75 * ys + 2.2), squeeze=False
    )
    crosses = [
        _panel(fig, ax, exp, keys, *panel) for ax, panel in zip(axes[0], panels, strict=True)
    ]
    _, _, mean, half, _ = paired_grid(exp, *keys, metric)
    where = "the black contour marks no change" if any(crosses) else _verdict(mean)
    axes[0, 0].set_title(f"{exp.name}: does the loop contract?", fontsize=9)
    interval = " ± its 95% interval (bold: the interval excludes no change)"
    caption = (
        f"Left: {metric} to the data at the last generation over {metric} at generation 0, the "
        f"mean over replicates of the paired ratio{interval if np.any(half > 0) else ''}; blue "
        "cells contract, red ones drift away. Each row's label gives its mean "
        f"{metric}(0), the first model's error; {where}."
    )
    if len(panels) > 1:
        axes[0, 1].set_title("high-quality fraction, last − first generation", fontsize=9)
        caption += (
            " Right: the paired change of the high-quality fraction (samples within 3 std of a "
            "mode), blue up, red down."
        )
    return save(fig, exp.path(out, "map"), f"{exp.name}: stability map", caption)


def _stored(exp: Experiment, metric: str) -> bool:
    """Whether every run stores `metric` at generation 0 and at least one later generation."""
    return all(metric in r.metrics and r.metrics[metric].shape[0] > 1 for r in exp.runs)


def _verdict(mean: np.ndarray) -> str:
    return "every cell contracts" if np.nanmax(mean) < 1 else "no cell contracts"


@figure_maker
def stability_map(exp: Experiment, out: Path) -> list[Figure]:
    """The heat map of W2(last) / W2(0) over a two-key numeric sweep (see the module doc)."""
    keys = grid_keys(exp)
    metric = _metric(exp) if keys else None
    if keys is None or metric is None or np.all(np.isnan(paired_grid(exp, *keys, metric)[2])):
        return []
    return [_draw(exp, keys, metric, out)]
