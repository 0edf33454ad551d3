"""The self_correction cure: the Gaussian closed forms of selfconsume.theory.correction against the
run loop at Monte Carlo tolerance, each truth's exact expert, gamma = 0 bit-identical to no cure,
and its bad input."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import metric, run_raw
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.data.base import DATA
from selfconsume.errors import ConfigError
from selfconsume.loop.cures import expert
from selfconsume.plan import resolve
from selfconsume.theory import correction, gaussian

Z = 4.5
N, SIGMA = 8, 2.0


def corrected(gamma: float | None, generations: int = 6, replicates: int = 20000) -> dict:
    raw = {
        "name": "sc",
        "seed": 3,
        "replicates": replicates,
        "generations": generations,
        "data": {"kind": "gaussian", "n_real": N, "n_test": 2, "params": {"std": SIGMA}},
        "model": {"kind": "gaussian"},
        "metrics": ["gaussian_params"],
        "common_random_numbers": True,
    }
    if gamma is not None:
        raw["cures"] = {"self_correction": {"gamma": gamma, "expert_noise": 1.5}}
    return raw


def exact_z(values: np.ndarray, mean: float, variance: float) -> float:
    return abs(values.mean() - mean) / np.sqrt(variance / values.size)


@pytest.mark.parametrize("gamma", [0.4, 1.0])
def test_gaussian_self_correction_follows_its_closed_forms(store_path, gamma):
    store, (rid,) = run_raw(corrected(gamma), store_path)
    std, mean = metric(store, rid, "std"), metric(store, rid, "mean")
    kappa = correction.contraction(gamma, 1.5, SIGMA)
    error = correction.corrected_mean_error_sq(6, N, SIGMA, gamma, 1.5, "unbiased")
    for t in (0, 1, 3, 6):
        e_sigma = correction.corrected_sigma(t, N, SIGMA, gamma, 1.5, "unbiased")
        e_var = gaussian.expected_variance(t, N, SIGMA, psi=kappa)
        assert exact_z(std[t], e_sigma, e_var - e_sigma**2) < Z, t  # exact variance of sigma_t
        sq = mean[t] ** 2
        se = sq.std(ddof=1) / np.sqrt(sq.size)
        assert abs(sq.mean() - error[t]) < Z * se, t
    # the uncorrected chain's mean error is rejected by the same data
    plain = gaussian.expected_mean_sq_error(6, N, SIGMA)
    sq = mean[6] ** 2
    assert abs(sq.mean() - plain) > 3 * Z * sq.std(ddof=1) / np.sqrt(sq.size)


def test_gamma_zero_is_bit_identical_to_no_cure(tmp_path):
    store_a, (a,) = run_raw(corrected(0.0, 3, 10), tmp_path / "a.sqlite")
    store_b, (b,) = run_raw(corrected(None, 3, 10), tmp_path / "b.sqlite")
    rows_a, rows_b = list(store_a.metric_arrays(a)), list(store_b.metric_arrays(b))
    assert rows_a and len(rows_a) == len(rows_b)
    for (ga, ma, x), (gb, mb, y) in zip(rows_a, rows_b, strict=True):
        assert (ga, ma) == (gb, mb)
        np.testing.assert_array_equal(x, y)


def source(kind: str, **params):
    return DATA.make(kind, params)


def test_each_truth_has_its_exact_expert():
    gauss = source("gaussian", dim=2, mean=1.0, std=2.0)
    x = np.array([[3.0, 1.0]])
    np.testing.assert_allclose(expert(gauss, x, 2.0), [[2.0, 1.0]])  # k = 4 / (4 + 4)
    mix = source("eight_gaussians", radius=2.0, std=0.1)
    np.testing.assert_allclose(expert(mix, np.array([[2.2, 0.0]]), 0.1), [[2.1, 0.0]])
    reg = source("regression", dim=1, noise_std=1.0, w_star=2.0)
    np.testing.assert_allclose(expert(reg, np.array([[1.0, 4.0]]), 1.0), [[1.0, 3.0]])


@pytest.mark.parametrize(
    ("cures", "needle"),
    [
        ({"self_correction": {"gamma": 1.5}}, "cures.self_correction.gamma"),
        ({"self_correction": {}}, "cures.self_correction.gamma"),
    ],
)
def test_bad_self_correction_params_name_the_key(cures, needle):
    raw = corrected(None, 1, 2)
    raw["cures"] = cures
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        resolve(raw)


def test_self_correction_without_a_known_truth_is_bad_input():
    raw = corrected(0.5, 1, 2)
    raw["data"] = {"kind": "two_moons", "n_real": 20}
    raw["model"], raw["metrics"] = {"kind": "kde"}, []
    with pytest.raises(ConfigError, match=r"^cures\.self_correction needs data with a known truth"):
        resolve(raw)


@pytest.mark.slow
def test_self_correction_preset_runs_quick_and_draws_its_curves(tmp_path):
    from selfconsume.report.cures import self_correction_curves
    from selfconsume.report.html import load_experiments
    from selfconsume.store.reader import StoreReader

    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", "self-correction", "--quick", "--store", str(store)])
    assert result.exit_code == 0, result.output
    with StoreReader(store) as reader:
        (exp,) = load_experiments(reader)
        (figure,) = self_correction_curves(exp, tmp_path)
    assert figure.path.exists() and len(exp.runs) == 8
