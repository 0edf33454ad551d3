"""Text figures and tables: the collision probability of self-consuming unigram fits against the
exact laws of selfconsume.theory.text (Seddik et al.'s under replace, its mixed analogue), and
the real tokens their samples lost; Shumailov et al.'s histograms of the perplexity of p_t's
samples under the generation-0 model, drawn from the stored percentiles, and their tail.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter

from selfconsume.metrics.text import PERCENTILES
from selfconsume.report.base import (
    Experiment,
    Figure,
    RunData,
    TheoryRow,
    curve,
    figure_maker,
    save,
    table_maker,
    theory_rows,
)
from selfconsume.report.curves import INTERVAL, panels
from selfconsume.report.labels import synthetic_count
from selfconsume.theory import text as theory

BINS = 30
"""Histogram bins, log-spaced over the perplexities every shown generation of a run reaches."""
SHOWN_GENERATIONS = 8
"""At most this many generations per panel (evenly spaced, first and last always)."""
MAX_ARMS = 6
"""At most this many arms get a histogram panel each."""


def collision_law(run: RunData) -> np.ndarray | None:
    """E[collision] per generation where theory.text has it for this run, given generation 0's
    measured mean, else None: a unigram ngram fit by maximum likelihood (order 1, add_k 0, psi 1),
    replace or mix, no curation and no cures."""
    cfg = run.config
    if cfg.model.kind != "ngram" or "collision" not in run.metrics:
        return None
    params = cfg.model.params
    if params.order != 1 or params.add_k != 0.0 or params.psi != 1.0:
        return None
    if cfg.scheme.kind not in ("replace", "mix") or cfg.curation is not None or cfg.cures:
        return None
    collision = run.metrics["collision"]
    gens = np.arange(len(collision))
    s0 = float(np.mean(collision[0]))
    length = cfg.data.params.length
    n_synthetic = synthetic_count(cfg) * length
    if cfg.scheme.kind == "replace":
        return theory.collision_replace(gens, n_synthetic, s0)
    return theory.collision_mix(gens, cfg.data.n_real * length, n_synthetic, s0)


def _text_runs(exp: Experiment) -> list[RunData]:
    return [r for r in exp.runs if "perplexity" in r.metrics]


@figure_maker
def text_collapse(exp: Experiment, out: Path) -> list[Figure]:
    """Collision probability per generation with its 95% interval, the exact law dashed; the
    real tokens p_t's samples lost."""
    runs = _text_runs(exp)
    if not runs:
        return []
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        color = curve(ax, run.label, run.metrics["collision"], collision_law(run))
        lost = run.metrics.get("support_lost_1")
        if lost is not None:
            ax2.plot(np.nanmean(lost, 1), color=color)
    ax.set(xlabel="generation t", ylabel=r"$E\,\sum_w p_t(w)^2$")
    ax.set_title("collision probability (dashed: exact law)")
    ax.legend(fontsize=7)
    ax2.set(xlabel="generation t", ylabel="mean fraction of real tokens lost")
    ax2.set_title("support lost by p_t's samples (support_lost_1)")
    caption = (
        "Left: mean collision probability Σ p_t(w)² of p_t's token law with its 95% t-interval; "
        "dashed, the exact laws of selfconsume.theory.text from generation 0's mean (replace: "
        "Seddik et al.'s 1 − (1 − 1/N)^t (1 − S₀), N tokens per fit; mix: its λ-mixed analogue). "
        "Right: the mean fraction of the real set's distinct tokens that none of p_t's n_test "
        "samples contains."
    )
    return [save(fig, exp.path(out, "text"), f"{exp.name}: collision and perplexity", caption)]


@table_maker
def text_theory(exp: Experiment) -> list[TheoryRow]:
    """E[collision] at generations 1, the middle and the last, wherever the exact law applies."""
    rows = []
    for run in _text_runs(exp):
        law = collision_law(run)
        if law is not None:
            rows += theory_rows(run.label, "E Σ p_t(w)²", run.metrics["collision"], law)
    return rows


def _minor_label(value: float, _: object) -> str:
    """A log axis's minor tick label: 2, 3 and 5 times a power of ten only (others would touch)."""
    if value <= 0:
        return ""
    return f"{value:g}" if round(value / 10 ** np.floor(np.log10(value))) in (2, 3, 5) else ""


def plain_log(axis: matplotlib.axis.Axis) -> None:
    """A log axis labelled with plain numbers (10, 20, 50), not powers of ten."""
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(_minor_label))


