"""Curation at the limits: beta = inf and huge beta (sampled and exact), huge reward ranges, and a
curation that keeps no sample of a replicate."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
from helpers import curated_discrete, metric, run_raw

from selfconsume.loop.curation import choose_bradley_terry
from selfconsume.models.gaussian import GaussianModel, GaussianModelParams
from selfconsume.models.gmm import GMM, GMMParams
from selfconsume.models.kde import KDE, KDEParams
from selfconsume.seeding import Streams
from selfconsume.theory import curation as theory

P = np.array([0.4, 0.3, 0.2, 0.1])
TABLE = {"kind": "table", "params": {"values": [0, 1, 2, 3]}}
DISCRETE = curated_discrete(
    "limits", replicates=2000, generations=1, n_real=500, k=3, beta=float("inf")
)


def argmax_law(p: np.ndarray, r: np.ndarray, k: float) -> np.ndarray:
    """Law of the best of k draws of p (ties uniform), by enumerating reward levels: the best
    level is >= l with probability 1 - P(r < l)^k."""
    out = np.zeros_like(p)
    for level in np.unique(r):
        below, at = p[r < level].sum(), p[r == level].sum()
        if at > 0:
            top = below + at > 1 - 1e-12
            best = (below + at) ** k - below**k if np.isfinite(k) else float(top)
            out[r == level] = p[r == level] / at * best
    return out


@pytest.mark.parametrize("beta", [1e300, np.inf])
def test_infinite_beta_picks_the_best_candidate_with_ties_split_uniformly(beta):
    n = 200_000
    rewards = np.broadcast_to(np.array([0.0, 2.0, 2.0, 1.0, 2.0]), (n, 5))
    picks = choose_bradley_terry(rewards, beta, np.random.default_rng(1))
    freq = np.bincount(picks, minlength=5) / n
    assert freq[0] == freq[3] == 0
    assert np.all(np.abs(freq[[1, 2, 4]] - 1 / 3) < 4.5 * np.sqrt(2 / 9 / n))
    # a best reward of 0 (beta * 0 = nan at beta = inf) is still the best
    zero_best = np.broadcast_to(np.array([-1.0, 0.0, 0.0]), (n, 3))
    freq = np.bincount(choose_bradley_terry(zero_best, beta, np.random.default_rng(2)), minlength=3)
    assert freq[0] == 0 and abs(freq[1] / n - 0.5) < 4.5 * np.sqrt(0.25 / n)


@pytest.mark.parametrize("k", [1, 2, 4, 7, np.inf])
@pytest.mark.parametrize("rewards", [[0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 2.0, 1.0], [5.0] * 4])
def test_exact_update_at_huge_and_infinite_beta_is_the_argmax_law(k, rewards):
    r = np.array(rewards)
    expected = argmax_law(P, r, k)
    for beta in (1e6, np.inf):
        q = theory.curated(P, r, k, beta)
        np.testing.assert_allclose(q, expected, rtol=1e-12, atol=1e-15)
    # p without mass on the best state: the best level of its support wins
    p = np.array([0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(theory.curated(p, r, k, np.inf), argmax_law(p, r, k), atol=1e-15)


def brute_curated(p: np.ndarray, r: np.ndarray, k: int, beta: float) -> np.ndarray:
    """p H^K by enumerating the K - 1 competitors, with weights relative to the candidate's own."""
    h = np.zeros_like(p)
    for combo in itertools.product(range(len(p)), repeat=k - 1):
        rel = np.exp(beta * (r[list(combo)][None, :] - r[:, None])).sum(axis=1)
        h += np.prod(p[list(combo)]) * k / (1.0 + rel)
    return p * h


@pytest.mark.parametrize("k", [2, 3])
def test_exact_update_is_stable_for_a_reward_range_of_1000(k):
    r = np.array([0.0, 1.0, 2.0, 999.0, 1000.0])
    p = np.array([0.3, 0.3, 0.2, 0.1, 0.1])
    with np.errstate(over="ignore"):
        expected = brute_curated(p, r, k, 1.0)
    np.testing.assert_allclose(theory.curated(p, r, k, 1.0), expected, rtol=1e-12, atol=1e-300)
    # the states far below still compete among themselves when no better candidate is drawn
    assert theory.curated(p, r, k, 1.0)[0] > 0


def test_population_run_with_a_huge_reward_range_does_not_diverge(store_path):
    raw = copy.deepcopy(DISCRETE) | {"replicates": 2, "generations": 3}
    raw["model"] = {"kind": "discrete", "population": True}
    r = np.array([0.0, 1.0, 500.0, 1000.0])
    raw["curation"] |= {"beta": 1.0, "reward": {"kind": "table", "params": {"values": r.tolist()}}}
    store, (run_id,) = run_raw(raw, store_path)
    assert store.run(run_id).status == "done"
    m = np.stack([metric(store, run_id, f"mass_{i}") for i in range(4)], axis=-1)
    for t in range(3):
        with np.errstate(over="ignore"):
            expected = brute_curated(m[t, 0], r, 3, 1.0)
        np.testing.assert_allclose(m[t + 1, 0], expected, rtol=1e-12, atol=1e-300)


