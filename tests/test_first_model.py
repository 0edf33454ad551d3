"""Arms of a sweep with common random numbers fit generation 0 once and end with exactly the numbers
each would give alone; without common random numbers, or with another model, nothing is shared."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import metric, run_raw

from selfconsume.cache import CACHE_ENV
from selfconsume.models.ddpm import DDPM

RAW = {
    "name": "first-model",
    "seed": 3,
    "replicates": 2,
    "generations": 2,
    "common_random_numbers": True,
    "data": {"kind": "eight_gaussians", "n_real": 64, "n_test": 32},
    "model": {
        "kind": "ddpm",
        "warm_start": True,
        "params": {"hidden": 16, "depth": 2, "n_steps": 10, "train_steps": 30, "batch_size": 32},
    },
    "scheme": {"kind": "replace"},
    "metrics": ["mmd", "modes"],
    "sweep": {"scheme": [{"kind": "replace"}, {"kind": "mix", "lam": 0.5}]},
}


@pytest.fixture
def first_fits(monkeypatch):
    """Counts DDPM fits of generation 0."""
    calls: list[int] = []
    real_fit = DDPM.fit

    def counted(self, x, weights, generation, warm, **kw):
        if generation == 0:
            calls.append(generation)
        return real_fit(self, x, weights, generation, warm, **kw)

    monkeypatch.setattr(DDPM, "fit", counted)
    return calls


def _values(store, ids):
    names = ("mmd", "modes_covered", "high_quality", "train_loss")
    return [np.stack([metric(store, i, n) for n in names]) for i in ids]


def test_arms_share_generation_0_and_keep_their_numbers(tmp_path, monkeypatch, first_fits):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "shared"))
    store, ids = run_raw(RAW, tmp_path / "shared.sqlite")
    assert len(first_fits) == 1
    assert len(list((tmp_path / "shared" / "first-models").glob("*.npz"))) == 1
    shared = _values(store, ids)
    np.testing.assert_array_equal(shared[0][:, 0], shared[1][:, 0])  # one generation 0
    assert not np.array_equal(shared[0][:, 1:], shared[1][:, 1:])  # the schemes then differ
    alone = []
    for k, scheme in enumerate(RAW["sweep"]["scheme"]):  # each arm in a cache of its own
        monkeypatch.setenv(CACHE_ENV, str(tmp_path / f"alone{k}"))
        raw = {**RAW, "scheme": scheme, "sweep": None}
        store_k, ids_k = run_raw(raw, tmp_path / f"alone{k}.sqlite")
        assert ids_k == [ids[k]]
        alone += _values(store_k, ids_k)
    assert len(first_fits) == 3
    for a, b in zip(shared, alone, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "change",
    [{"common_random_numbers": False}, {"sweep": {"model.params.train_steps": [30, 31]}}],
)
def test_nothing_is_shared_between_runs_that_differ(tmp_path, monkeypatch, first_fits, change):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    run_raw({**RAW, **change}, tmp_path / "store.sqlite")
    assert len(first_fits) == 2


def test_a_damaged_entry_is_fitted_again(tmp_path, monkeypatch, first_fits):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    store, ids = run_raw({**RAW, "sweep": None}, tmp_path / "a.sqlite")
    (entry,) = (tmp_path / "cache" / "first-models").glob("*.npz")
    entry.write_bytes(b"not a checkpoint")
    store_b, ids_b = run_raw({**RAW, "sweep": None}, tmp_path / "b.sqlite")
    assert len(first_fits) == 2
    np.testing.assert_array_equal(_values(store, ids)[0], _values(store_b, ids_b)[0])
