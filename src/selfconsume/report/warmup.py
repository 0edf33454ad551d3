"""Warm-up figures and tables: the collapse of sigma_t and W2 of Gaussian chains against the closed
forms of selfconsume.theory.gaussian, each run's curve computed with that run's own n, sigma,
estimator and sampling bias psi, read from its resolved, typed config (the kinds' own params
models: no default restated).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from selfconsume.loop.schemes import half_up
from selfconsume.report.base import (
    Experiment,
    Figure,
    RunData,
    TheoryRow,
    figure_maker,
    save,
    table_maker,
    theory_rows,
)
from selfconsume.report.labels import population_lam, synthetic_count
from selfconsume.theory import gaussian as theory


class Series(NamedTuple):
    """A warm-up run's setting (n_real, mean and sigma of the truth, estimator, sampling bias psi)
    and its sigma_t (G, R)."""

    n: int
    mu: float
    sigma: float
    estimator: str
    psi: float
    std: np.ndarray
    gens: np.ndarray


def _series(run: RunData) -> Series | None:
    """The setting of a 1-D Gaussian warm-up run (sampled, no curation, sigma_t stored), or None."""
    cfg = run.config
    if cfg.model.kind != "gaussian" or cfg.data.kind != "gaussian":
        return None
    data, model = cfg.data.params, cfg.model.params
    if data.dim != 1 or data.cov is not None or cfg.model.population:
        return None
    if cfg.curation is not None or cfg.cures or "std" not in run.metrics:
        return None
    std = run.metrics["std"]
    mu = float(np.ravel(data.mean)[0])
    gens = np.arange(len(std))
    return Series(cfg.data.n_real, mu, data.std, model.estimator, model.psi, std, gens)


def _warmup_runs(exp: Experiment, scheme: str) -> list[tuple[RunData, Series]]:
    """The experiment's 1-D Gaussian warm-up runs under `scheme` with its default batch size
    (n_real for replace, lam n_real rounded for mix)."""
    out = []
    for run in exp.runs:
        series = _series(run)
        if series is None or run.config.scheme.kind != scheme:
            continue
        lam = population_lam(run.config)
        lam_n = 1.0 * series.n if lam is None else lam * series.n
        if synthetic_count(run.config) in (round(lam_n), half_up(lam_n)):
            out.append((run, series))
    return out


def sigma_collapse_figure(runs: list[tuple[RunData, Series]]) -> plt.Figure:
    """Mean and median sigma_t (log scale) and mean W2^2, each run's closed form dashed (with its
    sampling bias psi: alpha(n)^(t+1) psi^t sigma)."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for run, (n, _, sigma, est, psi, std, gens) in runs:
        (line,) = ax.plot(gens, std.mean(1), label=f"{run.label} (mean)")
        color = line.get_color()
        ax.plot(gens, np.median(std, 1), ls=":", color=color, label=f"{run.label} (median)")
        expected = theory.expected_sigma(gens, n, sigma, est, psi)
        ax.plot(gens, expected, ls="--", color="k", lw=0.8)
        if "w2_sq" in run.metrics:
            ax2.plot(gens, run.metrics["w2_sq"].mean(1), color=color, label=run.label)
            expected = theory.expected_w2_sq(gens, n, sigma, est, psi)
            ax2.plot(gens, expected, ls="--", color="k", lw=0.8)
    biased = any(series.psi != 1.0 for _, series in runs)
    closed = r"\alpha(n)^{t+1}\psi^t\sigma" if biased else r"\alpha(n)^{t+1}\sigma"
    ax.set_yscale("log")
    ax.set(xlabel="generation t", ylabel=r"$\sigma_t$")
    ax.set_title(rf"$\sigma_t$ over replicates (dashed: ${closed}$)")
    ax.legend(fontsize=7)
    ax2.set(xlabel="generation t", ylabel=r"$E[W_2^2(p_t, p_{data})]$")
    ax2.set_title(r"$W_2^2$ to the truth (dashed: closed form)")
    ax2.legend(fontsize=7)
    return fig


