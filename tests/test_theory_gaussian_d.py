"""The d-dimensional Gaussian warm-up (replace) against its closed forms: E[log det Sigma_t],
E[tr Sigma_t] and E||mu_t - mu||^2, at tolerances from the Monte Carlo standard error."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import metric, run_raw, z_score

from selfconsume.theory import gaussian as theory

Z = 4.5  # z-score bound: with ~20 checks, a false alarm has probability < 1e-4
N, GENERATIONS = 10, 5
MEAN = [1.0, -1.0, 0.5]
COV = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 0.5]])


def run_warmup(store_path, estimator: str) -> dict[str, np.ndarray]:
    """A seeded replace run in d = 3 with a full covariance; gaussian_params as (G, R) arrays."""
    raw = {
        "name": "t-d",
        "seed": 3,
        "replicates": 4000,
        "generations": GENERATIONS,
        "data": {
            "kind": "gaussian",
            "n_real": N,
            "n_test": 2,
            "params": {"dim": 3, "mean": MEAN, "cov": COV.tolist()},
        },
        "model": {"kind": "gaussian", "params": {"estimator": estimator}},
        "scheme": {"kind": "replace"},
        "metrics": ["gaussian_params"],
    }
    store, (rid,) = run_raw(raw, store_path)
    return {
        "logdet": metric(store, rid, "cov_logdet"),
        "trace": metric(store, rid, "cov_trace"),
        "mean_sq": metric(store, rid, "mean_error") ** 2,
    }


EXPECTED = {
    "logdet": theory.expected_cov_logdet,
    "trace": theory.expected_cov_trace,
    "mean_sq": theory.expected_mean_error_sq,
}


@pytest.mark.parametrize("estimator", ["unbiased", "mle"])
def test_d_dim_moments_match_closed_forms(store_path, estimator):
    sim = run_warmup(store_path, estimator)
    for name, expected in EXPECTED.items():
        for t in (0, 2, GENERATIONS):
            assert z_score(sim[name][t], expected(t, N, COV, estimator)) < Z, (name, t)
    # the check can fail: it tells the estimators apart and catches an off-by-one generation
    other = "mle" if estimator == "unbiased" else "unbiased"
    logdet = sim["logdet"][GENERATIONS]
    assert z_score(logdet, theory.expected_cov_logdet(GENERATIONS, N, COV, other)) > 10
    assert z_score(logdet, theory.expected_cov_logdet(GENERATIONS - 1, N, COV, estimator)) > 10


def test_log_det_factor_is_the_bartlett_sum():
    # d = 1: E[log(chi2_{n-1} / c)] = psi((n-1)/2) + log(2/c); n = 3 unbiased: psi(1) + 0 = -gamma
    assert theory.log_det_factor(3, 1) == pytest.approx(-0.5772156649, rel=1e-9)
    # the d-dim step is a sum of d one-dimensional steps of shrinking degrees of freedom
    two = theory.log_det_factor(10, 2, "mle")
    assert two == pytest.approx(
        theory.log_det_factor(10, 1, "mle")
        + theory.log_det_factor(9, 1, "unbiased")
        + np.log(8 / 10),
        rel=1e-12,
    )
    with pytest.raises(ValueError, match="n > d"):
        theory.log_det_factor(3, 3)


def test_one_dim_forms_are_the_d_dim_forms_at_d_1():
    t = np.arange(4)
    for estimator in ("unbiased", "mle"):
        np.testing.assert_allclose(
            theory.expected_cov_trace(t, 7, [[4.0]], estimator),
            theory.expected_variance(t, 7, 2.0, estimator),
        )
        np.testing.assert_allclose(
            theory.expected_mean_error_sq(t, 7, [[4.0]], estimator),
            theory.expected_mean_sq_error(t, 7, 2.0, estimator),
        )
