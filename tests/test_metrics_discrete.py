"""Entropy and states lost of the discrete family: exact on known vectors, and the replace loop
against the neutral Wright-Fisher closed forms at tolerances from the Monte Carlo standard error."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from helpers import metric, run_raw, z_score

from selfconsume.data.discrete import DiscreteParams, DiscreteSource
from selfconsume.errors import ConfigError
from selfconsume.metrics.base import MetricContext
from selfconsume.metrics.curation import entropy, states_lost
from selfconsume.seeding import Streams
from selfconsume.theory import discrete as theory

Z = 4.5
N, GENERATIONS = 20, 10
PROBS = [0.5, 0.3, 0.15, 0.05]


def context(probs: list[list[float]], truth: list[float], model: object = None) -> MetricContext:
    source = DiscreteSource(DiscreteParams(probs=truth))
    empty = np.zeros((len(probs), 0, 1), dtype=np.int64)
    return MetricContext(
        model=model or SimpleNamespace(probs=np.array(probs)),
        source=source,
        real=empty,
        test=empty,
        generation=0,
        streams=Streams(0),
    )


def test_entropy_and_states_lost_of_known_vectors():
    ctx = context([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]], [0.4, 0.3, 0.2, 0.1])
    np.testing.assert_allclose(entropy(ctx)["entropy"], [1.5 * np.log(2), 0.0], atol=1e-15)
    # p_t is padded to the source's 4 states: the unseen fourth state is lost too
    np.testing.assert_array_equal(states_lost(ctx)["states_lost"], [1, 3])


def test_states_outside_the_data_support_are_not_lost():
    ctx = context([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(states_lost(ctx)["states_lost"], [0, 1])


@pytest.mark.parametrize("name", ["entropy", "states_lost"])
def test_non_discrete_models_are_rejected_before_a_run(name):
    from selfconsume.plan import resolve

    raw = {
        "name": "x",
        "data": {"kind": "gaussian", "n_real": 10},
        "model": {"kind": "gaussian"},
        "metrics": [name],
    }
    with pytest.raises(ConfigError, match=f"metrics: {name} needs a discrete model"):
        resolve(raw)


def test_count_laws_start_from_the_binomial_closed_form():
    # states lost at generation 0: a state is unseen in n real draws with probability (1 - q)^n
    lost = theory.expected_states_lost(3, N, PROBS + [0.0])
    assert lost[0] == pytest.approx(sum((1 - q) ** N for q in PROBS), rel=1e-12)
    assert np.all(np.diff(lost) > 0) and lost[-1] < len(PROBS) - 1  # absorbing, not yet fixed
    laws = theory.count_laws(3, N, PROBS)
    np.testing.assert_allclose(laws.sum(-1), 1.0, rtol=1e-12)
    # the count is a martingale: E[N_t] = n q_i at every generation
    np.testing.assert_allclose(laws @ np.arange(N + 1), N * np.tile(PROBS, (4, 1)), rtol=1e-10)


def test_replace_loop_matches_wright_fisher(store_path):
    raw = {
        "name": "wf",
        "seed": 5,
        "replicates": 4000,
        "generations": GENERATIONS,
        "data": {"kind": "discrete", "n_real": N, "params": {"probs": PROBS}},
        "model": {"kind": "discrete"},
        "scheme": {"kind": "replace"},
        "metrics": ["entropy", "states_lost"],
    }
    store, (rid,) = run_raw(raw, store_path)
    expected = {
        "entropy": theory.expected_entropy(GENERATIONS, N, PROBS),
        "states_lost": theory.expected_states_lost(GENERATIONS, N, PROBS),
    }
    for name, e in expected.items():
        sim = metric(store, rid, name)
        for t in (0, 3, GENERATIONS):
            assert z_score(sim[t], e[t]) < Z, (name, t)
        # the check can fail: one generation later is many standard errors away
        assert z_score(sim[3], e[4]) > 8, name