def test_sampled_loop_at_infinite_beta_follows_the_argmax_law(store_path):
    store, (run_id,) = run_raw(DISCRETE, store_path)
    assert store.run(run_id).status == "done"
    m = np.stack([metric(store, run_id, f"mass_{i}") for i in range(4)], axis=-1)
    assert np.all(np.isfinite(m))
    exact = theory.curated(m[0], np.arange(4.0), 3, np.inf)
    res = m[1] - exact
    se = res.std(axis=0, ddof=1) / np.sqrt(len(res))
    assert np.all(se > 0) and np.all(np.abs(res.mean(axis=0)) < 4.5 * se)


EMPTY = {
    "name": "empty-curation",
    "replicates": 3,
    "generations": 2,
    "data": {"kind": "gaussian", "n_real": 20, "params": {"dim": 1}},
    "curation": {
        "kind": "threshold",
        "threshold": 100.0,
        "reward": {"kind": "linear", "params": {"coef": [1.0]}},
    },
    "metrics": [],
}
FAMILIES = [
    ("gaussian", {}),
    ("kde", {}),
    ("gmm", {"n_components": 1}),
    ("flow", {"hidden": 4, "depth": 1, "train_steps": 2, "batch_size": 4}),
]


@pytest.mark.parametrize(("kind", "params"), FAMILIES)
def test_a_curation_that_keeps_nothing_fails_replace_and_leaves_mix_on_real_data(
    store_path, kind, params
):
    raw = copy.deepcopy(EMPTY) | {"model": {"kind": kind, "params": params}}
    store, (run_id,) = run_raw(raw | {"scheme": {"kind": "replace"}}, store_path)
    record = store.run(run_id)
    assert record.status == "failed"
    assert (
        record.error
        == "RunFailed: generation 1: curation threshold kept no sample of replicate(s) [0, 1, 2]"
    )
    store, (run_id,) = run_raw(raw | {"scheme": {"kind": "mix", "lam": 1.0}}, store_path)
    assert store.run(run_id).status == "done"


def test_discrete_replace_with_nothing_kept_fails_naming_the_curation(store_path):
    raw = copy.deepcopy(DISCRETE) | {"replicates": 2}
    raw["curation"] = {"kind": "threshold", "threshold": 5.0, "reward": TABLE}
    store, (run_id,) = run_raw(raw, store_path)
    assert store.run(run_id).error.startswith("RunFailed: generation 1: curation threshold kept")
    raw["model"] = {"kind": "discrete", "population": True}
    store, (run_id,) = run_raw(raw, store_path)
    assert store.run(run_id).error.startswith(
        "RunFailed: generation 1: curation threshold kept no mass of replicate(s) [0, 1]"
    )


def with_rejected(real: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The real set followed by as many far-away points of weight 0 (what `mix` trains on when the
    curation kept nothing)."""
    junk = 50.0 + rng.standard_normal(real.shape)
    w = np.concatenate([np.ones(real.shape[:2]), np.zeros(real.shape[:2])], axis=1)
    return np.concatenate([real, junk], axis=1), w


def test_families_ignore_weight_zero_samples():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((3, 30, 2))
    x, w = with_rejected(real, rng)
    streams = Streams(0)
    for make in (
        lambda: GaussianModel(GaussianModelParams(), 2, 3, streams),
        lambda: KDE(KDEParams(), 2, 3, streams),
        lambda: GMM(GMMParams(n_components=2), 2, 3, streams),
    ):
        on_real, weighted = make(), make()
        on_real.fit(real, None, 1, False)
        weighted.fit(x, w, 1, False)
        a = on_real.sample(500, streams.per_replicate("s", 0), 1)
        b = weighted.sample(500, streams.per_replicate("s", 0), 1)
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
        assert np.abs(b).max() < 20


@pytest.mark.parametrize("beta", [1.0, 50.0, 1e6, float("inf")])
def test_reward_statistics_are_never_nan_at_large_beta(beta):
    from selfconsume.metrics.curation import exact_reward_stats, sample_reward_stats

    p = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    r = np.array([0.0, 1.0, 3.0])
    exact = exact_reward_stats(p, r, beta)
    sampled = sample_reward_stats(np.array([[0.0, 1.0], [3.0, 3.0]]), beta)
    for out in (exact, sampled):
        assert not any(np.isnan(v).any() for v in out.values())
        assert np.allclose(out["reward_mean"], [0.5, 3.0])
        if np.isinf(beta):
            assert "exp_reward_mean" not in out
        else:
            with np.errstate(over="ignore"):
                expected = [0.5 * (1 + np.exp(beta)), np.exp(3 * beta)]
            np.testing.assert_allclose(out["exp_reward_mean"], expected, rtol=1e-12)
            assert out["exp_reward_var"][1] == 0.0  # a point mass
            var0 = 0.25 * (np.exp(beta) - 1) ** 2 if beta < 700 else np.inf
            np.testing.assert_allclose(out["exp_reward_var"][0], var0, rtol=1e-12)
