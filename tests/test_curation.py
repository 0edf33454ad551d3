"""Curation step, rewards, curation metrics, figures and bad input."""

from __future__ import annotations

import copy
import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from helpers import curated_discrete, keep, metric, run_raw

from selfconsume.data.discrete import DiscreteParams, DiscreteSource
from selfconsume.errors import ConfigError
from selfconsume.loop.curation import choose_bradley_terry
from selfconsume.loop.run import run_config
from selfconsume.loop.selection import build_selection
from selfconsume.metrics.curation import exact_reward_stats, sample_reward_stats
from selfconsume.models.discrete import DiscreteModel, DiscreteModelParams
from selfconsume.plan import build, load, resolve
from selfconsume.rewards.base import build_reward
from selfconsume.seeding import Streams
from selfconsume.store.sqlite import Store
from selfconsume.theory import curation as theory

P = np.array([0.4, 0.3, 0.2, 0.1])
BASE = curated_discrete("curation-test", replicates=2000, generations=1, n_real=1000)


class Mixture:
    """A stub 2-D source with modes on the unit circle (what rewards may look at)."""

    dim = 2
    mode_std = 0.3

    def __init__(self, m: int = 4) -> None:
        angles = 2 * np.pi * np.arange(m) / m
        self.modes = 3 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        self.mode_weights = np.full(m, 1 / m)

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.integers(len(self.modes), size=(replicates, n))
        return self.modes[k] + 0.3 * rng.standard_normal((replicates, n, 2))


def test_bradley_terry_choice_is_softmax():
    rng = np.random.default_rng(0)
    r = np.array([0.0, 1.0, -0.5, 2.0])
    n, beta = 400_000, 0.8
    picks = choose_bradley_terry(np.broadcast_to(r, (n, 4)), beta, rng)
    freq = np.bincount(picks, minlength=4) / n
    soft = np.exp(beta * r) / np.exp(beta * r).sum()
    se = np.sqrt(soft * (1 - soft) / n)
    assert np.all(np.abs(freq - soft) < 4.5 * se)
    uniform = np.bincount(choose_bradley_terry(np.broadcast_to(r, (n, 4)), 0.0, rng)) / n
    assert np.all(np.abs(uniform - 0.25) < 4.5 * np.sqrt(0.1875 / n))


def test_curate_draws_k_candidates_per_kept_sample():
    calls = []

    def sample(m: int) -> np.ndarray:
        calls.append(m)
        return np.arange(3 * m, dtype=float).reshape(3, m, 1)

    params = {"k": 5, "beta": 1e6}
    rng = np.random.default_rng(0)
    kept, weights = keep(sample, 7, "bradley_terry", params, lambda x: x[..., 0], rng)
    assert calls == [35] and kept.shape == (3, 7, 1) and weights is None
    np.testing.assert_array_equal(kept[0, :, 0], np.arange(4, 35, 5))  # the best of each group


@pytest.mark.parametrize(
    ("curation", "scheme"),
    [
        ({"kind": "top_fraction", "fraction": 0.25}, {"kind": "replace"}),
        ({"kind": "top_fraction", "fraction": 0.5}, {"kind": "mix", "lam": 1.0}),
        ({"kind": "threshold", "threshold": 1.5}, {"kind": "replace"}),
    ],
)
def test_filters_match_their_population_law(store_path, curation, scheme):
    raw = copy.deepcopy(BASE) | {"scheme": scheme}
    raw["curation"] = curation | {"reward": BASE["curation"]["reward"]}
    store, (run_id,) = run_raw(raw, store_path)
    m = np.stack([metric(store, run_id, f"mass_{i}") for i in range(4)], axis=-1)
    lam = scheme.get("lam")
    rule = resolve(raw).curation
    kept = build_selection(rule.kind, rule.params).population(m[0], np.arange(4.0))
    exact = theory.mixed(m[0], kept, lam)
    res = m[1] - exact
    se = res.std(axis=0, ddof=1) / np.sqrt(len(res))
    live = se > 1e-12  # states with no randomness differ by rounding only
    assert np.all(np.abs(res.mean(axis=0)[live]) < 4.5 * se[live])
    np.testing.assert_allclose(m[1][:, ~live], exact[:, ~live], atol=1e-12)


