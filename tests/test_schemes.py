"""Schemes build the training sets DESIGN.md describes; curation picks with the Luce probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from selfconsume.config import CurationConfig, RewardConfig, SchemeConfig
from selfconsume.loop.curation import choose_bradley_terry, curate
from selfconsume.loop.schemes import SchemeState, build_training_set, synthetic_count

R, N, D = 3, 10, 2


def batch(value: float, n: int) -> np.ndarray:
    return np.full((R, n, D), value)


@pytest.mark.parametrize(
    ("kind", "lam", "n_synthetic", "expected"),
    [
        ("replace", None, None, N),
        ("replace", None, 7, 7),
        ("mix", 0.5, None, 5),
        ("mix", 2.5, None, 25),
        ("mix", 0.0, None, 0),
        ("accumulate", None, None, N),
        ("fresh", 0.3, None, 3),
    ],
)
def test_synthetic_count(kind, lam, n_synthetic, expected):
    assert synthetic_count(SchemeConfig(kind=kind, lam=lam, n_synthetic=n_synthetic), N) == expected


def test_replace_and_mix_sets():
    rng = np.random.default_rng(0)
    real, syn = batch(0.0, N), batch(1.0, 5)
    x, w = build_training_set(SchemeConfig(kind="replace"), real, syn, None, SchemeState(), rng)
    assert x is syn and w is None
    x, w = build_training_set(
        SchemeConfig(kind="mix", lam=0.5), real, syn, None, SchemeState(), rng
    )
    assert x.shape == (R, N + 5, D) and (x == 0).all(-1).sum(1).tolist() == [N] * R
    weights = np.zeros((R, 5))
    _, w = build_training_set(
        SchemeConfig(kind="mix", lam=0.5), real, syn, weights, SchemeState(), rng
    )
    np.testing.assert_array_equal(w, np.concatenate([np.ones((R, N)), weights], axis=1))


def test_accumulate_keeps_every_batch_and_subsample_has_fixed_size():
    rng = np.random.default_rng(0)
    real = batch(0.0, N)
    full, sub = SchemeState(), SchemeState()
    for t in range(1, 4):
        x, _ = build_training_set(
            SchemeConfig(kind="accumulate"), real, batch(t, N), None, full, rng
        )
        assert x.shape[1] == N * (t + 1)
        assert sorted(set(x[0, :, 0])) == list(range(t + 1))
        y, _ = build_training_set(
            SchemeConfig(kind="accumulate_subsample"), real, batch(t, N), None, sub, rng
        )
        assert y.shape[1] == 2 * N
    # subsampling is without replacement from the pool: counts per batch never exceed N
    counts = [(y[0, :, 0] == v).sum() for v in range(4)]
    assert max(counts) <= N and sum(counts) == 2 * N


def test_bradley_terry_choice_matches_softmax():
    rng = np.random.default_rng(1)
    rewards = np.array([0.0, 1.0, 2.0, -1.0])
    m = 200_000
    picks = choose_bradley_terry(np.broadcast_to(rewards, (m, 4)), 0.7, rng)
    freq = np.bincount(picks, minlength=4) / m
    p = np.exp(0.7 * rewards) / np.exp(0.7 * rewards).sum()
    se = np.sqrt(p * (1 - p) / m)
    assert np.all(np.abs(freq - p) < 5 * se)


def test_curate_shapes_for_each_filter():
    rng = np.random.default_rng(2)

    def sample(m: int) -> np.ndarray:
        return rng.normal(size=(R, m, 1))

    def reward(x: np.ndarray) -> np.ndarray:
        return x[..., 0]

    bt = CurationConfig(kind="bradley_terry", k=4, beta=50.0, reward=RewardConfig(kind="x"))
    x, w = curate(sample, 200, bt, reward, rng)
    assert x.shape == (R, 200, 1) and w is None
    # at large beta the pick is the best of 4 standard normals: mean 1.0294 (order statistic)
    assert abs(x.mean() - 1.0294) < 5 * 0.70 / np.sqrt(x.size)
    top = CurationConfig(kind="top_fraction", fraction=0.25, reward=RewardConfig(kind="x"))
    x, _ = curate(sample, 100, top, reward, rng)
    assert x.shape == (R, 100, 1) and x.min() > 0.3  # the top quarter of N(0,1) lies above 0.674
    thr = CurationConfig(kind="threshold", threshold=0.0, reward=RewardConfig(kind="x"))
    x, w = curate(sample, 100, thr, reward, rng)
    np.testing.assert_array_equal(w, (x[..., 0] >= 0).astype(float))
