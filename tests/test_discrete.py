"""Discrete source and family: fit, sample, the exact population mode, and the sampled curated loop
against the exact update (per replicate, tolerance from the replicate spread)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import curated_discrete, metric, run_raw

from selfconsume.data.discrete import DiscreteParams, DiscreteSource
from selfconsume.errors import ConfigError
from selfconsume.models.discrete import DiscreteModel, DiscreteModelParams
from selfconsume.plan import resolve
from selfconsume.seeding import Streams
from selfconsume.theory import curation as theory

ISSUE = curated_discrete(
    "curated-discrete", replicates=200, generations=10, n_real=1000, metrics=("mass", "reward")
)
REWARDS = np.arange(4.0)


def masses(store, run_id: str, states: int = 4) -> np.ndarray:
    """mass_i of every generation and replicate: (G, R, S)."""
    return np.stack([metric(store, run_id, f"mass_{i}") for i in range(states)], axis=-1)


def test_source_samples_states_with_its_probabilities():
    source = DiscreteSource(DiscreteParams(probs=[0.5, 0.25, 0.25]))
    x = source.sample(4, 50_000, np.random.default_rng(0))
    assert x.shape == (4, 50_000, 1) and x.dtype == np.int64
    freq = np.bincount(x.ravel(), minlength=3) / x.size
    np.testing.assert_allclose(freq, source.probs, atol=5 * np.sqrt(0.25 / x.size))


def test_fit_is_weighted_frequencies_per_replicate():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 5, size=(3, 40, 1))
    w = rng.random((3, 40))
    model = DiscreteModel(DiscreteModelParams(), 1, 3, Streams(0))
    model.fit(x, w, 0, False)
    for r in range(3):
        expected = np.array([w[r][x[r, :, 0] == s].sum() for s in range(5)]) / w[r].sum()
        np.testing.assert_allclose(model.probs[r], expected)
    model.fit(x, None, 1, False)
    np.testing.assert_allclose(model.probs[1], np.bincount(x[1, :, 0], minlength=5) / 40)


def test_sample_follows_each_replicate_and_is_shuffled():
    model = DiscreteModel(DiscreteModelParams(states=3), 1, 2, Streams(0))
    model.probs = np.array([[0.7, 0.0, 0.3], [0.1, 0.5, 0.4]])
    x = model.sample(40_000, np.random.default_rng(2), 1)
    assert x.shape == (2, 40_000, 1) and x.dtype == np.int64
    for r in range(2):
        freq = np.bincount(x[r, :, 0], minlength=3) / 40_000
        np.testing.assert_allclose(freq, model.probs[r], atol=5 * np.sqrt(0.25 / 40_000))
    first = x[0, :20_000, 0]  # random order: the first half has the same frequencies
    np.testing.assert_allclose(np.bincount(first, minlength=3) / 20_000, [0.7, 0, 0.3], atol=0.02)


def test_issue_config_runs_sampled_and_in_population_mode(store_path):
    sampled = copy.deepcopy(ISSUE)
    population = copy.deepcopy(ISSUE) | {"model": {"kind": "discrete", "population": True}}
    limit = copy.deepcopy(population)
    limit["curation"]["k"] = float("inf")
    store, ids = run_raw(sampled, store_path)
    run_raw(population, store_path)
    run_raw(limit, store_path)
    runs = {r.run_id: r for r in store.runs()}
    assert len(runs) == 3 and all(r.status == "done" for r in runs.values())
    # population mode runs the exact update on each replicate's own real frequencies
    p = masses(store, resolve(population).run_id)
    np.testing.assert_allclose(
        p[1], theory.mixed(p[0], theory.curated(p[0], REWARDS, 4, 1.0), None), atol=1e-12
    )
    q = masses(store, resolve(limit).run_id)
    np.testing.assert_allclose(q[1], theory.tilted(q[0], REWARDS, 1.0), atol=1e-12)
    exp_mean = metric(store, ids[0], "exp_reward_mean").mean(axis=1)
    assert exp_mean[-1] > 19.5 and np.all(np.diff(exp_mean) > 0)


@pytest.mark.parametrize(
    ("k", "beta", "lam"), [(2, 1.0, None), (4, 0.5, 0.5), (3, 2.0, 1.0), (4, 1.0, 0.5)]
)
def test_sampled_loop_agrees_with_exact_update(store_path, k, beta, lam):
    """E[p_{t+1} | p_t] is the exact update of p_t (mix: with the replicate's real frequencies),
    so the residuals p_{t+1} - T(p_t) average to 0 within a few standard errors."""
    raw = copy.deepcopy(ISSUE) | {"replicates": 2000, "generations": 3, "metrics": ["mass"]}
    raw["curation"] |= {"k": k, "beta": beta}
    raw["scheme"] = {"kind": "replace"} if lam is None else {"kind": "mix", "lam": lam}
    store, (run_id,) = run_raw(raw, store_path)
    m = masses(store, run_id)

    def worst_z(k_used: float) -> float:
        z = []
        for t in range(3):
            exact = theory.mixed(m[0], theory.curated(m[t], REWARDS, k_used, beta), lam)
            res = m[t + 1] - exact
            se = res.std(axis=0, ddof=1) / np.sqrt(res.shape[0])
            live = se > 0  # states already lost in every replicate have no spread
            z.append(np.abs(res.mean(axis=0)[live]) / se[live])
        return float(np.concatenate(z).max())

    assert worst_z(k) < 4.5
    assert worst_z(k + 1) > 10  # the check can tell K from K + 1


def test_mixed_loop_keeps_mass_on_every_state(store_path):
    raw = copy.deepcopy(ISSUE) | {"generations": 15, "scheme": {"kind": "mix", "lam": 0.5}}
    store, (run_id,) = run_raw(raw, store_path)
    last = masses(store, run_id)[-1]
    assert np.all(last.mean(axis=0) > 0.05) and np.all(last > 0)


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ("data.params.probs", [0.5, 0.6], "data.params.probs"),
        ("data.params.probs", [1.0], "data.params.probs"),
        ("model.params.states", 1, "model.params.states"),
    ],
)
def test_bad_discrete_params_name_the_key(path, value, needle):
    raw = copy.deepcopy(ISSUE)
    section, _, key = path.partition(".params.")
    raw[section].setdefault("params", {})[key] = value
    with pytest.raises(ConfigError) as err:
        resolve(raw)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_discrete_family_refuses_continuous_data(store_path):
    raw = copy.deepcopy(ISSUE) | {"replicates": 2, "generations": 1, "curation": None}
    raw["data"] = {"kind": "gaussian", "n_real": 10}
    raw["metrics"] = []
    with pytest.raises(ConfigError, match="model.kind"):
        run_raw(raw, store_path)
