"""The neon cure: the Gaussian closed forms of selfconsume.theory.neon against the run loop at exact
Monte Carlo tolerance, w = 0 bit-identical to no extrapolation, the other families' weights, and
its bad input."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import metric, run_raw
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.errors import ConfigError
from selfconsume.plan import resolve
from selfconsume.theory import gaussian, neon

Z = 4.5
N, SIGMA = 10, 2.0


def extrapolated(
    w: float | None, estimator: str = "unbiased", generations: int = 5, replicates: int = 20000
) -> dict:
    raw = {
        "name": "neon",
        "seed": 5,
        "replicates": replicates,
        "generations": generations,
        "data": {"kind": "gaussian", "n_real": N, "n_test": 2, "params": {"std": SIGMA}},
        "model": {"kind": "gaussian", "params": {"estimator": estimator}},
        "metrics": ["gaussian_params"],
        "common_random_numbers": True,
    }
    if w is not None:
        raw["cures"] = {"neon": {"w": w}}
    return raw


def exact_z(values: np.ndarray, mean: float, variance: float) -> float:
    return abs(values.mean() - mean) / np.sqrt(variance / values.size)


@pytest.mark.parametrize(("w", "estimator"), [(0.5, "unbiased"), (1.0, "mle")])
def test_neon_gaussian_follows_its_closed_forms(store_path, w, estimator):
    store, (rid,) = run_raw(extrapolated(w, estimator), store_path)
    std, mean = metric(store, rid, "std"), metric(store, rid, "mean")
    error = neon.neon_mean_error_sq(5, N, SIGMA, w, estimator)
    for t in (0, 1, 5):
        e_sigma = neon.neon_sigma(t, N, SIGMA, w, estimator)
        e_var = neon.neon_variance(t, N, SIGMA, w, estimator)
        assert exact_z(std[t], e_sigma, e_var - e_sigma**2) < Z, t
        sq = mean[t] ** 2
        assert abs(sq.mean() - error[t]) < Z * sq.std(ddof=1) / np.sqrt(sq.size), t
    # without extrapolation the same data would sit far from it
    plain = gaussian.expected_sigma(0, N, SIGMA, estimator)
    e_var = gaussian.expected_variance(0, N, SIGMA, estimator)
    assert exact_z(std[0], plain, e_var - plain**2) > Z


def test_neon_at_one_over_alpha_undoes_the_first_shrinkage():
    alpha = gaussian.collapse_factor(N)
    assert neon.neon_sigma(0, N, SIGMA, 1 / alpha) == pytest.approx(SIGMA, rel=1e-12)
    assert neon.std_factor(0.0, N) == (1.0, 1.0)


def test_w_zero_is_bit_identical_to_no_extrapolation(tmp_path):
    store_a, (a,) = run_raw(extrapolated(0.0, generations=3, replicates=8), tmp_path / "a.sqlite")
    store_b, (b,) = run_raw(extrapolated(None, generations=3, replicates=8), tmp_path / "b.sqlite")
    rows_a, rows_b = list(store_a.metric_arrays(a)), list(store_b.metric_arrays(b))
    assert rows_a and len(rows_a) == len(rows_b)
    for (ga, ma, x), (gb, mb, y) in zip(rows_a, rows_b, strict=True):
        assert (ga, ma) == (gb, mb)
        np.testing.assert_array_equal(x, y)


def test_neon_moves_a_linear_model_away_from_its_self_trained_copy(store_path):
    raw = extrapolated(1.0, generations=0, replicates=50)
    raw["data"] = {"kind": "regression", "n_real": 30, "n_test": 2, "params": {"dim": 3}}
    raw["model"], raw["metrics"] = {"kind": "regression"}, ["regression"]
    store, (rid,) = run_raw(raw, store_path)
    plain = {**raw, "cures": {"neon": {"w": 0.0}}}
    store, (base,) = run_raw(plain, store_path)
    assert np.all(metric(store, rid, "test_error") != metric(store, base, "test_error"))
    assert np.all(metric(store, rid, "sigma_hat_sq") > 0)


def test_neon_on_a_family_without_generator_weights_is_bad_input():
    raw = extrapolated(1.0, generations=1, replicates=2)
    raw["model"], raw["metrics"] = {"kind": "kde"}, []
    with pytest.raises(ConfigError, match=r"^cures\.neon needs a family with generator weights"):
        resolve(raw)
    raw["model"], raw["cures"] = {"kind": "gaussian"}, {"neon": {"w": -1}}
    with pytest.raises(ConfigError, match=r"^cures\.neon\.w"):
        resolve(raw)


@pytest.mark.slow
def test_neon_preset_runs_quick_and_draws_its_law(tmp_path):
    from selfconsume.report.cures import neon_sweep
    from selfconsume.report.html import load_experiments
    from selfconsume.store.reader import StoreReader

    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", "neon", "--quick", "--store", str(store)])
    assert result.exit_code == 0, result.output
    with StoreReader(store) as reader:
        (exp,) = load_experiments(reader)
        (figure,) = neon_sweep(exp, tmp_path)
    assert figure.path.exists() and len(exp.runs) == 4


@pytest.mark.slow
def test_neon_extrapolates_a_torch_familys_weights_away_from_its_fine_tune():
    import torch

    from selfconsume.data.base import DATA
    from selfconsume.loop.cures import Neon, NeonParams
    from selfconsume.models.base import MODELS
    from selfconsume.models.ddpm import SMALL_NET
    from selfconsume.seeding import Streams

    def fitted():
        params = {**SMALL_NET, "n_steps": 10}
        model = MODELS.make("ddpm", params, dim=2, replicates=2, streams=Streams(0))
        real = DATA.make("eight_gaussians", {}).sample(2, 32, np.random.default_rng(0))
        model.fit(real, None, 0, False)
        return model

    model, copy = fitted(), fitted()
    theta0 = [p.detach().clone() for p in copy.state_dict()["params"]]
    Neon(NeonParams(w=2.0), None).after_first(model, 32, Streams(1))
    own = copy.sample(32, Streams(1).per_replicate("neon", 0), 0)
    copy.fit(own, None, 0, True)  # the self-trained copy, drawn and fine-tuned as Neon does
    theta_s = copy.state_dict()["params"]
    for got, a, b in zip(model.state_dict()["params"], theta0, theta_s, strict=True):
        torch.testing.assert_close(got, a + 2.0 * (a - b))
    assert any(not torch.equal(a, b) for a, b in zip(theta0, theta_s, strict=True))