def test_toy_rewards():
    src = Mixture()
    x = np.array([[3.0, 0.1], [0.2, -2.9], [0.0, 0.0]])
    dist = build_reward("distance", {"point": [3.0, 0.0]}, src)(x)
    np.testing.assert_allclose(dist, -np.linalg.norm(x - [3.0, 0.0], axis=1))
    pref = build_reward("mode_preference", {"weights": [1, 0, 0, 5]}, src)(x[:2])
    np.testing.assert_array_equal(pref, [1.0, 5.0])
    lin = build_reward("linear", {"coef": [1.0, 2.0], "bias": 0.5}, src)(x)
    np.testing.assert_allclose(lin, x @ [1.0, 2.0] + 0.5)
    table = build_reward("table", {"values": [0, 1, 2, 3]}, DiscreteSource(DiscreteParams(probs=P)))
    np.testing.assert_array_equal(table(np.array([[[3], [0]]])), [[3.0, 0.0]])
    with pytest.raises(ConfigError, match="curation.reward.params.values"):
        table(np.array([[4]]))
    with pytest.raises(ConfigError, match="curation.reward.kind"):
        build_reward("table", {"values": [0, 1]}, src)
    with pytest.raises(ConfigError, match="curation.reward.params.weights"):
        build_reward("mode_preference", {"weights": [1, 0]}, src)
    with pytest.raises(ConfigError, match="curation.reward.params.point"):
        build_reward("distance", {"point": [0.0]}, src)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            CALLS = []
            def score(x):
                CALLS.append(len(x))
                return x[:, 0] ** 2
            def nan(x):
                return np.full(len(x), np.nan)
            def column(x):
                return x[:, :1]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_rewards

    yield my_rewards
    monkeypatch.delitem(__import__("sys").modules, "my_rewards")


def test_callable_reward_in_batches(user_module):
    reward = build_reward("callable", {"target": "my_rewards:score", "batch_size": 4}, None)
    x = np.arange(30.0).reshape(5, 3, 2)
    np.testing.assert_allclose(reward(x), x[..., 0] ** 2)
    assert user_module.CALLS == [4, 4, 4, 3]


def test_classifier_confidence_rewards_the_target_class():
    src = Mixture()
    prob = build_reward("classifier_confidence", {"target": 1, "output": "prob"}, src)
    at_modes = prob(src.modes[None])[0]
    assert at_modes[1] > 0.9 and np.all(at_modes[[0, 2, 3]] < 0.1)
    conf = build_reward("classifier_confidence", {}, src)(src.modes)
    assert np.all(conf > np.log(0.9)) and np.all(conf <= 0)


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("k", 0, "curation.params.k"),
        ("k", 2.5, "curation.params.k"),
        ("beta", -1.0, "curation.params.beta"),
        ("reward", {"kind": "callable", "params": {"target": "no_such_mod:f"}}, "no_such_mod:f"),
        ("reward", {"kind": "callable", "params": {"target": "nocolon"}}, "params.target"),
        ("reward", {"kind": "nope"}, "curation.reward"),
    ],
)
def test_bad_curation_is_one_line_naming_the_key(tmp_path, key, value, needle):
    raw = copy.deepcopy(BASE)
    raw["curation"][key] = value
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load(str(path))
    message = str(err.value)
    assert needle in message and "\n" not in message


def test_k_inf_needs_population_mode():
    raw = copy.deepcopy(BASE)
    raw["curation"]["k"] = float("inf")
    with pytest.raises(ConfigError, match="curation.params.k"):
        resolve(raw)
    raw["model"]["population"] = True
    assert np.isinf(resolve(raw).curation.params.k)


@pytest.mark.parametrize(("target", "needle"), [("nan", "non-finite"), ("column", "shape")])
def test_bad_reward_values_fail_as_bad_input(store_path, user_module, target, needle):
    raw = copy.deepcopy(BASE) | {"replicates": 2, "data": {**BASE["data"], "n_real": 10}}
    raw["curation"]["reward"] = {"kind": "callable", "params": {"target": f"my_rewards:{target}"}}
    with pytest.raises(ConfigError) as err:
        run_config(resolve(raw), Store(store_path))
    assert "curation.reward" in str(err.value) and needle in str(err.value)
    assert "\n" not in str(err.value)


def test_reward_metrics_exact_and_from_samples():
    p = np.array([P, [0.05, 0.1, 0.4, 0.45]])
    r, beta = np.arange(4.0), 0.5
    exact = exact_reward_stats(p, r, beta)
    e = np.exp(beta * r)
    np.testing.assert_allclose(exact["exp_reward_mean"], p @ e)
    np.testing.assert_allclose(exact["exp_reward_var"], p @ e**2 - (p @ e) ** 2)
    np.testing.assert_array_equal(exact["reward_q10"], [0, 1])
    np.testing.assert_array_equal(exact["reward_q50"], [1, 2])
    np.testing.assert_array_equal(exact["reward_q90"], [2, 3])  # P's CDF hits 0.9 at r = 2
    p[0] = [0.25, 0.35, 0.25, 0.15]  # no CDF value at a quantile level, for the sample estimate
    exact = exact_reward_stats(p, r, beta)
    model = DiscreteModel(DiscreteModelParams(states=4), 1, 2, Streams(0))
    model.probs = p
    x = model.sample(200_000, np.random.default_rng(0), 1)
    est = sample_reward_stats(r[x[..., 0]], beta)
    for name, value in exact.items():
        assert np.allclose(est[name], value, rtol=0.02, atol=0.01), name


