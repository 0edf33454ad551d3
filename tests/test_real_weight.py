"""The real_weight cure: the weighted fit against the golden-ratio law of selfconsume.theory.weighting
at Monte Carlo tolerance, its neutral value bit-identical to no cure, and its bad input."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import metric, run_raw, z_score
from scipy.optimize import minimize_scalar
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.data.regression import RegressionParams, RegressionSource
from selfconsume.loop.cures import RealWeight, RealWeightParams
from selfconsume.models.gaussian import GaussianModel, GaussianModelParams
from selfconsume.seeding import Streams
from selfconsume.theory import regression as regression_theory
from selfconsume.theory import weighting

Z = 4.5
D, T = 4, 16


def weighted(w: float | None, lam: float = 1.0, replicates: int = 4000, gens: int = 6) -> dict:
    raw = {
        "name": "rw",
        "seed": 7,
        "replicates": replicates,
        "generations": gens,
        "data": {
            "kind": "regression",
            "n_real": T,
            "n_test": 2,
            "params": {"dim": D, "design": "fixed"},
        },
        "model": {"kind": "regression", "params": {"noise": "true_sigma"}},
        "scheme": {"kind": "fresh", "lam": lam},
        "metrics": ["regression"],
        "common_random_numbers": True,
    }
    if w is not None:
        raw["cures"] = {"real_weight": {"real_weight": w}}
    return raw


@pytest.mark.parametrize(("w", "lam"), [(0.3, 1.0), (0.618, 1.0), (0.5, 2.0)])
def test_weighted_error_follows_the_exact_law(store_path, w, lam):
    store, (rid,) = run_raw(weighted(w, lam), store_path)
    error = metric(store, rid, "test_error")
    source = RegressionSource(RegressionParams(dim=D, design="fixed"))
    args = (source.fixed_design(T), source.design_cov, source.w_star, 1.0, 0.0, 0, "replace")
    first = regression_theory.fixed_design_error(*args)[0]
    law = first * weighting.error_factor(6, w, rho=1 / lam)
    for t in (0, 1, 6):
        assert z_score(error[t], law[t]) < Z, t
    assert z_score(error[6], first * weighting.error_factor(6, 0.5 if w != 0.5 else 0.8)[6]) > Z


def test_the_optimal_weight_minimises_the_stationary_error():
    assert weighting.optimal_real_weight(1.0) == pytest.approx((np.sqrt(5) - 1) / 2, rel=1e-12)
    for rho in (0.25, 1.0, 3.0):
        best = minimize_scalar(
            lambda w, r=rho: weighting.stationary_factor(w, r),
            bounds=(0.01, 0.99),
            method="bounded",
            options={"xatol": 1e-9},
        )
        assert best.x == pytest.approx(weighting.optimal_real_weight(rho), abs=1e-5)
    # the recursion converges to the stationary factor
    assert weighting.error_factor(400, 0.3, 2.0)[-1] == pytest.approx(
        weighting.stationary_factor(0.3, 2.0), rel=1e-9
    )


@pytest.mark.parametrize("family", ["regression", "gaussian"])
def test_the_unweighted_share_is_bit_identical_to_no_cure(tmp_path, family):
    cured, plain = weighted(0.5, replicates=20, gens=3), weighted(None, replicates=20, gens=3)
    for raw in (cured, plain):
        raw["scheme"] = {"kind": "mix", "lam": 1.0}
        if family == "gaussian":
            raw["data"] = {"kind": "gaussian", "n_real": T, "params": {"dim": 2}}
            raw["model"] = {"kind": "gaussian"}
            raw["metrics"] = ["gaussian_params"]
    store, (a,) = run_raw(cured, tmp_path / "a.sqlite")
    store_b, (b,) = run_raw(plain, tmp_path / "b.sqlite")
    rows_a, rows_b = list(store.metric_arrays(a)), list(store_b.metric_arrays(b))
    assert rows_a and [(g, m) for g, m, _ in rows_a] == [(g, m) for g, m, _ in rows_b]
    for (_, _, x), (_, _, y) in zip(rows_a, rows_b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_gaussian_weighted_mean_is_the_convex_combination_of_real_and_synthetic():
    rng = np.random.default_rng(0)
    real, synthetic = rng.normal(size=(3, 10, 2)), rng.normal(5.0, size=(3, 30, 2))
    x = np.concatenate([real, synthetic], 1)
    cure = RealWeight(RealWeightParams(real_weight=0.8), None)
    w = cure.weigh(x, None, 10)
    assert w.sum(1) == pytest.approx(np.full(3, 40.0))  # the total weight is kept
    model = GaussianModel(GaussianModelParams(), 2, 3, Streams(0))
    model.fit(x, w, 1, False)
    expected = 0.8 * real.mean(1) + 0.2 * synthetic.mean(1)
    np.testing.assert_allclose(model.mean, expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("scheme.kind=accumulate", "cures.real_weight"),
        ("cures.real_weight.real_weight=1.5", "cures.real_weight.real_weight"),
        ("cures.real_weight.weight=0.5", "cures.real_weight.weight"),
        ("cures.antidote.dose=1", "cures.kind"),
    ],
)
def test_bad_real_weight_input_exits_2_naming_the_key(store_path, override, needle):
    args = ["run", "real-weight", "--quick", "--store", str(store_path), "--set", override]
    result = CliRunner().invoke(app, args)
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1 and needle in lines[0], result.output
    assert not store_path.exists()


@pytest.mark.slow
def test_real_weight_preset_runs_quick_and_draws_the_law(tmp_path):
    from selfconsume.report.cures import real_weight_sweep
    from selfconsume.report.html import load_experiments
    from selfconsume.store.reader import StoreReader

    store = tmp_path / "s.sqlite"
    args = ["run", "real-weight", "--quick", "--store", str(store)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with StoreReader(store) as reader:
        (exp,) = load_experiments(reader)
        (figure,) = real_weight_sweep(exp, tmp_path)
    assert figure.path.exists() and len(exp.runs) == 7
