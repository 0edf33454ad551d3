"""The verifier of known accuracy: its keep rates against the exact binomial law, what "good" means
for each truth, verification turning collapse into improvement, and its bad input."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import metric, run_raw
from scipy.special import erf
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.data.base import DATA
from selfconsume.loop.verifier import Verifier, VerifierParams, is_good
from selfconsume.plan import resolve
from selfconsume.seeding import Streams

Z = 4.5


def source(kind: str, **params):
    return DATA.make(kind, params)


@pytest.mark.parametrize(("a", "b"), [(0.9, 0.7), (0.5, 0.5), (1.0, 1.0), (0.3, 0.1)])
def test_keep_rates_follow_the_verifier_accuracy(a, b):
    truth = source("gaussian", dim=1, mean=2.0, std=3.0)
    x = truth.sample(4, 20000, np.random.default_rng(0))
    score = Verifier(VerifierParams(accept_good=a, reject_bad=b, radius=1.5), truth).scorer(
        x, Streams(1).per_replicate("filter", 1)
    )(x)
    good, kept = is_good(truth, x, 1.5), score > 0
    p = erf(1.5 / np.sqrt(2))  # P(|z| <= 1.5) for samples of the truth itself
    assert abs(good.mean() - p) < Z * np.sqrt(p * (1 - p) / good.size)
    for mask, rate in ((good, a), (~good, 1 - b)):  # keep rates given the truth, binomial
        n = mask.sum()
        se = max(np.sqrt(rate * (1 - rate) / n), 1e-12)
        assert abs(kept[mask].mean() - rate) <= Z * se


def test_good_means_within_radius_of_each_truth():
    reg = source("regression", dim=2, noise_std=0.5, w_star=[1.0, -1.0])
    rows = np.array([[1.0, 1.0, 0.4], [1.0, 1.0, 0.6], [2.0, 0.0, 1.6]])
    np.testing.assert_array_equal(is_good(reg, rows, 1.0), [True, False, True])
    mix = source("eight_gaussians", radius=2.0, std=0.1)
    points = np.array([[2.0, 0.15], [2.0, 0.25], [0.0, 0.0]])
    np.testing.assert_array_equal(is_good(mix, points, 2.0), [True, False, False])
    gauss = source("gaussian", dim=2, std=2.0)
    np.testing.assert_array_equal(is_good(gauss, np.array([[3.0, 0.0], [3.0, 3.0]]), 2.0), [1, 0])


def verified(a: float, b: float, generations: int = 4) -> dict:
    return {
        "name": "v",
        "seed": 2,
        "replicates": 400,
        "generations": generations,
        "data": {"kind": "regression", "n_real": 30, "n_test": 2, "params": {"dim": 5}},
        "model": {"kind": "regression", "params": {"noise": "true_sigma"}},
        "scheme": {"kind": "replace", "n_synthetic": 120},
        "curation": {"kind": "verifier", "params": {"accept_good": a, "reject_bad": b}},
        "metrics": ["regression"],
    }


def test_a_perfect_verifier_improves_and_a_blind_one_collapses(store_path):
    store, (perfect,) = run_raw(verified(1.0, 1.0), store_path)
    store, (blind,) = run_raw(verified(0.5, 0.5), store_path)  # keeps a random half

    def interval(run: str, t: int) -> tuple[float, float]:
        e = metric(store, run, "test_error")[t]
        half = Z * e.std(ddof=1) / np.sqrt(e.size)
        return e.mean() - half, e.mean() + half

    assert interval(perfect, 4)[1] < interval(perfect, 0)[0]  # below the first fit: improvement
    assert interval(blind, 4)[0] > interval(blind, 0)[1]  # above it: collapse


def test_the_verifier_selects_by_threshold_unless_told():
    cfg = resolve(verified(0.9, 0.9))
    select = cfg.curation.params.select
    assert select.kind == "threshold" and select.params.threshold == 0.0


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"params": {"accept_good": 1.5}}, "curation.params.accept_good"),
        ({"reward": {"kind": "distance", "params": {"point": [0.0]}}}, "curation.reward"),
    ],
)
def test_bad_verifier_params_name_the_key(change, needle):
    from selfconsume.errors import ConfigError

    raw = verified(1.0, 1.0)
    raw["curation"] = {**raw["curation"], **change}
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        resolve(raw)


def test_a_verifier_without_a_known_truth_exits_2(tmp_path):
    config = tmp_path / "moons.yaml"
    config.write_text(
        "name: m\ndata: {kind: two_moons, n_real: 40}\nmodel: {kind: gmm}\n"
        "curation: {kind: verifier}\n"
    )
    store_path = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", str(config), "--store", str(store_path)])
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "curation.kind: verifier needs data with a known truth" in lines[0]
    assert not store_path.exists()


@pytest.mark.slow
def test_verifier_preset_runs_quick_and_draws_its_sweep(tmp_path):
    from selfconsume.report.cures import verifier_sweep
    from selfconsume.report.html import load_experiments
    from selfconsume.store.reader import StoreReader

    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", "verifier", "--quick", "--store", str(store)])
    assert result.exit_code == 0, result.output
    with StoreReader(store) as reader:
        (exp,) = load_experiments(reader)
        (figure,) = verifier_sweep(exp, tmp_path)
    assert figure.path.exists() and len(exp.runs) == 12


@pytest.mark.slow
def test_on_digits_good_means_the_data_classifier_is_confident(digits, cache):
    from selfconsume.rewards.image_classifier import data_classifier

    x = digits.sample(1, 200, np.random.default_rng(0))
    noisy = np.clip(x + np.random.default_rng(1).normal(0.0, 2.0, x.shape), -1, 1)
    confident = data_classifier(digits).proba(x).max(-1)
    np.testing.assert_array_equal(is_good(digits, x, 2.0, 0.9), confident >= 0.9)
    # real digits are mostly good by their classifier; pure noise far less often
    assert is_good(digits, x, 2.0, 0.9).mean() > is_good(digits, noisy, 2.0, 0.9).mean()


@pytest.mark.slow
def test_verifier_digits_preset_runs_quick_and_draws_its_sweep(tmp_path, cache):
    from selfconsume.report.cures import verifier_sweep
    from selfconsume.report.html import load_experiments
    from selfconsume.store.reader import StoreReader

    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", "verifier-digits", "--quick", "--store", str(store)])
    assert result.exit_code == 0, result.output
    with StoreReader(store) as reader:
        (exp,) = load_experiments(reader)
        (figure,) = verifier_sweep(exp, tmp_path)
    assert figure.path.exists() and len(exp.runs) == 4
