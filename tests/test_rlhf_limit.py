"""The RLHF limit of curated retraining: K -> inf pure curation is the iterated tilt
p_t ∝ p_0 e^{t beta r}, the maximiser of E_q[r] - KL(q || p_0) / (t beta)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import curated_discrete, metric, run_raw

from selfconsume.report.curation import rlhf_stats
from selfconsume.theory import curation as theory

P = np.array([0.4, 0.3, 0.2, 0.1])
R = np.arange(4.0)
BETA = 0.7
RUN = curated_discrete(
    "rlhf-limit",
    replicates=2,
    generations=6,
    n_real=50,
    population=True,
    metrics=("mass", "reward"),
    k=float("inf"),
    beta=BETA,
)
WRONG = {  # tilts a wrong implementation could give: each must be told apart from the right one
    "(t+1) beta": lambda p0, t: theory.iterated_tilt(p0, R, BETA, t + 1),
    "beta / t": lambda p0, t: theory.iterated_tilt(p0, R, BETA / max(t, 1), min(t, 1)),
    "beta": lambda p0, t: theory.iterated_tilt(p0, R, BETA, min(t, 1)),
}


def masses(store, run_id: str) -> np.ndarray:
    """Mass per state, (G + 1, R, S)."""
    return np.stack([metric(store, run_id, f"mass_{i}") for i in range(len(P))], axis=-1)


def objective(q: np.ndarray, p0: np.ndarray, coef: float) -> np.ndarray:
    """E_q[r] - coef KL(q || p0) for rows q (..., S)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(q > 0, q * np.log(q / p0), 0.0).sum(-1)
    return q @ R - coef * kl


@pytest.mark.parametrize("t", [1, 2, 5])
def test_iterated_tilt_is_the_kl_regularised_optimum(t):
    coef = 1.0 / (t * BETA)
    q = theory.iterated_tilt(P, R, BETA, t)
    np.testing.assert_allclose(np.ptp(R - coef * np.log(q / P)), 0.0, atol=1e-12)  # stationary
    rng = np.random.default_rng(t)
    others = rng.dirichlet(np.ones(len(P)), size=2000)
    near = q * np.exp(0.05 * rng.standard_normal((2000, len(P))))
    others = np.concatenate([others, near / near.sum(-1, keepdims=True)])
    assert np.all(objective(others, P, coef) < objective(q, P, coef))
    for name, wrong in WRONG.items():
        if not np.allclose(wrong(P, t), q):
            assert objective(wrong(P, t), P, coef) < objective(q, P, coef) - 1e-6, name


def test_iterated_tilt_is_the_k_inf_update_iterated():
    p = P
    for t in range(1, 30):
        p = theory.mixed(P, theory.curated(p, R, np.inf, BETA), None)
        np.testing.assert_allclose(p, theory.iterated_tilt(P, R, BETA, t), rtol=1e-12, atol=1e-300)
    huge = theory.iterated_tilt(P, R, 1e3, 10**6)  # t beta far past overflow
    np.testing.assert_array_equal(huge, [0, 0, 0, 1])


def test_population_loop_at_k_inf_is_the_iterated_tilt(store_path):
    store, (run_id,) = run_raw(copy.deepcopy(RUN), store_path)
    m = masses(store, run_id)
    expected = np.array([theory.iterated_tilt(P, R, BETA, t) for t in range(len(m))])
    np.testing.assert_allclose(m, np.broadcast_to(expected[:, None], m.shape), rtol=1e-12)
    for name, wrong in WRONG.items():
        gap = max(np.abs(m[t, 0] - wrong(P, t)).max() for t in range(len(m)))
        assert gap > 1e-3, name
    stats = rlhf_stats(store.run(run_id).config, len(m) - 1)  # what the figure overlays
    np.testing.assert_allclose(metric(store, run_id, "reward_mean")[:, 0], stats["reward_mean"])


@pytest.mark.slow
def test_sampled_loop_approaches_the_tilt_within_monte_carlo_error(store_path):
    """Large K in the sampled loop: each replicate's p_t against the tilt of its own p_0, within
    4.5 standard errors plus the exact finite-K gap (the population update at this K, which the
    other curation tests check against the sampled loop)."""
    k, generations = 64, 3
    raw = copy.deepcopy(RUN) | {"replicates": 200, "generations": generations}
    raw["data"]["n_real"] = 1000
    raw["model"]["population"] = False
    raw["curation"]["k"] = k
    store, (run_id,) = run_raw(raw, store_path)
    m = masses(store, run_id)
    p0 = m[0]
    for t in range(1, generations + 1):
        tilt = theory.iterated_tilt(p0, R, BETA, t)
        finite = p0
        for _ in range(t):
            finite = theory.mixed(p0, theory.curated(finite, R, k, BETA), None)
        gap = np.abs(finite - tilt).mean(axis=0)
        res = m[t] - tilt
        se = res.std(axis=0, ddof=1) / np.sqrt(len(res))
        assert np.all(np.abs(res.mean(axis=0)) < 4.5 * se + gap), t
        for name, wrong in WRONG.items():
            if not np.allclose(wrong(p0, t), tilt):
                off = np.abs((m[t] - wrong(p0, t)).mean(axis=0))
                assert np.any(off > 4.5 * se + gap), (name, t)
