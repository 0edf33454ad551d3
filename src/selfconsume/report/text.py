"""Text figures and tables: the collision probability of self-consuming unigram fits against the
exact laws of selfconsume.theory.text (Seddik et al.'s under replace, its mixed analogue), and
the real tokens their samples lost.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from selfconsume.report.base import (
    Experiment,
    Figure,
    RunData,
    TheoryRow,
    figure_maker,
    mean_se,
    save,
    t_interval,
    table_maker,
)
from selfconsume.report.labels import synthetic_count
from selfconsume.theory import text as theory


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
        collision = run.metrics["collision"]
        gens = np.arange(len(collision))
        mean, half = t_interval(collision)
        (line,) = ax.plot(gens, mean, label=run.label)
        ax.fill_between(gens, mean - half, mean + half, color=line.get_color(), alpha=0.2)
        law = collision_law(run)
        if law is not None:
            ax.plot(gens, law, ls="--", color="k", lw=0.8)
        lost = run.metrics.get("support_lost_1")
        if lost is not None:
            ax2.plot(gens, np.nanmean(lost, 1), color=line.get_color())
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
        if law is None:
            continue
        mean, se = mean_se(run.metrics["collision"])
        last = len(law) - 1
        for g in sorted({1, last // 2, last} & set(range(last + 1))):
            rows.append(TheoryRow(run.label, "E Σ p_t(w)²", g, law[g], mean[g], se[g]))
    return rows
