"""Image figures (the talk's layout): grids of p_t's samples, one row per arm and one column per
generation (0, 5, 10, 15, 20), under a row of real images; the feature-space metrics with their
95% t-interval over replicates; and each arm's class histogram at the first and last generation.

The grids read the stored sample snapshots (a 4 x 4 tile of the first replicate per generation)
and the data's `image_shape`, from the data source rebuilt from the stored config for the built-in
image sets (digits, MNIST: no user code, no file the store names); a user's `image_file` is never
opened (a store may name any file): its images are drawn square, grey or colour, as their size
says. The curves and histograms read stored metrics only.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from selfconsume.config import Config
from selfconsume.errors import ConfigError
from selfconsume.report.base import Experiment, Figure, RunData, figure_maker, save
from selfconsume.report.curves import INTERVAL, mean_interval, panels, series
from selfconsume.report.scatter import panel_generations

TILE = 4
"""Images per side of a grid cell."""
GAP = 0.5
"""Shade of the lines between the images of a cell (0 black, 1 white)."""
CELL_INCHES = 1.5
LABEL_WIDTH = 20
"""Characters per line of a row label."""
IMAGE_KINDS = frozenset({"digits", "mnist"})
"""Data kinds whose source the report rebuilds for image_shape and the real row (built-in sets:
never a file the store names)."""
FEATURE_GROUPS = frozenset({"fd", "feature_prd", "fls", "classes", "memorization"})
"""Metric groups of labelled image data: an experiment listing one gets the image curves."""
HEADLINE = {
    "fd": "fd (lower is closer to the data)",
    "precision": "precision",
    "recall": "recall",
    "class_entropy": "class entropy (nats)",
    "reward_mean": "mean reward",
    "exp_reward_mean": "mean exp(reward)",
}


@dataclass(frozen=True)
class GridLayout:
    """What the grid shows: its row labels (real data first) and the generation of each column."""

    rows: list[str]
    generations: list[int]


def image_shape(cfg: Config, dim: int) -> tuple[tuple[int, int, int] | None, Any]:
    """(C, H, W) of a run's images and its data source (None unless it is a built-in image set:
    then square images, grey if dim is a square, colour if dim / 3 is one, else no shape)."""
    from selfconsume.data.base import DATA, Images

    source = None
    if cfg.data.kind in IMAGE_KINDS:
        try:
            source = DATA.get(cfg.data.kind).obj(cfg.data.params)
        except (ConfigError, OSError, ImportError):
            source = None
    if isinstance(source, Images) and math.prod(source.image_shape) == dim:
        return tuple(source.image_shape), source
    for channels in (1, 3):
        side = math.isqrt(dim // channels)
        if channels * side * side == dim:
            return (channels, side, side), None
    return None, None


def mosaic(x: np.ndarray, shape: tuple[int, int, int], side: int = TILE) -> np.ndarray:
    """The first side^2 images of x (n, C*H*W), pixels in [-1, 1], as one (side (H+1) - 1,
    side (W+1) - 1, C) array of values in [0, 1] with GAP-shaded lines between them (blank
    where fewer images exist)."""
    c, h, w = shape
    tiles = np.full((side * side, c, h + 1, w + 1), GAP)
    k = min(len(tiles), len(x))
    tiles[:k, :, :h, :w] = (np.clip(x[:k].reshape(k, c, h, w), -1, 1) + 1) / 2
    grid = tiles.reshape(side, side, c, h + 1, w + 1).transpose(0, 3, 1, 4, 2)
    return grid.reshape(side * (h + 1), side * (w + 1), c)[:-1, :-1]


def show(ax: plt.Axes, tile: np.ndarray) -> None:
    """A mosaic on an axis: grey for one channel, colour for three or four."""
    if tile.shape[-1] in (3, 4):
        ax.imshow(tile, interpolation="nearest")
    else:
        ax.imshow(tile[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")


def _image_rows(exp: Experiment) -> list[tuple[RunData, dict[int, np.ndarray]]]:
    rows = [(run, run.samples()) for run in exp.runs]
    return [
        (run, snaps) for run, snaps in rows if snaps and next(iter(snaps.values())).shape[-1] != 2
    ]


def grid_figure(exp: Experiment) -> tuple[plt.Figure, GridLayout] | None:
    """The talk's grid of one experiment (None unless it stored image snapshots of known shape)."""
    rows = _image_rows(exp)
    if not rows:
        return None
    dim = next(iter(rows[0][1].values())).shape[-1]
    shape, source = image_shape(rows[0][0].config, dim)
    if shape is None:
        return None
    gens = panel_generations(min(max(snaps) for _, snaps in rows))
    real = None
    if source is not None:
        try:
            real = source.sample(1, TILE * TILE * len(gens), np.random.default_rng(0))[0]
        except ConfigError:  # a real pool too small for a row of tiles
            real = None
    labels = (["real data"] if real is not None else []) + [run.label for run, _ in rows]
    fig, axes = plt.subplots(
        len(labels),
        len(gens),
        figsize=(CELL_INCHES * len(gens) + 1.2, CELL_INCHES * len(labels)),
        squeeze=False,
    )
    offset = len(labels) - len(rows)
    for j, g in enumerate(gens):
        if real is not None:
            show(axes[0, j], mosaic(real[j * TILE * TILE :], shape))
        for i, (_, snaps) in enumerate(rows, start=offset):
            if g in snaps:
                show(axes[i, j], mosaic(snaps[g][0], shape))
        axes[offset, j].set_title(f"t = {g}", fontsize=9)
    for i, label in enumerate(labels):
        axes[i, 0].set_ylabel(textwrap.fill(label, LABEL_WIDTH), fontsize=8)
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
        ax.spines[:].set_visible(False)
    return fig, GridLayout(labels, gens)


