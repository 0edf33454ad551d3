"""Population mode is the infinite-sample limit: it starts from and mixes with the source's exact
distribution; the real set's empirical distribution stays available as an option."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import curated_discrete, metric, run_raw

from selfconsume.data.gaussian import GaussianParams, GaussianSource
from selfconsume.data.toy2d import (
    Checkerboard,
    CheckerboardParams,
    EightGaussians,
    EightGaussiansParams,
    Rings,
    RingsParams,
)
from selfconsume.errors import ConfigError
from selfconsume.loop.run import run_config
from selfconsume.models.discrete import frequencies
from selfconsume.models.gaussian import GaussianModel, GaussianModelParams
from selfconsume.plan import build, resolve
from selfconsume.seeding import Streams
from selfconsume.store.sqlite import Store
from selfconsume.theory import curation as theory

P = np.array([0.4, 0.3, 0.2, 0.1])
R = np.arange(4.0)
DISCRETE = curated_discrete("population", replicates=3, generations=3, n_real=20, population=True)


def masses(store: Store, run_id: str) -> np.ndarray:
    return np.stack([metric(store, run_id, f"mass_{i}") for i in range(4)], axis=-1)


@pytest.mark.parametrize("lam", [None, 0.5])
def test_discrete_population_mode_starts_at_the_true_probs(store_path, lam):
    scheme = {"kind": "replace"} if lam is None else {"kind": "mix", "lam": lam}
    store, (run_id,) = run_raw(copy.deepcopy(DISCRETE) | {"scheme": scheme}, store_path)
    m = masses(store, run_id)
    np.testing.assert_allclose(m[0], np.broadcast_to(P, (3, 4)), rtol=1e-15)
    p = P
    for t in range(1, 4):
        p = theory.mixed(P, theory.curated(p, R, 4, 1.0), lam)
        np.testing.assert_allclose(m[t], np.broadcast_to(p, (3, 4)), rtol=1e-12)


def test_empirical_population_target_uses_each_replicates_real_frequencies(store_path):
    raw = copy.deepcopy(DISCRETE) | {"scheme": {"kind": "mix", "lam": 1.0}}
    raw["model"]["params"] = {"population_target": "empirical"}
    store, (run_id,) = run_raw(raw, store_path)
    plan = build(resolve(raw))
    real = plan.source.sample(3, 20, plan.streams.per_replicate("real", 0))
    p_data = frequencies(real, None, 4)
    m = masses(store, run_id)
    np.testing.assert_allclose(m[0], p_data, rtol=1e-15)
    np.testing.assert_allclose(
        m[1], theory.mixed(p_data, theory.curated(p_data, R, 4, 1.0), 1.0), rtol=1e-12
    )


MEAN = np.array([1.0, -2.0])
COV = np.array([[2.0, 0.5], [0.5, 1.0]])


def test_gaussian_population_mix_converges_to_the_true_moments():
    source = GaussianSource(GaussianParams(dim=2, mean=MEAN.tolist(), cov=COV.tolist()))
    model = GaussianModel(GaussianModelParams(), 2, 4, Streams(0))
    model.mean[:] = [5.0, 5.0]
    model.cov[:] = 0.1 * np.eye(2)
    real = source.sample(4, 10, np.random.default_rng(0))  # ignored: the target is exact
    lam = 1.0
    gap0 = model.mean - MEAN
    for t in range(1, 61):
        model.population_step(real, lam, None, source)
        np.testing.assert_allclose(model.mean - MEAN, gap0 * (lam / (1 + lam)) ** t, atol=1e-14)
    np.testing.assert_allclose(model.mean, np.broadcast_to(MEAN, (4, 2)), atol=1e-14)
    np.testing.assert_allclose(model.cov, np.broadcast_to(COV, (4, 2, 2)), atol=1e-12)


def test_gaussian_population_run_sits_at_the_true_moments(store_path):
    raw = {
        "name": "gaussian-population",
        "replicates": 2,
        "generations": 3,
        "data": {"kind": "gaussian", "n_real": 5, "params": {"mean": 1.5, "std": 2.0}},
        "model": {"kind": "gaussian", "population": True},
        "scheme": {"kind": "mix", "lam": 0.5},
        "metrics": ["gaussian_params"],
    }
    store, (run_id,) = run_raw(raw, store_path)
    np.testing.assert_allclose(metric(store, run_id, "mean"), 1.5, rtol=1e-14)
    np.testing.assert_allclose(metric(store, run_id, "std"), 2.0, rtol=1e-14)


def test_exact_target_needs_a_source_with_an_exact_distribution(store_path):
    raw = {
        "name": "moons-population",
        "generations": 1,
        "data": {"kind": "two_moons", "n_real": 50},
        "model": {"kind": "gaussian", "population": True},
        "scheme": {"kind": "mix", "lam": 1.0},
    }
    with pytest.raises(ConfigError, match="model.params.population_target"):
        run_config(resolve(raw), Store(store_path))
    raw["model"]["params"] = {"population_target": "empirical"}
    store, (run_id,) = run_raw(raw, store_path)
    assert store.run(run_id).status == "done"


@pytest.mark.parametrize(
    "source",
    [
        EightGaussians(EightGaussiansParams(weights=[1, 2, 3, 4, 1, 1, 1, 1], std=0.3)),
        Rings(RingsParams(weights=[1, 2, 3])),
        Checkerboard(CheckerboardParams(n_cells=3)),
        GaussianSource(GaussianParams(dim=2, mean=MEAN.tolist(), cov=COV.tolist())),
    ],
)
def test_toy_moments_match_samples(source):
    n = 400_000
    x = source.sample(1, n, np.random.default_rng(0))[0]
    mean, cov = source.moments()
    centred = x - mean
    np.testing.assert_array_less(np.abs(centred.mean(0)), 5 * np.sqrt(np.diag(cov) / n))
    prods = centred[:, :, None] * centred[:, None, :]
    se = prods.std(0) / np.sqrt(n)
    np.testing.assert_array_less(np.abs(prods.mean(0) - cov), 5 * se)