@figure_maker
def sigma_collapse(exp: Experiment, out: Path) -> list[Figure]:
    """Fully synthetic warm-up: sigma_t and W2^2 against their closed forms."""
    runs = _warmup_runs(exp, "replace")
    if not runs:
        return []
    return [
        save(
            sigma_collapse_figure(runs),
            exp.path(out, "sigma"),
            f"{exp.name}: collapse of sigma_t",
            "Left: mean (solid) and median (dotted) of sigma_t over replicates, closed form dashed. "
            "Right: mean W2^2 between p_t and the truth, closed form dashed.",
        )
    ]


def mixed_variance_figure(runs: list[tuple[RunData, Series]]) -> plt.Figure:
    """Mean sigma_t^2 against its exact recursion per run, and sigma_t against the fully synthetic
    closed form for each distinct (n, sigma, estimator, psi, generations) among the runs."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    references: dict[tuple[int, float, str, float, int], None] = {}
    for run, (n, _, sigma, est, psi, std, gens) in runs:
        lam = population_lam(run.config)
        (line,) = ax.plot(gens, (std**2).mean(1), label=run.label)
        expected, _ = theory.expected_mix_moments(len(gens) - 1, n, lam, sigma, est, psi)
        ax.plot(gens, expected, ls="--", color=line.get_color(), lw=0.9)
        ax2.plot(gens, std.mean(1), color=line.get_color(), label=run.label)
        references[(n, sigma, est, psi, len(gens))] = None
    for n, sigma, est, psi, length in references:
        gens = np.arange(length)
        setting = f"n = {n}" + (f", ψ = {psi:g}" if psi != 1.0 else "")
        label = "fully synthetic (theory" + (f", {setting})" if len(references) > 1 else ")")
        expected = theory.expected_sigma(gens, n, sigma, est, psi)
        ax2.plot(gens, expected, "k--", lw=0.9, label=label)
    ax.set(xlabel="generation t", ylabel=r"mean $\sigma_t^2$", ylim=(0, None))
    ax.set_title(r"mean $\sigma_t^2$ (dashed: exact finite-sample recursion)")
    ax.legend(fontsize=8)
    ax2.set(xlabel="generation t", ylabel=r"mean $\sigma_t$", yscale="log")
    ax2.set_title(r"$\sigma_t$ stays away from 0 with real data")
    ax2.legend(fontsize=8)
    return fig


@figure_maker
def mixed_variance(exp: Experiment, out: Path) -> list[Figure]:
    """Mix scheme: mean sigma_t^2 against its exact recursion, and sigma_t against fully synthetic."""
    runs = _warmup_runs(exp, "mix")
    if not runs:
        return []
    return [
        save(
            mixed_variance_figure(runs),
            exp.path(out, "variance"),
            f"{exp.name}: retraining with real data mixed in",
            "Left: mean sigma_t^2 over replicates per λ, dashed the exact recursion "
            "(theory.expected_mix_moments). Right: mean sigma_t against the fully synthetic closed "
            "form alpha(n)^(t+1) sigma with the runs' own n (black dashed).",
        )
    ]


@table_maker
def warmup_theory(exp: Experiment) -> list[TheoryRow]:
    """Fully synthetic: E[sigma_t], E[sigma_t^2], E[(mu_t - mu)^2], E[W2^2]; mix: E[sigma_t^2]."""
    rows = []
    for run, (n, mu, sigma, est, psi, std, gens) in _warmup_runs(exp, "replace"):
        setting = (gens, n, sigma, est, psi)
        rows += theory_rows(run.label, "E[σ_t]", std, theory.expected_sigma(*setting))
        rows += theory_rows(run.label, "E[σ_t²]", std**2, theory.expected_variance(*setting))
        if "mean" in run.metrics:
            error = (run.metrics["mean"] - mu) ** 2
            rows += theory_rows(
                run.label, "E[(μ_t − μ)²]", error, theory.expected_mean_sq_error(*setting)
            )
        if "w2_sq" in run.metrics:
            rows += theory_rows(
                run.label, "E[W₂²]", run.metrics["w2_sq"], theory.expected_w2_sq(*setting)
            )
    for run, (n, _, sigma, est, psi, std, gens) in _warmup_runs(exp, "mix"):
        lam = population_lam(run.config)
        expected, _ = theory.expected_mix_moments(len(gens) - 1, n, lam, sigma, est, psi)
        rows += theory_rows(run.label, "E[σ_t²]", std**2, expected)
    return rows


class Covariance(NamedTuple):
    """A d-dimensional fully synthetic Gaussian run: n_real, the truth's covariance, estimator,
    sampling bias psi (the arguments of theory.expected_cov_*)."""

    n: int
    cov: np.ndarray
    estimator: str
    psi: float


def _dim_runs(exp: Experiment) -> list[tuple[RunData, Covariance]]:
    """The experiment's fully synthetic Gaussian runs in d >= 2 dimensions with `gaussian_params`
    stored and the default batch (n_real), whose closed forms are theory.expected_cov_*."""
    out = []
    for run in exp.runs:
        cfg = run.config
        if cfg.model.kind != "gaussian" or cfg.data.kind != "gaussian":
            continue
        data, model = cfg.data.params, cfg.model.params
        if data.dim < 2 or cfg.model.population or cfg.curation is not None:
            continue
        if cfg.cures:  # their closed forms are theirs (report.cures)
            continue
        if cfg.scheme.kind != "replace" or synthetic_count(cfg) != cfg.data.n_real:
            continue
        if "cov_logdet" not in run.metrics:
            continue
        cov = np.asarray(data.cov) if data.cov is not None else data.std**2 * np.eye(data.dim)
        out.append((run, Covariance(cfg.data.n_real, cov, model.estimator, model.psi)))
    return out


def _dim_quantities(run: RunData, c: Covariance) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, simulated (G, R), closed form (G,)) for log det, trace and squared mean error."""
    gens = np.arange(len(run.metrics["cov_logdet"]))
    out = [
        ("E[log det Σ_t]", run.metrics["cov_logdet"], theory.expected_cov_logdet(gens, *c)),
        ("E[tr Σ_t]", run.metrics["cov_trace"], theory.expected_cov_trace(gens, *c)),
    ]
    if "mean_error" in run.metrics:
        expected = theory.expected_mean_error_sq(gens, *c)
        out.append(("E‖μ_t − μ‖²", run.metrics["mean_error"] ** 2, expected))
    return out