@figure_maker
def image_grid(exp: Experiment, out: Path) -> list[Figure]:
    """Samples of p_t per arm after 0, 5, 10, 15, 20 retrainings, real images above."""
    made = grid_figure(exp)
    if made is None:
        return []
    fig, layout = made
    has_real = layout.rows[0] == "real data"
    real = " The top row shows real images (the real pool) for reference." if has_real else ""
    caption = (
        f"{TILE * TILE} samples of p_t (first replicate, taken from the evaluation samples) after "
        f"the given number of retrainings; one row per arm.{real}"
    )
    return [save(fig, exp.path(out, "images"), f"{exp.name}: images across retrainings", caption)]


def _image_metrics(exp: Experiment) -> bool:
    return any(FEATURE_GROUPS & set(run.config.metrics) for run in exp.runs)


def _classes(exp: Experiment) -> list[str]:
    """class_hist_0, class_hist_1, ... in class order (the `classes` metric's series)."""
    return series(exp).get("class_hist_", [])


def _spans_decades(exp: Experiment, metric: str) -> bool:
    """Whether a positive metric's run means span more than a factor 20 (then drawn on a log axis)."""
    means = [np.nanmean(r.metrics[metric], axis=1) for r in exp.runs if metric in r.metrics]
    values = np.concatenate(means) if means else np.array([1.0])
    return bool(np.nanmin(values) > 0 and np.nanmax(values) > 20 * np.nanmin(values))


@figure_maker
def image_curves(exp: Experiment, out: Path) -> list[Figure]:
    """fd, precision, recall, class entropy and reward by generation, 95% t-interval shaded."""
    names = [m for m in HEADLINE if m in exp.metric_names]
    if not names or not _image_metrics(exp):
        return []
    classes = _classes(exp)
    cols = len(names) if len(names) <= 4 else 3
    fig, axes, legend_rows = panels(exp, names, cols, (3.8, 3.2), HEADLINE)
    for ax, metric in zip(axes.flat, names, strict=False):
        if metric == "fd" and _spans_decades(exp, metric):
            ax.set_yscale("log")
        if metric == "class_entropy" and classes:
            ax.axhline(math.log(len(classes)), ls=":", color="grey")
    caption = (
        "Classifier-feature metrics of p_t's samples against the test set: mean over replicates, "
        f"{INTERVAL}; one line per arm. The dotted line is the entropy of a balanced class "
        "histogram (log of the number of classes)."
    )
    rect = (0, (0.05 + 0.05 * legend_rows) / axes.shape[0], 1, 1)
    return [
        save(fig, exp.path(out, "image-metrics"), f"{exp.name}: image metrics", caption, rect=rect)
    ]


@figure_maker
def class_histograms(exp: Experiment, out: Path) -> list[Figure]:
    """Each arm's predicted-class histogram at the first and last generation (bars, with their
    interval)."""
    names = _classes(exp)
    runs = [run for run in exp.runs if all(m in run.metrics for m in names)]
    if not names or not runs:
        return []
    cols = min(3, len(runs))
    nrows = -(-len(runs) // cols)
    fig, axes = plt.subplots(
        nrows, cols, figsize=(4.2 * cols, 2.8 * nrows), squeeze=False, sharey=True
    )
    classes = np.arange(len(names))
    for ax, run in zip(axes.flat, runs, strict=False):
        hist = np.stack([run.metrics[m] for m in names], axis=-1)  # (G, R, classes)
        last = hist.shape[0] - 1
        for shift, g, color in ((-0.2, 0, "C7"), (0.2, last, "C3")):
            mean, lo, hi = mean_interval(hist[g].T)
            bars = np.stack([mean - lo, hi - mean])
            ax.bar(classes + shift, mean, 0.4, yerr=bars, color=color, label=f"t = {g}")
        ax.axhline(1 / len(names), ls=":", color="grey", lw=1)
        ax.set_title(textwrap.fill(run.label, 40), fontsize=9)
        ax.set(xticks=classes, xlabel="predicted class")
        ax.legend(fontsize=7)
    for ax in axes.flat[len(runs) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("share of samples")
    caption = (
        "Share of p_t's samples the data's classifier assigns to each class at the first and last "
        f"generation: mean over replicates, {INTERVAL}; dotted: a balanced histogram."
    )
    return [save(fig, exp.path(out, "class-histograms"), f"{exp.name}: class histograms", caption)]
