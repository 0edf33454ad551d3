"""Warm-up figures: the collapse of sigma_t and W2 of Gaussian chains, with the closed forms overlaid."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from selfconsume.report.base import Experiment, Figure, RunData, figure_maker
from selfconsume.theory import gaussian as theory


def _is_warmup(run: RunData) -> bool:
    cfg = run.config
    return (
        cfg["model"]["kind"] == "gaussian"
        and cfg["data"]["kind"] == "gaussian"
        and cfg["data"]["params"].get("dim", 1) == 1
        and not cfg["model"]["population"]
        and cfg["curation"] is None
        and "std" in run.metrics
    )


def _theory_std(run: RunData, gens: np.ndarray) -> tuple[np.ndarray, str] | None:
    cfg = run.config
    sigma = cfg["data"]["params"].get("std", 1.0)
    n = cfg["data"]["n_real"]
    est = cfg["model"]["params"].get("estimator", "unbiased")
    scheme = cfg["scheme"]
    if scheme["kind"] == "replace" and scheme["n_synthetic"] in (None, n):
        return theory.expected_sigma(gens, n, sigma, est), r"theory $\alpha(n)^{t+1}\sigma$"
    if scheme["kind"] == "mix" and scheme["n_synthetic"] is None:
        var, _ = theory.expected_mix_moments(len(gens) - 1, n, scheme["lam"], sigma, est)
        return np.sqrt(var), r"theory $\sqrt{E[\sigma_t^2]}$"
    return None


@figure_maker
def sigma_collapse(exp: Experiment, out: Path) -> list[Figure]:
    """Mean and median sigma_t over replicates (log scale) with the closed form overlaid."""
    runs = [r for r in exp.runs if _is_warmup(r)]
    if not runs:
        return []
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        std = run.metrics["std"]
        gens = np.arange(std.shape[0])
        (line,) = ax.plot(gens, std.mean(1), label=f"{run.label} (mean)")
        ax.plot(
            gens, np.median(std, 1), ls=":", color=line.get_color(), label=f"{run.label} (median)"
        )
        th = _theory_std(run, gens)
        if th is not None:
            ax.plot(gens, th[0], ls="--", color="k", lw=0.8)
        if "w2_sq" in run.metrics:
            w2 = run.metrics["w2_sq"]
            (l2,) = ax2.plot(gens, w2.mean(1), label=run.label)
            cfg = run.config
            if cfg["scheme"]["kind"] == "replace" and cfg["scheme"]["n_synthetic"] is None:
                ax2.plot(
                    gens,
                    theory.expected_w2_sq(
                        gens,
                        cfg["data"]["n_real"],
                        cfg["data"]["params"].get("std", 1.0),
                        cfg["model"]["params"].get("estimator", "unbiased"),
                    ),
                    ls="--",
                    color=l2.get_color(),
                    lw=0.9,
                )
    ax.set_yscale("log")
    ax.set_xlabel("generation t")
    ax.set_ylabel(r"$\sigma_t$")
    ax.set_title(r"$\sigma_t$ over replicates (dashed: closed form)")
    ax.legend(fontsize=7)
    ax2.set_xlabel("generation t")
    ax2.set_ylabel(r"$E[W_2^2(p_t, p_{data})]$")
    ax2.set_title(r"$W_2^2$ to the truth (dashed: closed form)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    path = out / f"{exp.name}-sigma.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [
        Figure(
            path,
            f"{exp.name}: collapse of sigma_t",
            "Left: mean (solid) and median (dotted) of sigma_t over replicates, closed form dashed. "
            "Right: mean W2^2 between p_t and the truth, closed form dashed.",
        )
    ]
