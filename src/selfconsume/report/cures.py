"""Figures of the cures (selfconsume.loop.cures): each sweeps one cure's strength and shows a
metric at the last generation against it, with the closed form where one exists.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from selfconsume.data.regression import RegressionSource
from selfconsume.report.base import (
    Experiment,
    Figure,
    RunData,
    curve,
    figure_maker,
    save,
    t_interval,
)
from selfconsume.report.labels import synthetic_count
from selfconsume.theory import neon, weighting
from selfconsume.theory import regression as regression_theory


def cure_value(run: RunData, kind: str, key: str) -> float | None:
    """The run's value of cures.<kind>.<key>, or None when the run has no such cure."""
    cure = (run.config.cures or {}).get(kind)
    return None if cure is None else float(getattr(cure, key))


def _first_error(run: RunData) -> float | None:
    """E[error_0 | X] of a fixed-design OLS run with true sigma (what the weighting law scales)."""
    cfg = run.config
    if cfg.data.kind != "regression" or cfg.model.kind != "regression":
        return None
    data, model = cfg.data.params, cfg.model.params
    if data.design != "fixed" or model.ridge != 0 or model.noise != "true_sigma":
        return None
    source = RegressionSource(data)
    x = source.fixed_design(cfg.data.n_real)
    args = (x, source.design_cov, source.w_star, data.noise_std, 0.0, 0, "replace")
    return float(regression_theory.fixed_design_error(*args)[0])


def weighting_law(run: RunData) -> tuple[float, float] | None:
    """(E[error_0], rho) where theory.weighting applies: fixed-design OLS with true sigma, the
    fresh scheme with n_synthetic a multiple of n_real, no curation, psi = 1."""
    cfg = run.config
    n, m = cfg.data.n_real, synthetic_count(cfg)
    if cfg.scheme.kind != "fresh" or not m or m % n or cfg.curation is not None:
        return None
    if getattr(cfg.model.params, "psi", 1.0) != 1.0:  # a family without psi samples unbiased
        return None
    first = _first_error(run)
    return None if first is None else (first, n / m)


@figure_maker
def real_weight_sweep(exp: Experiment, out: Path) -> list[Figure]:
    """Test error at the last generation against the real rows' weight, the exact law dashed."""
    runs = [(r, cure_value(r, "real_weight", "real_weight")) for r in exp.runs]
    runs = sorted(
        ((r, w) for r, w in runs if w is not None and "test_error" in r.metrics),
        key=lambda rw: rw[1],
    )
    if len(runs) < 2:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    weights = np.array([w for _, w in runs])
    stats = [t_interval(r.metrics["test_error"]) for r, _ in runs]
    last = len(runs[0][0].metrics["test_error"]) - 1
    means = np.array([m[-1] for m, _ in stats])
    halves = np.array([h[-1] for _, h in stats])
    ax.errorbar(weights, means, yerr=halves, fmt="o", capsize=3, label=f"simulation, t = {last}")
    law = weighting_law(runs[0][0])
    if law is not None:
        first, rho = law
        grid = np.linspace(max(weights.min(), 0.05), 1.0, 200)
        ax.plot(
            grid,
            first * np.array([weighting.error_factor(last, w, rho)[-1] for w in grid]),
            "k--",
            lw=0.9,
            label="exact law at t",
        )
        best = weighting.optimal_real_weight(rho)
        ax.axvline(best, color="tab:red", lw=0.8, label=f"optimum w* = {best:.3f}")
    ax.set(
        xlabel="real weight w (share of the training weight on real rows)",
        ylabel="test error (mean, 95% interval)",
    )
    ax.set_title("weighting real against synthetic data")
    ax.legend(fontsize=8)
    caption = (
        "Test error at the last generation against the real rows' share of the weight, with its "
        "95% t-interval; dashed: the exact law of selfconsume.theory.weighting, red: its optimum "
        "(sqrt(rho (rho + 4)) - rho) / 2, the golden ratio 1/phi at rho = n_real / n_synthetic = 1."
    )
    return [save(fig, exp.path(out, "real-weight"), f"{exp.name}: real-data weight", caption)]


VERIFIER_METRICS = ("test_error", "fd")
"""What the verifier figure shows, the first one a run stores: regression's test error, or the
Fréchet distance in the data classifier's features for images."""


def _verifier_runs(exp: Experiment) -> tuple[str, list[tuple[RunData, float, float]]]:
    """The metric shown and (run, a, b) of the experiment's runs curated by a verifier."""
    for name in VERIFIER_METRICS:
        out = []
        for run in exp.runs:
            curation = run.config.curation
            if curation and curation.kind == "verifier" and name in run.metrics:
                params = curation.params
                out.append((run, float(params.accept_good), float(params.reject_bad)))
        if out:
            return name, sorted(out, key=lambda x: (x[1], x[2]))
    return "", []


