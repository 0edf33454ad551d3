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
from selfconsume.report.base import Experiment, Figure, RunData, figure_maker, save, t_interval
from selfconsume.report.labels import synthetic_count
from selfconsume.theory import regression as regression_theory
from selfconsume.theory import weighting


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


def _verifier_runs(exp: Experiment) -> list[tuple[RunData, float, float]]:
    """(run, a, b) of the experiment's runs curated by a verifier that store the test error."""
    out = []
    for run in exp.runs:
        curation = run.config.curation
        if curation and curation.kind == "verifier" and "test_error" in run.metrics:
            params = curation.params
            out.append((run, float(params.accept_good), float(params.reject_bad)))
    return sorted(out, key=lambda x: (x[1], x[2]))


@figure_maker
def verifier_sweep(exp: Experiment, out: Path) -> list[Figure]:
    """Test error at the last generation against the verifier's b, one line per a, with the
    first fit's error: below it, verified synthetic data improves on the real set alone."""
    runs = _verifier_runs(exp)
    if len(runs) < 2:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    first = []
    for a in sorted({a for _, a, _ in runs}):
        line = [(run, b) for run, aa, b in runs if aa == a]
        stats = [t_interval(run.metrics["test_error"]) for run, _ in line]
        first += [m[0] for m, _ in stats]
        ax.errorbar(
            [b for _, b in line],
            [m[-1] for m, _ in stats],
            yerr=[h[-1] for _, h in stats],
            fmt="o-",
            capsize=3,
            label=f"accept_good a = {a:g}",
        )
    ax.axhline(float(np.mean(first)), color="k", ls="--", lw=0.9, label="generation 0 (real only)")
    last = len(runs[0][0].metrics["test_error"]) - 1
    ax.set(
        xlabel="reject_bad b",
        ylabel=f"test error at t = {last} (mean, 95% interval)",
        yscale="log",
    )
    ax.set_title("a verifier of known accuracy (a, b)")
    ax.legend(fontsize=8)
    caption = (
        "Test error at the last generation against the verifier's probability b of dropping a bad "
        "sample, one line per probability a of keeping a good one, 95% t-intervals; dashed: the "
        "first fit (real data only). Below the line, verified synthetic data beat the real set."
    )
    return [save(fig, exp.path(out, "verifier"), f"{exp.name}: verifier quality", caption)]