@figure_maker
def covariance_collapse(exp: Experiment, out: Path) -> list[Figure]:
    """Fully synthetic Gaussian in d dimensions: log det, trace and mean error of Sigma_t against
    their closed forms."""
    runs = _dim_runs(exp)
    if not runs:
        return []
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for run, c in runs:
        for ax, (label, values, expected) in zip(axes, _dim_quantities(run, c), strict=False):
            (line,) = ax.plot(values.mean(1), label=run.label)
            ax.plot(expected, ls="--", color=line.get_color(), lw=0.9)
            ax.set(xlabel="generation t", title=f"{label} (dashed: closed form)")
    axes[0].legend(fontsize=7)
    caption = (
        "Mean over replicates (solid) against the closed forms of selfconsume.theory.gaussian "
        "(dashed): log det Sigma_t falls linearly (Bartlett), tr Sigma_t and the mean error grow "
        "or stay as the estimator says."
    )
    return [save(fig, exp.path(out, "covariance"), f"{exp.name}: Σ_t in d dimensions", caption)]


@table_maker
def covariance_theory(exp: Experiment) -> list[TheoryRow]:
    """Fully synthetic Gaussian in d dimensions: E[log det Sigma_t], E[tr Sigma_t], E|mu_t - mu|^2."""
    rows = []
    for run, c in _dim_runs(exp):
        for label, values, expected in _dim_quantities(run, c):
            rows += theory_rows(run.label, label, values, expected)
    return rows
