"""The exact curated update: brute-force agreement, invariants, limits and long-run behaviour."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.integrate import quad

from selfconsume.theory import curation as theory

P = np.array([0.4, 0.3, 0.2, 0.1])
R = np.arange(4.0)


def brute_h(p: np.ndarray, r: np.ndarray, k: int, beta: float) -> np.ndarray:
    """H^K by enumerating every (K-1)-tuple of competitors: the definition, term by term."""
    w = np.exp(beta * r)
    h = np.zeros_like(p)
    for combo in itertools.product(range(len(p)), repeat=k - 1):
        h += np.prod(p[list(combo)]) * k * w / (w + w[list(combo)].sum())
    return h


@pytest.mark.parametrize(
    ("seed", "states", "k", "beta"),
    [
        (0, 4, 2, 1.0),
        (1, 4, 4, 1.0),
        (2, 3, 6, 3.0),
        (3, 5, 5, 10.0),
        (4, 4, 3, 30.0),
        (5, 6, 4, 0.0),
    ],
)
def test_h_matches_enumeration(seed, states, k, beta):
    rng = np.random.default_rng(seed)
    p, r = rng.dirichlet(np.ones(states)), 2 * rng.standard_normal(states)
    np.testing.assert_allclose(theory.h_factor(p, r, k, beta), brute_h(p, r, k, beta), rtol=1e-12)


def test_h_matches_adaptive_quadrature_at_large_k():
    p, k, beta = P, 50, 0.7
    w = np.exp(beta * R)

    def h(x: int) -> float:
        def f(s: float) -> float:
            return k * w[x] * np.exp(-s * w[x]) * (p @ np.exp(-s * w)) ** (k - 1)

        return quad(f, 0, np.inf, limit=500, epsabs=0, epsrel=1e-12)[0]

    expected = [h(x) for x in range(4)]
    np.testing.assert_allclose(theory.h_factor(p, R, k, beta), expected, rtol=1e-8)


def test_update_is_a_distribution_for_batches():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(30), size=500)
    r = rng.standard_normal(30)
    for k in (2, 7, 100):
        q = p * theory.h_factor(p, r, k, 2.0)
        assert np.all(q >= 0)
        np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-12)


def test_k1_and_beta0_change_nothing():
    np.testing.assert_allclose(theory.h_factor(P, R, 1, 3.0), 1.0, atol=1e-13)
    np.testing.assert_allclose(theory.h_factor(P, R, 5, 0.0), 1.0, atol=1e-13)
    np.testing.assert_allclose(theory.curated(P, R, 1, 3.0), P, atol=1e-13)


def test_k_inf_is_the_tilt_and_large_k_approaches_it():
    tilt = P * np.exp(R) / (P @ np.exp(R))
    np.testing.assert_allclose(theory.curated(P, R, np.inf, 1.0), tilt, rtol=1e-14)
    np.testing.assert_allclose(theory.tilted(P, R, 1.0), tilt, rtol=1e-14)
    gaps = [np.abs(theory.curated(P, R, k, 1.0) - tilt).max() for k in (10, 100, 1000, 10_000)]
    assert all(a > 5 * b for a, b in itertools.pairwise(gaps))  # O(1/K)
    assert gaps[-1] < 1e-4


def test_larger_k_tilts_more():
    means = [theory.curated(P, R, k, 1.0) @ R for k in (1, 2, 4, 16, np.inf)]
    assert all(a < b for a, b in itertools.pairwise(means))


def iterate(p, p_data, lam, k, beta, generations):
    out = [p]
    for _ in range(generations):
        out.append(theory.mixed(p_data, theory.curated(out[-1], R, k, beta), lam))
    return np.array(out)


@pytest.mark.parametrize("k", [2, 4, np.inf])
def test_pure_curation_maximises_the_reward(k):
    beta = 1.0
    probs = iterate(P, P, None, k, beta, 60)
    e = np.exp(beta * R)
    mean = probs @ e
    var = (probs * (e - mean[:, None]) ** 2).sum(-1)
    assert np.all(np.diff(mean) > -1e-12) and np.all(np.diff(mean)[:5] > 0)  # up to rounding
    assert mean[-1] == pytest.approx(np.exp(beta * R.max()), rel=1e-6)
    assert var[0] > 1 and var[-1] < 1e-4
    assert np.all(np.diff(var[10:]) < 1e-12)  # decreasing once the top state dominates


@pytest.mark.parametrize("k", [2, 4, np.inf])
def test_mixing_real_data_keeps_every_state(k):
    probs = iterate(P, P, 0.5, k, 1.0, 200)
    fixed = probs[-1]
    np.testing.assert_allclose(
        theory.mixed(P, theory.curated(fixed, R, k, 1.0), 0.5), fixed, atol=1e-12
    )
    assert np.all(fixed >= P / 1.5 - 1e-12)  # (p_data + lam q) / (1 + lam) >= p_data / (1 + lam)
    assert fixed @ R > P @ R  # curated, but anchored
    assert fixed[-1] < 0.9


def test_filters_population_laws():
    np.testing.assert_allclose(theory.top_fraction(P, R, 0.3), [0, 0, 2 / 3, 1 / 3])
    np.testing.assert_allclose(theory.top_fraction(P, np.zeros(4), 0.5), P)  # all tied
    np.testing.assert_allclose(theory.thresholded(P, R, 2.0), [0, 0, 0.2, 0.1])
    mixed = theory.mixed(P, theory.thresholded(P, R, 2.0), 1.0)
    np.testing.assert_allclose(mixed, (P + [0, 0, 0.2, 0.1]) / 1.3)


HUGE_BETAS = [1e3, 1e6, 1e12, 1e15, 1e18, 1e300]


@pytest.mark.parametrize("offset", [0.0, 1e6])
@pytest.mark.parametrize("k", [2, 4, 7])
@pytest.mark.parametrize("beta", [1.0, *HUGE_BETAS])
def test_every_finite_beta_is_exact_or_its_argmax_limit(beta, k, offset):
    # e^{-beta} is below float precision from beta = 1e3 on, so there the law is the argmax law
    # itself; a grid in global coordinates lost it from beta (r_max - r_min) ~ 1e15 on
    p = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.0, 0.0]])
    r = offset + R  # H depends on reward differences only
    if beta == 1.0:
        expected = np.stack([q * brute_h(q, R, k, beta) for q in p])
    else:
        expected = p * theory.argmax_h(p, r, k)
    np.testing.assert_allclose(theory.curated(p, r, k, beta), expected, rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("beta", HUGE_BETAS)
def test_ties_at_any_beta_split_as_the_argmax_law_says(beta):
    # two best states of equal reward share their level in proportion to their mass
    p = np.array([0.1, 0.2, 0.3, 0.4])
    r = np.array([0.0, 1.0, 2.0, 2.0])
    np.testing.assert_allclose(
        theory.curated(p, r, 3, beta), p * theory.argmax_h(p, r, 3), rtol=1e-12, atol=1e-15
    )
    tilt = theory.curated(p, r, np.inf, beta)
    np.testing.assert_allclose(tilt, [0, 0, 3 / 7, 4 / 7], rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("beta", HUGE_BETAS)
def test_iterated_tilt_keeps_the_best_levels_ratios_at_any_beta(beta):
    p0 = np.array([0.3, 0.7, 0.0, 0.0])  # p_0's best level is two states of reward 1
    q = theory.iterated_tilt(p0, np.array([1.0, 1.0, 2.0, 3.0]), beta, 1)
    np.testing.assert_allclose(q, p0, rtol=1e-14)
