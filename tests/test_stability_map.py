"""The stability map: the exact Gaussian mix update from a misspecified start (closed form), the
heat-map maker (what it draws, and that it applies to nothing else) and both presets at quick scale."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import metric, run_raw
from scipy import stats

from selfconsume.data.gaussian import GaussianParams, GaussianSource
from selfconsume.errors import ConfigError
from selfconsume.loop.run import run_config
from selfconsume.models.gaussian import GaussianModel, GaussianModelParams
from selfconsume.plan import load, resolve
from selfconsume.report.curves import MAX_LINES, metric_curves
from selfconsume.report.html import load_experiments
from selfconsume.report.stability_map import grid_keys, paired_grid, stability_map
from selfconsume.seeding import Streams
from selfconsume.store.sqlite import Store
from selfconsume.theory.stability import population_mix_moments, population_mix_w2

MEAN = np.array([1.0, -2.0])
COV = np.array([[2.0, 0.6], [0.6, 0.5]])
GRID = {
    "name": "grid",
    "generations": 3,
    "data": {"kind": "gaussian", "n_real": 10, "params": {"dim": 1, "mean": 0.5, "std": 2.0}},
    "model": {"kind": "gaussian", "population": True, "params": {"start_shift": 1.0}},
    "scheme": {"kind": "mix", "params": {"lam": 1.0}},
    "metrics": ["w2"],
    "sweep": {"scheme.params.lam": [0.5, 2.0, 8.0], "model.params.start_scale": [0.5, 3.0]},
}


def run_store(raw: dict, store_path) -> Store:
    store, _ = run_raw(copy.deepcopy(raw), store_path)
    return store


def test_closed_form_is_the_iterated_population_step():
    source = GaussianSource(GaussianParams(dim=2, mean=MEAN.tolist(), cov=COV.tolist()))
    model = GaussianModel(GaussianModelParams(), 2, 1, Streams(0))
    mean0, cov0 = MEAN + [3.0, -1.0], np.array([[0.3, -0.1], [-0.1, 4.0]])
    model.mean, model.cov = mean0[None].copy(), cov0[None].copy()
    real = source.sample(1, 10, np.random.default_rng(0))  # ignored: the target is exact
    lam = 1.5
    for t in range(1, 12):
        model.population_step(real, lam, None, source)
        mean, cov = population_mix_moments(t, lam, mean0, cov0, MEAN, COV)
        np.testing.assert_allclose(model.mean[0], mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(model.cov[0], cov, rtol=1e-12, atol=1e-12)
        off_by_one = population_mix_moments(t + 1, lam, mean0, cov0, MEAN, COV)[1]
        assert not np.allclose(model.cov[0], off_by_one, rtol=1e-3)


def test_population_run_from_a_misspecified_start_follows_the_closed_form(store_path):
    raw = {k: v for k, v in GRID.items() if k != "sweep"}
    raw["model"] = copy.deepcopy(raw["model"]) | {"params": {"start_shift": 1.0, "start_scale": 3}}
    store = run_store(raw | {"replicates": 2}, store_path)
    (run_id,) = [r.run_id for r in store.runs()]
    w2 = metric(store, run_id, "w2")
    expected = [population_mix_w2(t, 1.0, 1.0, 3.0, [0.5], [[4.0]]) for t in range(4)]
    np.testing.assert_allclose(
        w2, np.broadcast_to(np.array(expected)[:, None], w2.shape), rtol=1e-12
    )
    assert expected[0] == pytest.approx(np.hypot(1.0, 2 * 3 - 2))  # W2(N(1.5, 36), N(0.5, 4))


def test_start_perturbation_is_refused_outside_population_mode():
    raw = {k: v for k, v in GRID.items() if k != "sweep"}
    raw["model"] = {"kind": "gaussian", "params": {"start_scale": 2.0}}
    with pytest.raises(ConfigError, match=r"^model\.params\.start_scale: only read in population"):
        resolve(raw)
    raw["model"]["params"] = {"start_scale": 0.0}
    with pytest.raises(ConfigError, match="start_scale"):
        resolve(raw)


def test_map_draws_the_paired_ratio_over_the_grid(store_path, tmp_path):
    store = run_store(GRID | {"replicates": 1}, store_path)
    (exp,) = load_experiments(store)
    assert grid_keys(exp) == (
        "scheme.params.lam",
        "model.params.start_scale",
    )  # n_synthetic folds in
    xs, ys, mean, half, start = paired_grid(
        exp, "scheme.params.lam", "model.params.start_scale", "w2"
    )
    assert xs == [0.5, 2.0, 8.0] and ys == [0.5, 3.0]
    for (i, j), value in np.ndenumerate(mean):
        w2 = [population_mix_w2(t, xs[j], 1.0, ys[i], [0.5], [[4.0]]) for t in (0, 3)]
        assert value == pytest.approx(w2[1] / w2[0], rel=1e-12)
        assert start[i] == pytest.approx(w2[0], rel=1e-12)
    np.testing.assert_array_equal(half, 0.0)
    (figure,) = stability_map(exp, tmp_path)
    assert figure.path.is_file() and figure.path.name == "grid-map.png"
    assert "every cell contracts" in figure.caption


def test_map_interval_is_the_replicates_student_t_interval(store_path):
    raw = copy.deepcopy(GRID) | {"replicates": 6}
    raw["model"] = {
        "kind": "gaussian",
        "population": True,
        "params": {"population_target": "empirical"},
    }
    raw["sweep"] = {"scheme.params.lam": [1.0, 4.0], "data.n_real": [5, 50]}
    store = run_store(raw, store_path)
    (exp,) = load_experiments(store)
    assert grid_keys(exp) == ("scheme.params.lam", "data.n_real")
    _, _, mean, half, _ = paired_grid(exp, "scheme.params.lam", "data.n_real", "w2")
    run = next(
        r for r in exp.runs if r.config.scheme.params.lam == 4.0 and r.config.data.n_real == 5
    )
    ratio = run.metrics["w2"][-1] / run.metrics["w2"][0]
    assert mean[0, 1] == pytest.approx(ratio.mean())
    low, high = stats.t.interval(0.95, df=5, loc=ratio.mean(), scale=stats.sem(ratio))
    assert half[0, 1] == pytest.approx((high - low) / 2) and half[0, 1] > 0
    _, _, diff, _, start = paired_grid(exp, "scheme.params.lam", "data.n_real", "w2", ratio=False)
    assert diff[0, 1] == pytest.approx((run.metrics["w2"][-1] - run.metrics["w2"][0]).mean())


@pytest.mark.parametrize(
    "change",
    [
        {"sweep": {"scheme.params.lam": [0.5, 2.0]}},  # one numeric key
        {"sweep": {"scheme": [{"kind": "replace"}, {"kind": "mix", "lam": 0.5}]}},  # not numeric
        {
            "sweep": {"scheme.params.lam": [0.5, 2.0], "generations": [2, 3], "seed": [0, 1]}
        },  # three
        {"metrics": ["gaussian_params"]},  # no W2
        {"generations": 0},  # no generation after the first
    ],
)
def test_map_applies_to_nothing_else(store_path, tmp_path, change):
    store = run_store(GRID | {"replicates": 1} | change, store_path)
    (exp,) = load_experiments(store)
    assert stability_map(exp, tmp_path) == []


def test_a_start_at_the_data_has_no_ratio(store_path, tmp_path):
    raw = copy.deepcopy(GRID) | {"replicates": 1}
    raw["model"]["params"] = {"start_shift": 0.0}
    raw["sweep"]["model.params.start_scale"] = [1.0, 2.0]
    store = run_store(raw, store_path)
    (exp,) = load_experiments(store)
    _, ys, mean, _, start = paired_grid(exp, "scheme.params.lam", "model.params.start_scale", "w2")
    assert ys == [1.0, 2.0] and start[0] == 0.0
    assert np.all(np.isnan(mean[0])) and np.all(mean[1] < 1)
    (figure,) = stability_map(exp, tmp_path)
    assert figure.path.is_file()


def test_map_needs_a_complete_grid(store_path, tmp_path):
    store = run_store(GRID | {"replicates": 1}, store_path)
    (exp,) = load_experiments(store)
    exp.runs.pop()
    assert grid_keys(exp) is None and stability_map(exp, tmp_path) == []


CHEAPER = {
    "stability-map": [
        "model.params.ddim_steps=10",
        "model.params.finetune_steps=50",
        "sweep.model.params.train_steps=[100, 200]",
    ]
}
"""Fewer network steps at quick scale: the same grid and code paths at 40 % of the CPU."""


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["stability-map", "stability-map-gaussian"])
def test_presets_run_at_quick_scale_and_draw_the_map(preset, store_path, tmp_path):
    store = Store(store_path)
    configs = load(preset, CHEAPER.get(preset, []), quick=True)
    assert len(configs) >= 4
    for cfg in configs:
        run_config(cfg, store)
    (exp,) = load_experiments(store)
    (figure,) = stability_map(exp, tmp_path)
    assert figure.path.is_file()
    assert grid_keys(exp)[0] == "scheme.params.lam"
    assert ("high-quality fraction" in figure.caption) == (preset == "stability-map")
    curves = metric_curves(exp, tmp_path)  # a line per run only while a legend can tell them apart
    assert (curves == []) == (len(exp.runs) > MAX_LINES)
