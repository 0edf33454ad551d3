"""Sampling bias (Alemohammad et al., ICLR 2024): precision and recall by generation, one line per
psi and one column per scheme, mean and 95% t-interval over replicates. It applies to an
experiment whose runs differ in `model.params.psi` and store `precision` and `recall`."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from selfconsume.report.base import Experiment, Figure, RunData, figure_maker, save, t_interval
from selfconsume.report.labels import scheme_label

METRICS = ("precision", "recall")


def psi_of(run: RunData) -> float:
    """The run's sampling bias ψ from its typed model params; a family whose params have no ψ
    samples without bias (ψ = 1)."""
    return float(getattr(run.config.model.params, "psi", 1.0))


def _runs(exp: Experiment) -> list[RunData]:
    runs = [r for r in exp.runs if all(m in r.metrics for m in METRICS)]
    return runs if len({psi_of(r) for r in runs}) > 1 else []


def sampling_bias_figure(runs: list[RunData]) -> plt.Figure:
    """Rows precision, recall; columns the schemes (talk order kept); a line per psi, darker for
    stronger bias, its 95% t-interval shaded."""
    schemes = list(dict.fromkeys(scheme_label(r.config) for r in runs))
    psis = sorted({psi_of(r) for r in runs}, reverse=True)
    colors = dict(zip(psis, plt.cm.viridis(np.linspace(0.85, 0.0, len(psis))), strict=True))
    fig, axes = plt.subplots(
        len(METRICS), len(schemes), figsize=(4.6 * len(schemes), 3.3 * len(METRICS)), squeeze=False
    )
    for run in sorted(runs, key=psi_of, reverse=True):
        col = schemes.index(scheme_label(run.config))
        for row, metric in enumerate(METRICS):
            mean, half = t_interval(run.metrics[metric])
            gens = np.arange(len(mean))
            ax, color = axes[row, col], colors[psi_of(run)]
            ax.plot(gens, mean, color=color, label=f"ψ = {psi_of(run):g}")
            ax.fill_between(gens, mean - half, mean + half, color=color, alpha=0.25)
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for col, scheme in enumerate(schemes):
        axes[0, col].set_title(scheme)
        axes[-1, col].set_xlabel("generation t")
        for row, metric in enumerate(METRICS):
            axes[row, col].set(ylim=(0, 1.02))
            if col == 0:
                axes[row, col].set_ylabel(metric)
    axes[-1, 0].legend(fontsize=8, loc="lower left")
    return fig


@figure_maker
def sampling_bias(exp: Experiment, out: Path) -> list[Figure]:
    """Precision and recall per generation for each psi and scheme, with 95% t-intervals."""
    runs = _runs(exp)
    if not runs:
        return []
    return [
        save(
            sampling_bias_figure(runs),
            exp.path(out, "psi"),
            f"{exp.name}: precision and recall under sampling bias ψ",
            "Mean over replicates with its 95% t-interval shaded; one line per ψ (darker: more "
            "biased), one column per scheme. The claim to check (Alemohammad et al., 2024): ψ < 1 "
            "keeps precision while the recall of fully synthetic chains falls faster.",
        )
    ]