def _p0_runs(exp: Experiment) -> list[RunData]:
    return [r for r in exp.runs if "p0_perplexity_q50" in r.metrics]


def shown_generations(count: int) -> np.ndarray:
    """Up to SHOWN_GENERATIONS generations of 0..count-1, evenly spaced, first and last kept."""
    return np.unique(np.linspace(0, count - 1, min(count, SHOWN_GENERATIONS)).round().astype(int))


def percentiles(run: RunData) -> np.ndarray:
    """log of the stored percentiles of the per-sequence perplexity under p_0, (G, R, K)."""
    stacked = np.stack([run.metrics[f"p0_perplexity_q{k}"] for k in PERCENTILES], axis=-1)
    with np.errstate(divide="ignore"):
        return np.log(stacked)


def mixture_histogram(log_q: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of samples per bin (len(edges) - 1,) of the replicates' mixture: each replicate's
    CDF interpolated linearly between its percentiles log_q (R, K), averaged, differenced over
    the bin edges (in log perplexity). The 1% below q1 and above q99 are not drawn."""
    levels = np.asarray(PERCENTILES) / 100
    top = edges[-1] + 1.0  # an infinite percentile (a sample p_0 gives probability 0) lies beyond
    cdf = [np.interp(edges, np.where(np.isfinite(q), q, top), levels, 0.0, 1.0) for q in log_q]
    return np.diff(np.mean(cdf, axis=0))


@figure_maker
def p0_perplexity_histograms(exp: Experiment, out: Path) -> list[Figure]:
    """Shumailov et al.'s figure: per arm, the histogram of the perplexity of p_t's samples under
    the generation-0 model, one curve per generation; then its median and tail by generation."""
    runs = _p0_runs(exp)[:MAX_ARMS]
    shown = [percentiles(run)[shown_generations(len(run.metrics["p0_perplexity"]))] for run in runs]
    finite = np.concatenate([q[np.isfinite(q)] for q in shown]) if runs else np.empty(0)
    if not finite.size:  # no run, or p_0 gave every shown sample probability 0
        return []
    edges = np.linspace(finite.min(), finite.max(), BINS + 1)  # the same bins in every panel
    cols = min(3, len(runs))
    rows = -(-len(runs) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False, sharex=True
    )
    for ax, run in zip(axes.flat, runs, strict=False):
        log_q = percentiles(run)
        gens = shown_generations(len(log_q))
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(gens)))
        for g, color in zip(gens, colors, strict=True):
            share = mixture_histogram(log_q[g], edges)
            ax.stairs(share, np.exp(edges), color=color, lw=1.4, label=f"t = {g}")
        ax.set_xscale("log")
        plain_log(ax.xaxis)
        ax.set(xlabel="perplexity of a sample under p_0", ylabel="share of samples")
        ax.set_title(run.label, fontsize=9)
        ax.legend(fontsize=7, ncol=2)
    for ax in axes.flat[len(runs) :]:
        ax.axis("off")
    caption = (
        "Perplexity exp(−log p_0(x) / L) of each sample x of p_t under the generation-0 model "
        "p_0 (Shumailov et al.'s figure), one panel per arm, one curve per generation (dark: "
        f"early, light: late); the histogram of all replicates' samples, rebuilt from each "
        f"replicate's stored percentiles {PERCENTILES[0]}..{PERCENTILES[-1]} (the lowest and "
        "highest 1% are not drawn)."
    )
    figures = [
        save(fig, exp.path(out, "p0-perplexity"), f"{exp.name}: perplexity under p_0", caption)
    ]
    names = ["p0_perplexity", "p0_perplexity_q50", "p0_perplexity_q90", "p0_perplexity_q99"]
    titles = {
        "p0_perplexity": "perplexity of p_t's samples under p_0",
        **{f"p0_perplexity_q{k}": f"its {k}th percentile" for k in (50, 90, 99)},
    }
    fig, _, legend_rows = panels(exp, names, 4, (3.6, 3.0), titles)
    caption = (
        "Perplexity of p_t's samples under the generation-0 model: of all samples together, and "
        f"the median and tail percentiles of the samples' own perplexities; {INTERVAL}."
    )
    figures.append(
        save(
            fig,
            exp.path(out, "p0-perplexity-tail"),
            f"{exp.name}: perplexity under p_0 by generation",
            caption,
            rect=(0, 0.08 + 0.04 * legend_rows, 1, 1),
        )
    )
    return figures
