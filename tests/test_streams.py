"""Random streams: replicate r's numbers never depend on the number of replicates, and the arms of a
sweep are independent unless the config asks for common random numbers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import metric, run_raw

from selfconsume.plan import resolve
from selfconsume.seeding import Streams, arm_key

DRAWS = {
    "standard_normal": lambda g, r: g.standard_normal((r, 5, 2)),
    "random": lambda g, r: g.random((r, 4)),
    "gumbel": lambda g, r: g.gumbel(size=(r, 3, 4)),
    "integers": lambda g, r: g.integers(0, 9, size=(r, 6)),
    "choice": lambda g, r: g.choice(4, size=(r, 7, 1), p=[0.4, 0.3, 0.2, 0.1]),
    "multinomial": lambda g, r: g.multinomial(20, np.full((r, 4), 0.25)),
    "permuted": lambda g, r: g.permuted(np.tile(np.arange(10), (r, 1)), axis=1),
}


def test_per_replicate_draws_do_not_depend_on_the_number_of_replicates():
    streams = Streams(3, arm=11)
    small, large = streams.per_replicate("x", 2), streams.per_replicate("x", 2)
    for draw in DRAWS.values():  # one after another: the first call's size cannot shift the next
        a, b = draw(small, 3), draw(large, 7)
        np.testing.assert_array_equal(a, b[:3])
        assert not np.array_equal(b[3], b[4])


GAUSSIAN_DATA = {"kind": "eight_gaussians", "n_real": 40, "n_test": 200}
RUNS = {
    "gaussian": {"data": GAUSSIAN_DATA, "model": {"kind": "gaussian"}, "metrics": ["modes"]},
    "kde": {"data": GAUSSIAN_DATA, "model": {"kind": "kde"}, "metrics": ["modes"]},
    "gmm": {
        "data": GAUSSIAN_DATA,
        "model": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 5}},
        "metrics": ["modes"],
    },
    "discrete": {
        "data": {"kind": "discrete", "n_real": 30, "params": {"probs": [0.4, 0.3, 0.2, 0.1]}},
        "model": {"kind": "discrete"},
        "curation": {
            "kind": "bradley_terry",
            "k": 3,
            "reward": {"kind": "table", "params": {"values": [0, 1, 2, 3]}},
        },
        "metrics": ["mass"],
    },
}


@pytest.mark.parametrize("kind", sorted(RUNS))
def test_replicate_metrics_do_not_depend_on_the_number_of_replicates(store_path, kind):
    base = {"name": f"streams-{kind}", "generations": 2} | RUNS[kind]
    base["scheme"] = {"kind": "accumulate_subsample", "lam": 0.5}
    store, (three,) = run_raw(base | {"replicates": 3}, store_path)
    _, (seven,) = run_raw(base | {"replicates": 7}, store_path)
    names = {m for _, m, _ in store.metric_arrays(three)}
    assert names
    for name in names:
        a, b = metric(store, three, name), metric(store, seven, name)
        np.testing.assert_array_equal(a, b[:, :3], err_msg=name)


WARMUP = {
    "name": "arms",
    "replicates": 400,
    "generations": 2,
    "data": {"kind": "gaussian", "n_real": 10, "params": {"mean": 1.0, "std": 2.0}},
    "model": {"kind": "gaussian"},
    "metrics": ["gaussian_params"],
    "sweep": {"model.params.estimator": ["unbiased", "mle"]},
}


def z_scores(store, run_id: str) -> np.ndarray:
    """Standardised fitted means (G, R): (mean - 1) / (2 / sqrt(10)) at each generation."""
    return (metric(store, run_id, "mean") - 1.0) / (2.0 / np.sqrt(10))


def test_arms_are_independent_unless_common_random_numbers_are_asked(store_path):
    store, (unbiased, mle) = run_raw(WARMUP, store_path)
    r = WARMUP["replicates"]
    for t in range(3):  # correlation of independent z's: about N(0, 1 / R)
        corr = np.corrcoef(z_scores(store, unbiased)[t], z_scores(store, mle)[t])[0, 1]
        assert abs(corr) < 4.5 / np.sqrt(r)
    crn = copy.deepcopy(WARMUP) | {"common_random_numbers": True}
    store, (unbiased, mle) = run_raw(crn, store_path)
    z_u, z_m = z_scores(store, unbiased), z_scores(store, mle)
    np.testing.assert_array_equal(z_u[0], z_m[0])  # the same real set
    # the same synthetic noise: the step of the mean in units of the fitted std
    std_u, std_m = metric(store, unbiased, "std"), metric(store, mle, "std")
    np.testing.assert_allclose((z_u[1] - z_u[0]) / std_u[0], (z_m[1] - z_m[0]) / std_m[0])


def test_the_arm_key_names_what_is_simulated_only():
    raw = {k: v for k, v in WARMUP.items() if k != "sweep"}
    key = arm_key(resolve(raw))
    for change in ({"name": "other"}, {"generations": 9}, {"replicates": 3}, {"metrics": ["w2"]}):
        assert arm_key(resolve(raw | change)) == key
    assert arm_key(resolve(raw | {"scheme": {"kind": "mix", "lam": 0.5}})) != key
    assert arm_key(resolve(raw | {"common_random_numbers": True})) == 0
    assert Streams(0, key).numpy("real", 0).random() != Streams(0).numpy("real", 0).random()
