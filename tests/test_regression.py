"""Self-consuming linear regression against the closed forms of selfconsume.theory.regression, at
tolerances from the Monte Carlo standard error; the family's fit, schemes and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import metric, run_raw, z_score
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.data.regression import RegressionParams, RegressionSource
from selfconsume.loop.schemes import SCHEMES
from selfconsume.models.regression import RegressionModel, RegressionModelParams
from selfconsume.seeding import Streams
from selfconsume.theory import regression as theory

Z = 4.5  # z-score bound per check: ~40 checks, a false alarm has probability < 1e-3
D, T = 5, 20


def regression(scheme: str, generations: int, replicates: int = 4000, **model) -> dict:
    design = model.pop("design", "gaussian")
    return {
        "name": "reg",
        "seed": 4,
        "replicates": replicates,
        "generations": generations,
        "data": {
            "kind": "regression",
            "n_real": T,
            "n_test": 2,
            "params": {"dim": D, "noise_std": 1.5, "w_star": 0.7, "design": design},
        },
        "model": {"kind": "regression", "params": {"noise": "true_sigma", **model}},
        "scheme": {"kind": scheme},
        "metrics": ["regression"],
    }


def test_replace_error_grows_linearly_in_the_number_of_fits(store_path):
    store, (rid,) = run_raw(regression("replace", 10), store_path)
    error = metric(store, rid, "test_error")
    for t in (0, 1, 5, 10):
        assert z_score(error[t], theory.replace_error(t, D, T, 1.5)) < Z, t
    # generation t is t + 1 fits: the other indexing (t fits) is rejected by the same data
    assert z_score(error[1], theory.replace_error(0, D, T, 1.5)) > 3 * Z


def test_accumulate_error_stays_below_pi_squared_over_six_of_the_first(store_path):
    store, (rid,) = run_raw(regression("accumulate", 10), store_path)
    error = metric(store, rid, "test_error")
    for t in (0, 1, 5, 10):
        assert z_score(error[t], theory.accumulate_error(t, D, T, 1.5)) < Z, t
    assert z_score(error[5], theory.replace_error(5, D, T, 1.5)) > 3 * Z
    assert theory.accumulate_error(10**4, D, T) < np.pi**2 / 6 * theory.replace_error(0, D, T)


def test_replace_with_sigma_hat_keeps_the_mean_error_and_the_mean_noise(store_path):
    # sigma_hat^2 is a martingale of mean sigma^2 independent of the next noise (Cochran); early on
    # it is far from heavy-tailed, so the sample standard error is reliable
    store, (rid,) = run_raw(regression("replace", 3, noise="sigma_hat"), store_path)
    error, noise = metric(store, rid, "test_error"), metric(store, rid, "sigma_hat_sq")
    for t in (0, 1, 3):
        assert z_score(error[t], theory.replace_error(t, D, T, 1.5)) < Z, t
        assert z_score(noise[t], 1.5**2) < Z, t
    assert np.median(noise[3]) < np.median(noise[0])  # yet sigma_hat_t -> 0 as in the warm-up


@pytest.mark.parametrize("scheme", ["replace", "accumulate"])
def test_ridge_on_a_fixed_design_follows_the_exact_recursion(store_path, scheme):
    store, (rid,) = run_raw(regression(scheme, 8, ridge=0.3, design="fixed"), store_path)
    error = metric(store, rid, "test_error")
    source = RegressionSource(RegressionParams(dim=D, noise_std=1.5, w_star=0.7, design="fixed"))
    x = source.fixed_design(T)
    args = (x, source.design_cov, source.w_star, 1.5)
    expected = theory.fixed_design_error(*args, 0.3, 8, scheme)
    ols = theory.fixed_design_error(*args, 0.0, 8, scheme)
    for t in (0, 1, 4, 8):
        assert z_score(error[t], expected[t]) < Z, t
    assert z_score(error[8], ols[8]) > 3 * Z  # the shrinkage bias is seen


def test_fixed_design_ols_recursion_is_the_closed_form_given_the_design():
    source = RegressionSource(RegressionParams(dim=D, design="fixed"))
    x, cov = source.fixed_design(T), source.design_cov
    once = np.trace(cov @ np.linalg.inv(x.T @ x))
    t = np.arange(7)
    replace = theory.fixed_design_error(x, cov, source.w_star, 1.0, 0.0, 6, "replace")
    accumulate = theory.fixed_design_error(x, cov, source.w_star, 1.0, 0.0, 6, "accumulate")
    np.testing.assert_allclose(replace, once * (t + 1), rtol=1e-9)
    np.testing.assert_allclose(accumulate, once * np.cumsum(1 / (t + 1.0) ** 2), rtol=1e-9)


def fitted(ridge: float = 0.2, replicates: int = 3) -> tuple[RegressionModel, np.ndarray]:
    source = RegressionSource(RegressionParams(dim=3))
    x = source.sample(replicates, 25, np.random.default_rng(0))
    model = RegressionModel(RegressionModelParams(ridge=ridge), 4, replicates, Streams(0))
    model.fit(x, None, 0, False)
    return model, x


def test_accumulate_refits_from_statistics_as_on_the_whole_pool():
    model, real = fitted()
    batch = model.sample(25, np.random.default_rng(1), 1)
    weights = np.random.default_rng(2).random(batch.shape[:2])
    model.fit_more(batch, weights)
    whole, _ = fitted()
    whole.fit(
        np.concatenate([real, batch], 1), np.concatenate([np.ones((3, 25)), weights], 1), 1, 0
    )
    np.testing.assert_allclose(model.coef, whole.coef, rtol=1e-10)
    np.testing.assert_allclose(model.sigma2, whole.sigma2, rtol=1e-10)


def test_zero_weight_drops_a_row_and_ridge_shrinks_towards_zero():
    model, x = fitted(ridge=0.0)
    keep = np.ones(x.shape[:2])
    keep[:, :5] = 0.0
    dropped, _ = fitted(ridge=0.0)
    dropped.fit(x[:, 5:], None, 1, False)
    model.fit(x, keep, 1, False)
    np.testing.assert_allclose(model.coef, dropped.coef, rtol=1e-10)
    np.testing.assert_allclose(model.sigma2, dropped.sigma2, rtol=1e-10)
    shrunk, _ = fitted(ridge=5.0)
    assert np.all(np.linalg.norm(shrunk.coef, axis=1) < np.linalg.norm(model.coef, axis=1))


def test_samples_label_the_real_design_with_the_fitted_line():
    model, x = fitted()
    rows = model.sample(60, np.random.default_rng(3), 1)
    np.testing.assert_array_equal(rows[:, :25, :-1], x[..., :-1])
    np.testing.assert_array_equal(rows[:, 25:50, :-1], x[..., :-1])  # row i: design row i mod T
    residual = rows[..., -1] - np.einsum("rnd,rd->rn", rows[..., :-1], model.coef)
    eps = np.random.default_rng(3).standard_normal((3, 60))
    np.testing.assert_allclose(residual, np.sqrt(model.sigma2)[:, None] * eps, atol=1e-12)


@pytest.mark.parametrize("scheme", SCHEMES.names())
def test_the_regression_family_runs_under_every_scheme(store_path, scheme):
    raw = regression(scheme, 2, replicates=5)
    raw["scheme"] = {"kind": scheme, **({"lam": 0.5} if scheme in ("mix", "fresh") else {})}
    store, (rid,) = run_raw(raw, store_path)
    assert store.run(rid).status == "done"
    assert np.all(np.isfinite(metric(store, rid, "test_error")))


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("data.params.w_star=[1.0, 2.0]", "data.params.w_star"),
        ("model.params.ridge=-1", "model.params.ridge"),
        ("model.params.noise=known", "model.params.noise"),
        ("data.params.design=random", "data.params.design"),
    ],
)
def test_bad_regression_input_exits_2_naming_the_key(store_path, override, needle):
    result = CliRunner().invoke(
        app,
        ["run", "regression-collapse", "--quick", "--store", str(store_path), "--set", override],
    )
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1 and needle in lines[0], result.output
    assert not store_path.exists()


def test_true_sigma_without_a_known_noise_and_the_metric_without_a_linear_model_are_bad_input():
    from selfconsume.errors import ConfigError
    from selfconsume.plan import resolve

    raw = regression("replace", 1, replicates=2)
    raw["data"] = {"kind": "gaussian", "n_real": T, "params": {"dim": 3}}
    raw["metrics"] = []
    with pytest.raises(ConfigError, match=r"^model\.params\.noise: true_sigma needs"):
        resolve(raw)
    raw = regression("replace", 1, replicates=2)
    raw["model"] = {"kind": "gaussian"}
    with pytest.raises(ConfigError, match=r"^metrics: regression needs a linear model"):
        resolve(raw)


@pytest.mark.slow
def test_regression_preset_runs_quick_and_the_report_overlays_theory(tmp_path):
    from selfconsume.report.html import load_experiments
    from selfconsume.report.regression import regression_collapse, regression_theory
    from selfconsume.store.reader import StoreReader

    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(
        app, ["run", "regression-collapse", "--quick", "--store", str(store)]
    )
    assert result.exit_code == 0, result.output
    with StoreReader(store) as reader:
        (exp,) = load_experiments(reader)
        figures = regression_collapse(exp, tmp_path)
        rows = regression_theory(exp)
    assert len(exp.runs) == 4 and figures[0].path.exists()
    assert {r.run for r in rows} == {r.label for r in exp.runs} - {
        r.label for r in exp.runs if "accumulated" in r.label and "sigma_hat" in r.label
    }
