"""Negative guidance (`model.params.negative_guidance`): sampling with (1 + w) out - w out_bad.

w = 0 is the unguided model bit for bit; the guided output is the formula in every parametrisation
(eps, v, velocity); the bad models are what they are defined to be (the EMA after a fraction of the
fit; a warm copy fine-tuned on the model's own samples) and leave the model itself untouched; a
guided run resumes exactly; bad input exits 2 naming the key; the preset runs at quick scale."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers import interrupt_after, metric
from test_sampler_oracle import preset_raw
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.loop.run import run_config
from selfconsume.models.base import MODELS
from selfconsume.plan import resolve
from selfconsume.registry import IDENTITY
from selfconsume.seeding import Streams
from selfconsume.store.sqlite import Store

runner = CliRunner()

SMALL = {"hidden": 16, "depth": 2, "train_steps": 40, "finetune_steps": 10}
STEPS = {"ddpm": {"n_steps": 20}, "flow": {"n_ode_steps": 10}}
EARLY = {"w": 0.5, "bad": "early", "fraction": 0.5}
SYNTHETIC = {"w": 1.5, "bad": "synthetic", "steps": 15}

RAW = {
    "name": "guide",
    "seed": 3,
    "common_random_numbers": True,
    "replicates": 2,
    "generations": 3,
    "data": {"kind": "eight_gaussians", "n_real": 64, "n_test": 40},
    "model": {
        "kind": "ddpm",
        "warm_start": True,
        "params": {**SMALL, **STEPS["ddpm"], "batch_size": 32},
    },
    "scheme": {"kind": "replace"},
    "metrics": ["w2", "mmd", "prd"],
}


def build(kind: str, guide: dict | None = None, **extra):
    params = {**SMALL, **STEPS[kind], "batch_size": 32, **extra}
    if guide is not None:
        params["negative_guidance"] = guide
    return MODELS.make(kind, params, dim=2, replicates=2, streams=Streams(0))


def data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(2, 64, 2))


def fit_twice(model) -> None:
    model.fit(data(), None, 0, False)
    model.fit(data() + 1.0, None, 1, True)


def draw(model) -> np.ndarray:
    return model.sample(50, Streams(1).per_replicate("s", 0), 1)


def assert_same_state(a: dict, b: dict) -> None:
    for key in ("params", "ema"):
        for p, q in zip(a[key], b[key], strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["ddpm", "flow"])
@pytest.mark.parametrize("guide", [{"w": 0.0}, {**EARLY, "w": 0.0}, {**SYNTHETIC, "w": 0.0}])
def test_zero_weight_samples_exactly_as_without_the_option(kind, guide):
    plain, zero = build(kind), build(kind, guide)
    fit_twice(plain)
    fit_twice(zero)
    np.testing.assert_array_equal(draw(zero), draw(plain))
    assert_same_state(zero.state_dict(), plain.state_dict())
    assert "bad" not in zero.state_dict()


def test_zero_weight_run_has_the_metrics_and_samples_of_a_run_without_it(tmp_path):
    guided = copy.deepcopy(RAW)
    guided["model"]["params"]["negative_guidance"] = {**SYNTHETIC, "w": 0.0}
    plain_cfg, zero_cfg = resolve(RAW), resolve(guided)
    assert plain_cfg.run_id != zero_cfg.run_id
    store = Store(tmp_path / "s.sqlite")
    run_config(plain_cfg, store)
    run_config(zero_cfg, store)
    for name in ("w2", "mmd", "precision", "recall"):
        np.testing.assert_array_equal(
            metric(store, zero_cfg.run_id, name), metric(store, plain_cfg.run_id, name)
        )
    plain_samples, zero_samples = store.samples(plain_cfg.run_id), store.samples(zero_cfg.run_id)
    assert sorted(zero_samples) == sorted(plain_samples) == [0, 1, 2, 3]
    for t, x in plain_samples.items():
        np.testing.assert_array_equal(zero_samples[t], x)


def test_configs_without_the_option_keep_their_run_id():
    """An absent negative_guidance is left out of a run's identity (old run ids stay valid); a
    configured one is part of it."""
    plain = resolve(RAW).model.params
    assert "negative_guidance" not in plain.model_dump(mode="json", context=IDENTITY)
    assert plain.model_dump(mode="json")["negative_guidance"] is None  # stored, named
    guided = {**RAW["model"]["params"], "negative_guidance": {"w": 0.5, "bad": "early"}}
    raw = {**RAW, "model": {**RAW["model"], "params": guided}}
    assert "negative_guidance" in resolve(raw).model.params.model_dump(context=IDENTITY)


@pytest.mark.parametrize(("kind", "prediction"), [("ddpm", "eps"), ("ddpm", "v"), ("flow", None)])
def test_guided_output_is_the_formula_in_the_samplers_parametrisation(kind, prediction):
    """(1 + w) out - w out_bad on the network is (1 + w) eps - w eps_bad on the eps the DDPM
    sampler derives (eps = sqrt(abar) v + sqrt(1 - abar) x is affine in v), and the velocity
    field itself for flow."""
    extra = {} if prediction is None else {"prediction": prediction}
    model = build(kind, EARLY, **extra)
    model.fit(data(), None, 0, False)
    net = model.net
    assert net.bad is not None
    good, bad = net.bound(net.ema, None), net.bound(net.bad, None)
    x = torch.randn(2, 7, 2, generator=torch.Generator().manual_seed(0))
    t = torch.full((2, 7), 0.3)
    guided = net.net(ema=True)
    w = EARLY["w"]
    torch.testing.assert_close(guided(x, t), (1 + w) * good(x, t) - w * bad(x, t))
    assert (good(x, t) - bad(x, t)).abs().max() > 1e-3  # the two networks differ
    if kind == "ddpm":
        step = 6
        eps = model._eps(guided, x, step)
        want = (1 + w) * model._eps(good, x, step) - w * model._eps(bad, x, step)
        torch.testing.assert_close(eps, want, rtol=1e-5, atol=1e-5)


def test_early_bad_model_is_the_ema_after_that_fraction_of_the_fit():
    """The random draws come in chunks of 512 steps here (`draws`), so the first 512 of 1024 steps
    draw what a 512-step fit draws."""
    long = build("ddpm", {**EARLY, "fraction": 0.5}, train_steps=1024)
    short = build("ddpm", train_steps=512)
    long.fit(data(), None, 0, False)
    short.fit(data(), None, 0, False)
    for b, e in zip(long.net.bad, short.net.ema, strict=True):
        torch.testing.assert_close(b, e, rtol=0, atol=0)
    assert not torch.equal(long.net.ema[0], short.net.ema[0])


def test_synthetic_bad_model_is_a_copy_fine_tuned_on_the_models_own_samples():
    guided, plain = build("ddpm", SYNTHETIC), build("ddpm")
    guided.fit(data(), None, 0, False)
    plain.fit(data(), None, 0, False)
    assert_same_state(guided.state_dict(), plain.state_dict())  # the model itself is untouched
    own = plain.sample(64, Streams(0).per_replicate("ddpm/bad", 0), 0)
    plain.net.purpose = "ddpm/bad"
    plain.net.p = plain.net.p.model_copy(update={"finetune_steps": SYNTHETIC["steps"]})
    plain.fit(own, None, 0, True)
    for b, e in zip(guided.net.bad, plain.net.ema, strict=True):
        torch.testing.assert_close(b, e, rtol=0, atol=0)


@pytest.mark.parametrize("guide", [EARLY, SYNTHETIC])
def test_guided_run_resumes_to_identical_numbers(tmp_path, guide):
    raw = copy.deepcopy(RAW)
    raw["model"]["params"]["negative_guidance"] = guide
    cfg = resolve(raw)
    reference = Store(tmp_path / "ref.sqlite")
    run_config(cfg, reference)
    store = Store(tmp_path / "s.sqlite")
    interrupt_after(cfg, store, 1, KeyboardInterrupt)
    run_config(cfg, store)
    for name in ("w2", "mmd"):
        np.testing.assert_array_equal(
            metric(store, cfg.run_id, name), metric(reference, cfg.run_id, name)
        )


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        (
            "model.params.negative_guidance={w: -0.5, bad: early}",
            "model.params.negative_guidance.w",
        ),
        ("model.params.negative_guidance={w: 0.5}", "model.params.negative_guidance.bad"),
        (
            "model.params.negative_guidance={w: 0.5, bad: worse}",
            "model.params.negative_guidance.bad",
        ),
        (
            "model={kind: gaussian, params: {negative_guidance: {w: 0.5, bad: early}}}",
            "model.params.negative_guidance",
        ),
    ],
)
def test_bad_guidance_exits_2_naming_the_key(tmp_path, item, needle):
    store_path = tmp_path / "s.sqlite"
    result = runner.invoke(
        app, ["run", "self-improving", "--quick", "--store", str(store_path), "--set", item]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert not store_path.exists() and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_preset_runs_at_quick_scale(tmp_path):
    """Its quick scale with fewer network steps: every code path of the preset (the guided
    sampler, the bad copy fine-tuned each generation) at 40 % of the CPU."""
    store_path = tmp_path / "s.sqlite"
    cheaper = [
        f"model.params.{k}" for k in ("train_steps=300", "finetune_steps=50", "ddim_steps=10")
    ]
    args = ["run", "self-improving", "--quick", "--store", str(store_path)]
    result = runner.invoke(app, [*args, *(a for k in cheaper for a in ("--set", k))])
    assert result.exit_code == 0, result.output
    runs = Store(store_path).runs()
    weights = sorted(r.config.model.params.negative_guidance.w for r in runs)
    assert weights == [0.0, 0.5, 1.5]
    assert all(r.status == "done" and r.generations_done == 4 for r in runs)


def test_preset_first_model_and_sampler_are_stability_lambdas():
    """The default-scale model is stability-lambda's (its sampler passes the exact-network check of
    tests/test_sampler_oracle.py) plus the guidance block, so w = 0 is its fully synthetic arm."""
    params = dict(preset_raw("self-improving")["model"]["params"])
    assert params.pop("negative_guidance")["bad"] == "synthetic"
    assert params == preset_raw("stability-lambda")["model"]["params"]
