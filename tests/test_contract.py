"""One contract over every registered kind (as scikit-learn's estimator checks): a kind is covered
the day it is registered. Families: shapes, determinism, state round trip, warm start, replicate
independence. Metrics and rewards: one finite value per replicate / per sample where they apply.
"""

from __future__ import annotations

import numpy as np
import pytest

from selfconsume.config import SchemeConfig
from selfconsume.data.base import DATA
from selfconsume.loop.filters import FILTERS, build_filter
from selfconsume.loop.schemes import SCHEMES, Pool, resolve_scheme
from selfconsume.metrics.base import METRICS
from selfconsume.models.base import MODELS
from selfconsume.plan import build, resolve
from selfconsume.rewards.base import REWARDS
from selfconsume.seeding import Streams

FAST_TORCH = {"hidden": 16, "depth": 2, "train_steps": 30, "finetune_steps": 10, "batch_size": 32}
MODEL_PARAMS = {"ddpm": {**FAST_TORCH, "n_steps": 20}, "flow": {**FAST_TORCH, "n_ode_steps": 5}}
"""Cheap params per family (a family not listed runs with its defaults)."""
DATA_FOR = {"discrete": ("discrete", {"probs": [0.4, 0.3, 0.2, 0.1]})}
"""The data a family is fitted on in the contract (default: 8 Gaussians)."""
DEFAULT_DATA = ("eight_gaussians", {})
R, N = 3, 64


def real_set(kind: str, replicates: int, n: int, seed: int = 0) -> tuple[object, np.ndarray]:
    data_kind, params = DATA_FOR.get(kind, DEFAULT_DATA)
    source = DATA.get(data_kind).obj(DATA.parse_params(data_kind, params, "data.params"))
    return source, source.sample(replicates, n, Streams(seed).per_replicate("real", 0))


def family(kind: str, replicates: int, dim: int, seed: int = 0):
    params = MODELS.parse_params(kind, MODEL_PARAMS.get(kind, {}), "model.params")
    return MODELS.get(kind).obj(params, dim=dim, replicates=replicates, streams=Streams(seed))


def fitted(kind: str, replicates: int = R):
    source, x = real_set(kind, replicates, N)
    model = family(kind, replicates, source.dim)
    diagnostics = model.fit(x, None, 0, False)
    return model, source, diagnostics


def draw(model, n: int = 16, seed: int = 7) -> np.ndarray:
    """n samples per replicate from the per-replicate streams the run loop uses."""
    return model.sample(n, Streams(seed).per_replicate("contract", 1), 1)


@pytest.mark.parametrize("kind", MODELS.names())
def test_family_fits_and_samples_with_the_documented_shapes(kind):
    model, source, diagnostics = fitted(kind)
    for value in diagnostics.values():
        assert np.asarray(value).shape == (R,) and np.all(np.isfinite(value))
    x = draw(model)
    assert x.shape == (R, 16, source.dim) and np.all(np.isfinite(x))


@pytest.mark.parametrize("kind", MODELS.names())
def test_family_is_deterministic_and_its_state_round_trips(kind):
    a, _, _ = fitted(kind)
    b, source, _ = fitted(kind)
    np.testing.assert_array_equal(draw(a), draw(b))
    c = family(kind, R, source.dim, seed=99)
    c.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(draw(a), draw(c))


@pytest.mark.parametrize("kind", MODELS.names())
def test_family_warm_starts_from_its_own_samples(kind):
    model, _, _ = fitted(kind)
    x = draw(model, N)
    diagnostics = model.fit(x, np.ones(x.shape[:2]), 1, True)
    assert all(np.all(np.isfinite(v)) for v in diagnostics.values())
    assert np.all(np.isfinite(draw(model)))


@pytest.mark.parametrize("kind", MODELS.names())
def test_family_replicate_does_not_depend_on_how_many_run(kind):
    small, _, _ = fitted(kind, replicates=2)
    large, _, _ = fitted(kind, replicates=4)
    source, x2 = real_set(kind, 2, N)
    _, x4 = real_set(kind, 4, N)
    # the same real set for replicates 0 and 1 in both runs
    x4[:2] = x2
    for model, x in ((small, x2), (large, x4)):
        model.fit(x, None, 0, False)
    np.testing.assert_allclose(draw(small)[:2], draw(large)[:2], rtol=1e-6, atol=1e-9)


def test_every_scheme_builds_a_training_set_per_replicate():
    rng = np.random.default_rng(0)
    real, syn = np.zeros((R, N, 2)), np.ones((R, 8, 2))
    for kind in SCHEMES.names():
        cfg = resolve_scheme(SchemeConfig(kind=kind, lam=0.5 if kind != "replace" else None), N)
        scheme = SCHEMES.get(kind).obj(cfg, N)
        pool = Pool()
        if scheme.accumulates:
            pool.append(syn, None)
        x, w = scheme.build(real, syn, None, pool, rng)
        assert x.ndim == 3 and x.shape[0] == R and (w is None or w.shape == x.shape[:2])