def test_metric_groups_in_a_run(store_path):
    raw = copy.deepcopy(BASE) | {"replicates": 3, "generations": 2}
    raw["metrics"] = ["mass", "reward", "divergence"]
    store, (run_id,) = run_raw(raw, store_path)
    m = np.stack([metric(store, run_id, f"mass_{i}") for i in range(4)], axis=-1)
    np.testing.assert_allclose(m.sum(-1), 1.0)
    kl, tv = metric(store, run_id, "kl_data"), metric(store, run_id, "tv_data")
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_kl = np.where(m > 0, m * np.log(m / P), 0).sum(-1)
    np.testing.assert_allclose(kl, expected_kl)
    np.testing.assert_allclose(tv, 0.5 * np.abs(m - P).sum(-1))
    np.testing.assert_allclose(metric(store, run_id, "reward_mean"), m @ np.arange(4.0))
    assert tv[2].mean() > tv[0].mean()


def test_population_mode_uses_the_plan_reward(store_path):
    raw = copy.deepcopy(BASE) | {"replicates": 3, "generations": 1}
    raw["model"] = {"kind": "discrete", "population": True}
    raw["curation"] |= {"kind": "threshold", "threshold": 2.0}
    plan = build(resolve(raw))
    assert plan.reward is not None
    store, (run_id,) = run_raw(raw, store_path)
    np.testing.assert_allclose(metric(store, run_id, "mass_0")[1], 0.0)


def test_figures_for_a_discrete_experiment(store_path, tmp_path):
    from selfconsume.report.curation import mass_bars, reward_curves
    from selfconsume.report.html import load_experiments

    raw = copy.deepcopy(BASE) | {"replicates": 5, "generations": 3, "metrics": ["mass", "reward"]}
    raw["sweep"] = {"curation.k": [2, 4]}
    store, _ = run_raw(raw, store_path)
    (exp,) = load_experiments(store)
    figures = reward_curves(exp, tmp_path) + mass_bars(exp, tmp_path)
    assert len(figures) == 2 and all(f.path.stat().st_size > 10_000 for f in figures)


def test_presets_load():
    for cfg in load("curated-discrete", overrides=["model.population=true", "sweep=null"]):
        assert cfg.curation.kind == "bradley_terry"
    assert len(load("curated-discrete")) == 4
    toy = load("curated-toy", quick=True)
    assert [c.scheme.kind for c in toy] == ["replace", "mix"] and toy[1].scheme.params.lam == 0.5
    assert toy[0].curation.params.k == 4 and toy[0].model.kind == "ddpm"


@pytest.mark.parametrize("beta", [1e3, 1e6, 1e12, 1e15, 1e18, 1e300])
def test_bradley_terry_choice_at_any_finite_beta_is_the_argmax_law(beta):
    rng = np.random.default_rng(1)
    n, k = 200_000, 4
    states = rng.choice(4, size=(n, k), p=P)
    picks = choose_bradley_terry(1e6 + states.astype(float), beta, rng)  # offset rewards
    freq = np.bincount(states[np.arange(n), picks], minlength=4) / n
    law = P * theory.argmax_h(P, np.arange(4.0), k)
    assert np.all(np.abs(freq - law) < 4.5 * np.sqrt(law * (1 - law) / n))


def test_cli_population_and_sampled_loop_agree_at_a_huge_beta(store_path):
    from typer.testing import CliRunner

    from selfconsume.cli import app

    def mass_3(population: bool) -> pd.DataFrame:
        sets = ["curation.params.beta=1e300", "generations=1", "sweep=null", "replicates=400"]
        sets.append(f"model.population={str(population).lower()}")
        args = ["run", "curated-discrete", "--store", str(store_path / str(population))]
        done = CliRunner().invoke(app, [*args, *(a for s in sets for a in ("--set", s))])
        assert done.exit_code == 0, done.output
        out = CliRunner().invoke(
            app, ["export", "--store", str(store_path / str(population)), "--format", "json"]
        )
        df = pd.DataFrame(json.loads(out.stdout))
        return df[(df.metric == "mass_3") & (df.generation == 1)].value.to_numpy()

    store_path.mkdir()
    law = (P * theory.argmax_h(P, np.arange(4.0), 4))[3]  # best of K = 4 candidates
    np.testing.assert_allclose(mass_3(True), law, rtol=1e-12)
    sampled = mass_3(False)
    assert abs(sampled.mean() - law) < 4.5 * sampled.std(ddof=1) / np.sqrt(sampled.size)


@pytest.mark.parametrize("population", [True, False])
def test_a_curation_that_keeps_nothing_names_the_generation(store_path, population):
    raw = copy.deepcopy(BASE) | {"replicates": 5, "generations": 2}
    raw["model"] = {"kind": "discrete", "population": population}
    raw["curation"] |= {"kind": "threshold", "threshold": 10.0}  # above every reward
    outcome = run_config(resolve(raw), Store(store_path))
    assert outcome.status == "failed"
    assert outcome.error.startswith("RunFailed: generation 1: curation threshold kept no ")
