"""Warm-up figures: the collapse of sigma_t and W2 of Gaussian chains, with the closed forms overlaid."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from selfconsume.report.base import Experiment, Figure, RunData, figure_maker, save
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


class Series(NamedTuple):
    """A warm-up run's setting (n_real, sigma of the truth, estimator) and its sigma_t (G, R)."""

    n: int
    sigma: float
    estimator: str
    std: np.ndarray
    gens: np.ndarray


def _series(run: RunData) -> Series:
    cfg = run.config
    std = run.metrics["std"]
    return Series(
        cfg["data"]["n_real"],
        cfg["data"]["params"].get("std", 1.0),
        cfg["model"]["params"].get("estimator", "unbiased"),
        std,
        np.arange(std.shape[0]),
    )


def _warmup_runs(exp: Experiment, scheme: str) -> list[RunData]:
    """The experiment's 1-D Gaussian warm-up runs under `scheme` with its default batch size."""
    return [
        r
        for r in exp.runs
        if _is_warmup(r)
        and r.config["scheme"]["kind"] == scheme
        and r.config["scheme"]["n_synthetic"] is None
    ]


@figure_maker
def sigma_collapse(exp: Experiment, out: Path) -> list[Figure]:
    """Mean and median sigma_t over replicates (log scale) and mean W2^2, closed forms overlaid."""
    runs = _warmup_runs(exp, "replace")
    if not runs:
        return []
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        n, sigma, est, std, gens = _series(run)
        (line,) = ax.plot(gens, std.mean(1), label=f"{run.label} (mean)")
        color = line.get_color()
        ax.plot(gens, np.median(std, 1), ls=":", color=color, label=f"{run.label} (median)")
        ax.plot(gens, theory.expected_sigma(gens, n, sigma, est), ls="--", color="k", lw=0.8)
        if "w2_sq" in run.metrics:
            ax2.plot(gens, run.metrics["w2_sq"].mean(1), color=color, label=run.label)
            ax2.plot(gens, theory.expected_w2_sq(gens, n, sigma, est), ls="--", color="k", lw=0.8)
    ax.set_yscale("log")
    ax.set(xlabel="generation t", ylabel=r"$\sigma_t$")
    ax.set_title(r"$\sigma_t$ over replicates (dashed: $\alpha(n)^{t+1}\sigma$)")
    ax.legend(fontsize=7)
    ax2.set(xlabel="generation t", ylabel=r"$E[W_2^2(p_t, p_{data})]$")
    ax2.set_title(r"$W_2^2$ to the truth (dashed: closed form)")
    ax2.legend(fontsize=7)
    return [
        save(
            fig,
            out / f"{exp.name}-sigma.png",
            f"{exp.name}: collapse of sigma_t",
            "Left: mean (solid) and median (dotted) of sigma_t over replicates, closed form dashed. "
            "Right: mean W2^2 between p_t and the truth, closed form dashed.",
        )
    ]


@figure_maker
def mixed_variance(exp: Experiment, out: Path) -> list[Figure]:
    """Mix scheme: mean sigma_t^2 against its exact recursion, and sigma_t against fully synthetic."""
    runs = _warmup_runs(exp, "mix")
    if not runs:
        return []
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        n, sigma, est, std, gens = _series(run)
        lam = run.config["scheme"]["lam"]
        (line,) = ax.plot(gens, (std**2).mean(1), label=run.label)
        expected, _ = theory.expected_mix_moments(len(gens) - 1, n, lam, sigma, est)
        ax.plot(gens, expected, ls="--", color=line.get_color(), lw=0.9)
        ax2.plot(gens, std.mean(1), color=line.get_color(), label=run.label)
    ax2.plot(
        gens,
        theory.expected_sigma(gens, n, sigma, est),
        "k--",
        lw=0.9,
        label="fully synthetic (theory)",
    )
    ax.set(xlabel="generation t", ylabel=r"mean $\sigma_t^2$", ylim=(0, None))
    ax.set_title(r"mean $\sigma_t^2$ (dashed: exact finite-sample recursion)")
    ax.legend(fontsize=8)
    ax2.set(xlabel="generation t", ylabel=r"mean $\sigma_t$", yscale="log")
    ax2.set_title(r"$\sigma_t$ stays away from 0 with real data")
    ax2.legend(fontsize=8)
    return [
        save(
            fig,
            out / f"{exp.name}-variance.png",
            f"{exp.name}: retraining with real data mixed in",
            "Left: mean sigma_t^2 over replicates per lam, dashed the exact recursion "
            "(theory.expected_mix_moments). Right: mean sigma_t against the fully synthetic closed "
            "form alpha(n)^(t+1) sigma (black dashed).",
        )
    ]