@figure_maker
def verifier_sweep(exp: Experiment, out: Path) -> list[Figure]:
    """The metric (test error, or fd on images) at the last generation against the verifier's b,
    one line per a, with generation 0's: below it, verified synthetic data improve on it."""
    name, runs = _verifier_runs(exp)
    if len(runs) < 2:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    first = []
    for a in sorted({a for _, a, _ in runs}):
        line = [(run, b) for run, aa, b in runs if aa == a]
        stats = [t_interval(run.metrics[name]) for run, _ in line]
        first += [m[0] for m, _ in stats]
        ax.errorbar(
            [b for _, b in line],
            [m[-1] for m, _ in stats],
            yerr=[h[-1] for _, h in stats],
            fmt="o-",
            capsize=3,
            label=f"accept_good a = {a:g}",
        )
    ax.axhline(float(np.mean(first)), color="k", ls="--", lw=0.9, label="generation 0")
    last = len(runs[0][0].metrics[name]) - 1
    ax.set(
        xlabel="reject_bad b",
        ylabel=f"{name} at t = {last} (mean, 95% interval)",
        yscale="log",
    )
    ax.set_title("a verifier of known accuracy (a, b)")
    ax.legend(fontsize=8)
    caption = (
        f"{name} at the last generation against the verifier's probability b of dropping a bad "
        "sample, one line per probability a of keeping a good one, 95% t-intervals; dashed: "
        "generation 0 (fitted on real data). Below the line, verified synthetic data beat it."
    )
    return [save(fig, exp.path(out, "verifier"), f"{exp.name}: verifier quality", caption)]


@figure_maker
def self_correction_curves(exp: Experiment, out: Path) -> list[Figure]:
    """Modes covered, high-quality share and sliced W2 per generation, one line per arm, for
    experiments that sweep the self-correction strength gamma."""
    runs = [r for r in exp.runs if cure_value(r, "self_correction", "gamma") is not None]
    shown = [m for m in ("modes_covered", "high_quality", "sliced_w2") if m in exp.metric_names]
    if len(runs) < 2 or not shown:
        return []
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 4), squeeze=False)
    for ax, name in zip(axes[0], shown, strict=True):
        for run in runs:
            if name in run.metrics:
                curve(ax, run.label, run.metrics[name], alpha=0.15)
        ax.set(xlabel="generation t", title=name)
    axes[0][0].legend(fontsize=7)
    caption = (
        "Mean over replicates with its 95% t-interval, one line per arm (self-correction "
        "strength gamma; gamma = 0 is no correction), x <- x + gamma (c(x) - x) with the exact "
        "expert c of selfconsume.loop.cures."
    )
    return [save(fig, exp.path(out, "self-correction"), f"{exp.name}: self-correction", caption)]


def neon_law(run: RunData) -> np.ndarray | None:
    """E[sigma_t] of theory.neon for a 1-D Gaussian warm-up run with the neon cure only, else None."""
    cfg = run.config
    w = cure_value(run, "neon", "w")
    if w is None or set(cfg.cures) != {"neon"} or "std" not in run.metrics:
        return None
    if cfg.data.kind != "gaussian" or cfg.model.kind != "gaussian":
        return None
    data, model, n = cfg.data.params, cfg.model.params, cfg.data.n_real
    if data.dim != 1 or data.cov is not None or model.psi != 1.0 or cfg.curation is not None:
        return None
    if cfg.scheme.kind != "replace" or synthetic_count(cfg) != n:
        return None
    gens = np.arange(len(run.metrics["std"]))
    return neon.neon_sigma(gens, n, data.std, w, model.estimator)


@figure_maker
def neon_sweep(exp: Experiment, out: Path) -> list[Figure]:
    """E[sigma_t] per Neon weight w with the closed form dashed."""
    runs = [(r, neon_law(r)) for r in exp.runs]
    runs = [(r, law) for r, law in runs if law is not None]
    if not runs:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for run, law in runs:
        curve(ax, run.label, run.metrics["std"], law)
    ax.set(xlabel="generation t", ylabel=r"mean $\sigma_t$", yscale="log")
    ax.set_title(r"Neon: $\theta_0 + w(\theta_0 - \theta_s)$ (dashed: closed form)")
    ax.legend(fontsize=8)
    caption = (
        "Mean sigma_t over replicates with its 95% t-interval per Neon weight w; dashed: "
        "sigma alpha(n)^(t+1) (1 + w (1 - alpha(n))) of selfconsume.theory.neon."
    )
    return [save(fig, exp.path(out, "neon"), f"{exp.name}: Neon extrapolation", caption)]
