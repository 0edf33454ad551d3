"""Schemes build the training sets DESIGN.md describes; curation picks with the Luce probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import keep

from selfconsume.config import SchemeConfig
from selfconsume.errors import ConfigError
from selfconsume.loop.curation import choose_bradley_terry
from selfconsume.loop.schemes import SCHEMES, Pool, Scheme, resolve_scheme

R, N, D = 3, 10, 2


def batch(value: float, n: int) -> np.ndarray:
    return np.full((R, n, D), value)


def scheme(kind: str, **keys) -> Scheme:
    cfg = resolve_scheme(SchemeConfig(kind=kind, params=keys), N)
    return SCHEMES.get(kind).obj(cfg.params, N)


@pytest.mark.parametrize(
    ("kind", "keys", "expected"),
    [
        ("replace", {}, N),
        ("replace", {"n_synthetic": 7}, 7),
        ("mix", {"lam": 0.5}, 5),
        ("mix", {"lam": 2.5}, 25),
        ("mix", {"lam": 0.0}, 0),
        ("mix", {"lam": 0.25}, 3),  # 2.5 rounds half up, not to even
        ("mix", {"n_synthetic": 4}, 4),
        ("accumulate", {}, N),
        ("fresh", {"lam": 0.3}, 3),
    ],
)
def test_synthetic_count(kind, keys, expected):
    assert scheme(kind, **keys).n_synthetic == expected


def test_resolution_fills_derived_keys_and_refuses_disagreement():
    def resolved(kind: str, n_real: int = N, **params) -> Any:
        return resolve_scheme(SchemeConfig(kind=kind, params=params), n_real).params

    assert resolved("mix", n_synthetic=4).lam == pytest.approx(0.4)
    assert resolved("mix", 5, lam=0.5).n_synthetic == 3
    with pytest.raises(ConfigError, match="scheme.params.n_synthetic"):
        resolved("mix", lam=0.5, n_synthetic=7)
    with pytest.raises(ConfigError, match="scheme.params.lam"):
        resolved("replace", lam=0.5)
    with pytest.raises(ConfigError, match="scheme.params.lam"):
        resolved("mix", lam=1e308)
    with pytest.raises(ConfigError, match="scheme.params.lam"):
        resolved("mix")
    with pytest.raises(ConfigError, match="scheme.kind"):
        resolve_scheme(SchemeConfig(kind="nope"), N)


def test_replace_and_mix_sets():
    rng = np.random.default_rng(0)
    real, syn = batch(0.0, N), batch(1.0, 5)
    x, w = scheme("replace").build(real, syn, None, Pool(), rng)
    assert x is syn and w is None
    x, w = scheme("mix", lam=0.5).build(real, syn, None, Pool(), rng)
    assert x.shape == (R, N + 5, D) and (x == 0).all(-1).sum(1).tolist() == [N] * R
    weights = np.zeros((R, 5))
    _, w = scheme("mix", lam=0.5).build(real, syn, weights, Pool(), rng)
    np.testing.assert_array_equal(w, np.concatenate([np.ones((R, N)), weights], axis=1))


def test_accumulate_keeps_every_batch_and_subsample_has_fixed_size():
    rng = np.random.default_rng(0)
    real = batch(0.0, N)
    full, sub = scheme("accumulate"), scheme("accumulate_subsample", size=7)
    pool = Pool()
    for t in range(1, 4):
        pool.append(batch(t, N), None)
        x, _ = full.build(real, batch(t, N), None, pool, rng)
        assert x.shape[1] == N * (t + 1)
        assert sorted(set(x[0, :, 0])) == list(range(t + 1))
        y, _ = sub.build(real, batch(t, N), None, pool, rng)
        assert y.shape[1] == 7
    # subsampling is without replacement from real set and pool: counts per batch never exceed N
    counts = [(y[0, :, 0] == v).sum() for v in range(4)]
    assert max(counts) <= N and sum(counts) == 7
    assert scheme("accumulate_subsample").build(real, None, None, pool, rng)[0].shape[1] == N


def test_pool_appends_keep_weights_of_earlier_batches():
    pool = Pool()
    for t in range(5):
        pool.append(batch(t, 3), None if t % 2 else np.full((R, 3), 0.5))
    assert pool.x.shape == (R, 15, D) and pool.x[0, :, 0].tolist() == sorted([0, 1, 2, 3, 4] * 3)
    assert pool.w[0].tolist() == [0.5] * 3 + [1.0] * 3 + [0.5] * 3 + [1.0] * 3 + [0.5] * 3


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

    x, w = keep(sample, 200, "bradley_terry", {"k": 4, "beta": 50.0}, reward, rng)
    assert x.shape == (R, 200, 1) and w is None
    # at large beta the pick is the best of 4 standard normals: mean 1.0294 (order statistic)
    assert abs(x.mean() - 1.0294) < 5 * 0.70 / np.sqrt(x.size)
    x, _ = keep(sample, 100, "top_fraction", {"fraction": 0.25}, reward, rng)
    assert x.shape == (R, 100, 1) and x.min() > 0.3  # the top quarter of N(0,1) lies above 0.674
    x, w = keep(sample, 100, "threshold", {"threshold": 0.0}, reward, rng)
    np.testing.assert_array_equal(w, (x[..., 0] >= 0).astype(float))
