"""Regression figures and tables: the test error of self-consuming OLS / ridge against the closed
forms of selfconsume.theory.regression, each run's curve from its own resolved, typed config (the
kinds' params models, no default restated).
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
    TheoryRow,
    curve,
    figure_maker,
    save,
    table_maker,
    theory_rows,
)
from selfconsume.report.labels import synthetic_count
from selfconsume.theory import regression as theory


def closed_form(run: RunData) -> np.ndarray | None:
    """E[test error] per generation where theory.regression has it for this run, else None:
    replace or accumulate (lam = 1, batches of n_real), no curation, psi = 1; OLS on a Gaussian
    design (true sigma; sigma_hat too under replace), or OLS / ridge with true sigma on a fixed one."""
    cfg = run.config
    if cfg.data.kind != "regression" or cfg.model.kind != "regression":
        return None
    data, model = cfg.data.params, cfg.model.params
    scheme, n = cfg.scheme.kind, cfg.data.n_real
    if scheme not in ("replace", "accumulate") or synthetic_count(cfg) != n:
        return None
    if cfg.curation is not None or cfg.cures or model.psi != 1.0:
        return None
    if "test_error" not in run.metrics:
        return None
    true_sigma = model.noise == "true_sigma"
    if not true_sigma and scheme == "accumulate":
        return None
    gens = np.arange(len(run.metrics["test_error"]))
    source = RegressionSource(data)
    if data.design == "fixed" and true_sigma:
        args = (source.fixed_design(n), source.design_cov, source.w_star, data.noise_std)
        return theory.fixed_design_error(*args, model.ridge, int(gens[-1]), scheme)
    if data.design == "fixed" or model.ridge != 0.0:
        return None
    law = theory.replace_error if scheme == "replace" else theory.accumulate_error
    return law(gens, data.dim, n, data.noise_std) * data.feature_std**2


def _regression_runs(exp: Experiment) -> list[RunData]:
    return [r for r in exp.runs if "test_error" in r.metrics]


@figure_maker
def regression_collapse(exp: Experiment, out: Path) -> list[Figure]:
    """Test error per generation with its 95% interval, closed form dashed; median sigma_hat^2."""
    runs = _regression_runs(exp)
    if not runs:
        return []
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        color = curve(ax, run.label, run.metrics["test_error"], closed_form(run))
        if "sigma_hat_sq" in run.metrics:
            ax2.plot(np.median(run.metrics["sigma_hat_sq"], 1), color=color)
    ax.set(xlabel="generation t", ylabel=r"$E\,\|\hat w_t - w^*\|^2_\Sigma$")
    ax.set_title("test error (dashed: closed form)")
    ax.legend(fontsize=7)
    ax2.set(xlabel="generation t", ylabel=r"median $\hat\sigma_t^2$", yscale="log")
    ax2.set_title(r"the noise estimate $\hat\sigma_t^2$")
    caption = (
        "Left: mean test error ||w_t - w*||²_Σ over replicates with its 95% t-interval, closed "
        "forms of selfconsume.theory.regression dashed (replace: σ² d (t+1)/(T-d-1), linear; "
        "accumulate: σ² d/(T-d-1) Σ_{i≤t+1} 1/i², bounded). Right: median σ̂_t² per run."
    )
    return [save(fig, exp.path(out, "regression"), f"{exp.name}: test error", caption)]


@table_maker
def regression_theory(exp: Experiment) -> list[TheoryRow]:
    """E[test error] at generations 1, the middle and the last, wherever a closed form applies."""
    rows = []
    for run in _regression_runs(exp):
        expected = closed_form(run)
        if expected is not None:
            rows += theory_rows(run.label, "E‖ŵ_t − w*‖²_Σ", run.metrics["test_error"], expected)
    return rows
