"""The contract of a cure (an intervention on the loop): its hooks keep the shapes of what they
are given (samples (R, m, d), training weights (R, N) >= 0 or None), and a run with the cure
finishes, finite and the same for the same seed."""

from __future__ import annotations

import numpy as np

from selfconsume.data.base import DATA
from selfconsume.loop.cures import CURES
from selfconsume.loop.run import run_config
from selfconsume.store.sqlite import Store
from selfconsume.testing.base import (
    Case,
    N,
    R,
    assert_finite,
    assert_same,
    check_params_round_trip,
)

GENERATIONS = 2


def check_hooks_keep_shapes(case: Case) -> None:
    """correct gives samples of the shape it is given; weigh gives weights (R, N) >= 0 or None."""
    cfg = case.config(cures={case.kind: case.raw_params()})
    cure = CURES.get(case.kind).obj(cfg.cures[case.kind], DATA.make(cfg.data.kind, cfg.data.params))
    x = np.random.default_rng(0).standard_normal((R, N + 16, 2))
    corrected = cure.correct(x[:, N:], 1)
    assert corrected.shape == (R, 16, 2), f"correct gave shape {corrected.shape}"
    assert_finite(corrected, "a corrected sample")
    for given in (None, np.ones(x.shape[:2])):
        w = cure.weigh(x, given, N)
        assert w is None or (w.shape == x.shape[:2] and np.all(w >= 0)), "weigh broke the weights"


def values(case: Case, name: str) -> dict[tuple[int, str], np.ndarray]:
    """Every metric value of a short run with the cure, by (generation, metric)."""
    cures = {case.kind: case.raw_params()}
    cfg = case.config(cures=cures, metrics=["mmd"], generations=GENERATIONS)
    store = Store(case.folder / f"{name}.sqlite")
    try:
        run_config(cfg, store)
        return {(g, m): v for g, m, v in store.metric_arrays(cfg.run_id)}
    finally:
        store.close()


def check_runs_deterministically(case: Case) -> None:
    """A run with the cure finishes with finite values, the same in a second run."""
    first, second = values(case, "first"), values(case, "second")
    assert {g for g, _ in first} == set(range(GENERATIONS + 1)), "generations are missing"
    assert first.keys() == second.keys(), "two runs stored different values"
    for key, value in first.items():
        assert_finite(value, f"{key[1]} at generation {key[0]}")
        assert_same(second[key], value, f"{key[1]} at generation {key[0]} differs between runs")


REGISTRY = CURES
"""The registry of the kinds these checks are for."""
CHECKS = (check_params_round_trip, check_hooks_keep_shapes, check_runs_deterministically)
