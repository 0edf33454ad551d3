"""The Gaussian warm-up against its closed forms, at tolerances from the Monte Carlo standard error."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import metric, run_raw, z_score
from scipy.special import polygamma

from selfconsume.theory import gaussian as theory

Z = 4.5  # z-score bound: with ~50 checks, a false alarm has probability < 1e-3


def warmup(n: int, estimator: str, generations: int, replicates: int = 20000, **scheme) -> dict:
    return {
        "name": "t",
        "seed": 1,
        "replicates": replicates,
        "generations": generations,
        "data": {"kind": "gaussian", "n_real": n, "n_test": 2, "params": {"std": 2.0, "mean": 1.0}},
        "model": {"kind": "gaussian", "params": {"estimator": estimator}},
        "scheme": scheme or {"kind": "replace"},
        "metrics": ["gaussian_params", "w2"],
    }


def variance_moment(p: int, t: int, n: int, sigma: float, estimator: str) -> float:
    """E[sigma_t^(2p)] = sigma^(2p) E[(chi2_{n-1} / c)^p]^(t+1), with
    E[chi2_k^p] = k (k + 2) ... (k + 2p - 2)."""
    c = n - 1.0 if estimator == "unbiased" else float(n)
    k = n - 1.0
    return sigma ** (2 * p) * (np.prod([k + 2 * i for i in range(p)]) / c**p) ** (t + 1)


def fourth_moment(t: int, n: int, sigma: float, estimator: str) -> float:
    return variance_moment(2, t, n, sigma, estimator)


def clt_holds(t: int, n: int, estimator: str, replicates: int) -> bool:
    """Whether a z-test on the mean of sigma_t^2 is meaningful: its kurtosis E[X^4] / Var^2 (a
    product of chi2 factors, exponential in t) must be well below the number of replicates."""
    m = [variance_moment(p, t, n, 1.0, estimator) for p in (1, 2, 4)]
    return m[2] / (m[1] - m[0] ** 2) ** 2 < replicates / 10


def exact_z(samples: np.ndarray, mean: float, variance: float) -> float:
    """Distance of the sample mean from `mean` in exact standard errors (variance known)."""
    return abs(samples.mean() - mean) / np.sqrt(variance / len(samples))


@pytest.mark.parametrize("estimator", ["unbiased", "mle"])
@pytest.mark.parametrize("n", [4, 20])
def test_sigma_and_w2_match_closed_forms(store_path, n, estimator):
    # sigma_t^2 is a product of independent chi2 factors: heavy-tailed, so the standard errors of
    # sigma_t and sigma_t^2 come from their exact variances, not from the sample
    # and at n = 4 it is so heavy-tailed by t = 12 (kurtosis ~5e5) that 20,000 replicates sit in
    # no CLT regime: one replicate in 20,000 can carry half the mean. There sigma_t^2 is checked
    # through its logarithm, a sum of independent log chi2 terms.
    store, (rid,) = run_raw(warmup(n, estimator, 12), store_path)
    std, w2_sq = metric(store, rid, "std"), metric(store, rid, "w2_sq")
    for t in (0, 1, 5, 12):
        e_sigma = theory.expected_sigma(t, n, 2.0, estimator)
        e_var = theory.expected_variance(t, n, 2.0, estimator)
        assert exact_z(std[t], e_sigma, e_var - e_sigma**2) < Z
        if clt_holds(t, n, estimator, len(std[t])):
            var4 = fourth_moment(t, n, 2.0, estimator) - e_var**2
            assert exact_z(std[t] ** 2, e_var, var4) < Z
        log_var = (t + 1) * polygamma(1, (n - 1) / 2)  # Var log chi2_k = psi'(k / 2)
        e_log = theory.expected_cov_logdet(t, n, [[4.0]], estimator)
        assert exact_z(np.log(std[t] ** 2), e_log, log_var) < Z
    for t in (0, 1, 5):  # W2^2 has no closed-form variance; the sample one is reliable early on
        assert z_score(w2_sq[t], theory.expected_w2_sq(t, n, 2.0, estimator)) < Z


def test_closed_forms_are_not_trivially_satisfied():
    # the collapse is real (alpha < 1) and distinguishes the two estimators
    assert theory.collapse_factor(10, "mle") < theory.collapse_factor(10) < 1
    assert theory.collapse_factor(10) == pytest.approx(
        0.9726592741, rel=1e-9
    )  # sqrt(2/9)G(5)/G(4.5)
    assert theory.expected_variance(7, 10) == pytest.approx(1.0)


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_mixed_variance_matches_linear_recursion(store_path, lam):
    n = 6
    store, (rid,) = run_raw(warmup(n, "unbiased", 15, kind="mix", lam=lam), store_path)
    var_theory, _ = theory.expected_mix_moments(15, n, lam, 2.0, "unbiased")
    var = metric(store, rid, "std") ** 2
    for t in (1, 3, 15):
        assert z_score(var[t], var_theory[t]) < Z
    # with real data sigma stays away from 0, unlike the fully synthetic chain
    assert var_theory[-1] > 0.5 * 4.0


def test_population_mix_converges_to_real_fit(store_path):
    raw = warmup(8, "mle", 40, replicates=50, kind="mix", lam=1.0)
    raw["model"]["population"] = True
    store, (rid,) = run_raw(raw, store_path)
    mean, std = metric(store, rid, "mean"), metric(store, rid, "std")
    # generation 0 is the MLE fit of the real set, which is the fixed point of the exact update
    np.testing.assert_allclose(mean[-1], mean[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(std[-1], std[0], rtol=1e-9)
    # one step from a perturbed start follows population_mix_step
    m, v = theory.population_mix_step(
        np.array(0.0), np.array(1.0), np.array(2.0), np.array(4.0), 1.0
    )
    assert (m, v) == pytest.approx((1.0, 2.5 + 1.0))


def test_population_update_moves_towards_real_fit():
    from selfconsume.models.gaussian import GaussianModel, GaussianModelParams
    from selfconsume.seeding import Streams

    rng = np.random.default_rng(0)
    real = rng.normal(3.0, 2.0, size=(5, 40, 1))
    model = GaussianModel(
        GaussianModelParams(estimator="mle", population_target="empirical"), 1, 5, Streams(0)
    )
    model.mean[:] = -1.0
    model.cov[:] = 0.25
    real_mean, real_var = real.mean(1)[:, 0], real.var(1)[:, 0]
    expect = theory.population_mix_step(
        np.full(5, -1.0), np.full(5, 0.25), real_mean, real_var, 0.5
    )
    model.population_step(real, 0.5, None, None)
    np.testing.assert_allclose(model.mean[:, 0], expect[0], rtol=1e-12)
    np.testing.assert_allclose(model.cov[:, 0, 0], expect[1], rtol=1e-12)


def test_multivariate_collapse_log_det(store_path):
    # d-dim unbiased fit: E[log det] falls by the same Bartlett step at every refit
    n, d = 12, 3
    raw = warmup(n, "unbiased", 6, replicates=4000)
    raw["data"]["params"] = {"dim": d, "std": 1.0}
    store, (rid,) = run_raw(raw, store_path)
    logdet = metric(store, rid, "cov_logdet")
    for t in (0, 6):
        assert z_score(logdet[t], theory.expected_cov_logdet(t, n, np.eye(d))) < Z


def test_fresh_real_data_each_generation_never_collapses(store_path):
    # with lam = 0 the fresh scheme fits a new real sample every generation: E[sigma_t] = alpha(n) sigma
    n = 5
    store, (rid,) = run_raw(warmup(n, "unbiased", 6, kind="fresh", lam=0.0), store_path)
    std = metric(store, rid, "std")
    e_sigma = theory.expected_sigma(0, n, 2.0)
    for t in (1, 6):
        assert exact_z(std[t], e_sigma, 4.0 - e_sigma**2) < Z
    assert not np.array_equal(std[1], std[6])  # a new real set each generation