DISCRETE = ("discrete", "discrete", {"probs": [0.5, 0.5]})
IMAGES = ("digits", "kde", {}, {"bandwidth": 0.2})
METRIC_DATA = {
    "gaussian_params": ("gaussian", "gaussian", {"dim": 2}),
    "regression": ("regression", "regression", {"dim": 3}),
    **dict.fromkeys(("mass", "divergence", "reward", "entropy", "states_lost"), DISCRETE),
    **dict.fromkeys(("fd", "feature_prd", "fls", "classes", "memorization"), IMAGES),
}
"""(data kind, model kind, data params[, model params]) where a metric applies (default:
8 Gaussians, gmm)."""


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_gives_one_value_per_replicate(name, tmp_path):
    from helpers import run_raw

    data_kind, model_kind, params, *model_params = METRIC_DATA.get(
        name, ("eight_gaussians", "gmm", {})
    )
    raw = {
        "name": f"contract-{name}",
        "replicates": R,
        "generations": 1,
        "data": {"kind": data_kind, "n_real": 40, "n_test": 40, "params": params},
        "model": {"kind": model_kind, "params": model_params[0] if model_params else {}},
        "metrics": [name],
    }
    if name == "reward":
        reward = {"kind": "table", "params": {"values": [0.0, 1.0]}}
        raw["curation"] = {"kind": "bradley_terry", "k": 2, "reward": reward}
    store, (run_id,) = run_raw(raw, tmp_path / "s.sqlite")
    values = [v for _, m, v in store.metric_arrays(run_id) if not m.startswith("train_")]
    assert values and all(v.shape == (R,) and not np.any(np.isnan(v)) for v in values)


REWARD_CASES = {
    "table": ("discrete", {"probs": [0.5, 0.5]}, {"values": [0.0, 1.0]}),
    "distance": ("eight_gaussians", {}, {"point": [0.0, 0.0]}),
    "mode_preference": ("eight_gaussians", {}, {"weights": [1.0] * 8}),
    "linear": ("eight_gaussians", {}, {"coef": [1.0, 0.0]}),
    "callable": ("eight_gaussians", {}, {"target": "helpers:norm_reward"}),
    "classifier_confidence": ("eight_gaussians", {}, {"n_train": 200}),
    "log_density": ("eight_gaussians", {}, {}),
}


@pytest.mark.parametrize("kind", REWARDS.names())
def test_every_reward_scores_each_sample(kind):
    from selfconsume.rewards.base import build_reward

    assert kind in REWARD_CASES, f"add a contract case for reward {kind!r}"
    data_kind, data_params, params = REWARD_CASES[kind]
    source = DATA.get(data_kind).obj(DATA.parse_params(data_kind, data_params, "data.params"))
    x = source.sample(2, 5, np.random.default_rng(0))
    out = build_reward(kind, params, source)(x)
    assert out.shape == x.shape[:-1] and np.all(np.isfinite(out))


@pytest.mark.parametrize("kind", FILTERS.names())
def test_every_reward_free_filter_scores_each_candidate(kind):
    """A reward-free curation kind scores candidates of any shape (R, ..., d) -> (R, ...),
    finite, the same for the same stream."""
    source, real = real_set(kind, R, N)
    params = FILTERS.parse_params(kind, {}, "curation.params")
    cand = source.sample(R, 24, np.random.default_rng(1)).reshape(R, 6, 4, source.dim)
    scores = [
        build_filter(kind, params, source).scorer(real, Streams(0).per_replicate("filter", 1))(cand)
        for _ in range(2)
    ]
    assert scores[0].shape == (R, 6, 4) and np.all(np.isfinite(scores[0]))
    np.testing.assert_array_equal(scores[0], scores[1])


def test_resolved_config_is_the_identity_and_builds_the_same_plan():
    base = {"name": "id", "data": {"kind": "gaussian", "n_real": 10}, "model": {"kind": "gaussian"}}
    spellings = [
        {},
        {"model": {"kind": "gaussian", "params": {"estimator": "unbiased"}}},
        {"data": {"kind": "gaussian", "n_real": 10, "params": {"std": 1, "dim": 1}}},
        {"scheme": {"kind": "replace", "n_synthetic": 10}},
    ]
    ids = {resolve({**base, **s}).run_id for s in spellings}
    assert len(ids) == 1
    cfg = resolve(base)
    assert cfg.data.params.std == 1.0 and cfg.scheme.n_synthetic == 10
    assert build(cfg).scheme.n_synthetic == 10
