"""The image families: a class-conditional DDPM samples the asked class, the digits presets' sampler
returns a Gaussian's moments with its exact denoiser, the U-Net keeps replicates independent, labels
travel with their rows through curation, and bad conditional input is refused with one line."""

from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest
import torch
from test_sampler_oracle import preset_raw

from selfconsume.errors import ConfigError
from selfconsume.loop.selection import Candidates, build_selection, curate
from selfconsume.models.base import MODELS
from selfconsume.plan import resolve
from selfconsume.seeding import Streams

IMAGE_PRESETS = ["curated-digits", "stability-digits"]
ORACLE_N = 4000
ORACLE_BOUND = 0.03
"""Bound on the relative shrinkage of the std along the data's principal directions (measured:
DDIM on 100 quadratic steps of T = 1000 shrinks it by about 2%, 50 steps by 3.5%)."""
Z = 3.0


def ddpm(params: dict, replicates: int = 1, seed: int = 0):
    return MODELS.make(
        "ddpm",
        {**params, "device": "cpu"},
        dim=64,
        replicates=replicates,
        streams=Streams(seed),
        image_shape=(1, 8, 8),
    )


@pytest.mark.slow
def test_class_conditional_ddpm_samples_the_asked_class(digits):
    """Generation 0 of a conditional model: the data's classifier (98% held out) reads >= 90% of
    its samples as the class they were asked for (chance: 10%)."""
    from selfconsume.rewards.image_classifier import data_classifier

    source = digits
    x, y = source.sample_labelled(1, 500, Streams(0).per_replicate("real", 0))
    params = {"conditional": True, "hidden": 256, "prediction": "v", "normalize": False}
    model = ddpm(
        {
            **params,
            "train_steps": 1500,
            "batch_size": 128,
            "n_steps": 1000,
            "sampler": "ddim",
            "ddim_steps": 50,
            "ema_decay": 0.995,
        }
    )
    model.fit(x, None, 0, False, labels=y)
    asked = np.repeat(np.arange(10), 30)[None]
    samples = model.sample(300, np.random.default_rng(1), 0, labels=asked)
    accuracy = (data_classifier(source).proba(samples[0]).argmax(-1) == asked[0]).mean()
    assert accuracy >= 0.9, accuracy


@pytest.mark.parametrize("name", IMAGE_PRESETS)
def test_preset_sampler_with_the_exact_denoiser_returns_a_gaussians_moments(name, digits):
    """A Gaussian N(m, S) fitted to digits has the exact eps E[eps | x_t] = s (a^2 S + s^2 I)^-1
    (x_t - a m); the preset's sampler run with it returns m and, along every principal direction
    with variance above 0.01, the std within ORACLE_BOUND (plus Z standard errors)."""
    model = ddpm(preset_raw(name)["model"]["params"])
    x = digits.sample(1, 500, np.random.default_rng(0))[0]
    mean, cov = x.mean(0), np.cov(x.T)
    lam, u = np.linalg.eigh(cov)
    lam = np.clip(lam, 0, None)

    def net(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = model.abar[round(float(t.flatten()[0]) * model.p.n_steps)]
        a, s = np.sqrt(abar), np.sqrt(1 - abar)
        xs = xt.double().numpy()
        eps = s * (((xs - a * mean) @ u) / (a * a * lam + s * s)) @ u.T
        return torch.as_tensor((eps - s * xs) / a if model.p.prediction == "v" else eps)

    out = model.sample(ORACLE_N, np.random.default_rng(0), 0, net=net)[0]
    assert np.abs(out.mean(0) - mean).max() < Z * np.sqrt(lam.max() / ORACLE_N) + 0.01
    big = lam > 0.01
    ratio = np.sqrt(np.diag(u.T @ np.cov(out.T) @ u)[big] / lam[big])
    se = 1 / np.sqrt(2 * ORACLE_N)  # relative standard error of a Gaussian's std
    assert np.all(np.abs(ratio - 1) < ORACLE_BOUND + Z * se), ratio.min()
    # the directions' estimates are about independent: the mean's bias within the bound, with
    # confidence
    assert abs(ratio.mean() - 1) + Z * se / np.sqrt(big.sum()) < ORACLE_BOUND, ratio.mean()


def test_unet_replicate_is_the_same_alone_and_batched(digits):
    source = digits
    x, y = source.sample_labelled(3, 64, Streams(0).per_replicate("real", 0))
    params = {
        "net": "unet",
        "channels": [8, 16],
        "conditional": True,
        "train_steps": 5,
        "batch_size": 16,
        "n_steps": 10,
        "guidance": 1.0,
    }
    batched, alone = ddpm(params, replicates=3), ddpm(params, replicates=1)
    batched.fit(x, None, 0, False, labels=y)
    alone.fit(x[:1], None, 0, False, labels=y[:1])
    for a, b in zip(batched.state_dict()["ema"], alone.state_dict()["ema"], strict=True):
        assert torch.equal(a[:1], b)
    rng = Streams(1).per_replicate("eval", 0)
    s3 = batched.sample(8, rng, 0)
    np.testing.assert_array_equal(s3[:1], alone.sample(8, Streams(1).per_replicate("eval", 0), 0))
    restored = ddpm(params, replicates=3, seed=9)
    restored.load_state_dict(batched.state_dict())
    np.testing.assert_array_equal(s3, restored.sample(8, Streams(1).per_replicate("eval", 0), 0))


def test_guidance_mixes_the_conditional_and_the_null_label_outputs():
    model = ddpm({"conditional": True, "guidance": 2.0, "hidden": 8, "depth": 1, "n_steps": 10})
    labels = np.array([[3, 7]])
    x, t = torch.randn(1, 2, 64), torch.full((1, 2), 0.5)
    net, params = model.net.network, model.net.ema
    cond = net(params, x, t, torch.as_tensor(labels))
    null = net(params, x, t, None)
    torch.testing.assert_close(model.net.net(labels=labels)(x, t), 3.0 * cond - 2.0 * null)


def test_bradley_terry_candidates_share_their_prompt_and_keep_it():
    """Each kept sample was drawn for its own prompt: a sampler that writes the label into x."""
    prompts = lambda m: np.tile(np.arange(m) % 10, (2, 1))  # noqa: E731
    sample = lambda m, y: np.stack([y, np.random.default_rng(0).random(y.shape)], -1)  # noqa: E731
    rule = build_selection("bradley_terry", {"k": 4})
    x, w, y = astuple(
        curate(Candidates(sample, prompts), 30, rule, lambda s: s[..., 1], np.random.default_rng(1))
    )
    assert w is None and x.shape == (2, 30, 2)
    np.testing.assert_array_equal(x[..., 0], y)
    np.testing.assert_array_equal(y, prompts(30))


BASE = {
    "name": "img",
    "data": {"kind": "digits", "n_real": 50, "n_test": 20},
    "model": {"kind": "ddpm", "params": {"conditional": True}},
}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"data": {"kind": "eight_gaussians", "n_real": 50}}, "model.params.conditional"),
        (
            {"model": {"kind": "ddpm", "params": {"conditional": True, "classes": 3}}},
            "model.params.classes",
        ),
        ({"model": {"kind": "ddpm", "params": {"guidance": 1.0}}}, "model.params"),
        (
            {
                "model": {"kind": "flow", "params": {"net": "unet"}},
                "data": {"kind": "eight_gaussians", "n_real": 50},
            },
            "model.params.net",
        ),
        (
            {"model": {"kind": "ddpm", "params": {"conditional": True, "prompt_weights": [1, 2]}}},
            "model.params",
        ),
    ],
)
def test_bad_conditional_input_is_one_config_error(change, key):
    with pytest.raises(ConfigError, match=key):
        resolve({**BASE, **change})


def test_a_conditional_curated_run_trains_on_labelled_rows(tmp_path):
    from helpers import metric, run_raw

    raw = {
        **BASE,
        "replicates": 2,
        "generations": 2,
        "model": {
            "kind": "ddpm",
            "warm_start": True,
            "params": {
                "conditional": True,
                "hidden": 16,
                "depth": 2,
                "train_steps": 20,
                "finetune_steps": 5,
                "batch_size": 16,
                "n_steps": 10,
            },
        },
        "scheme": {"kind": "accumulate_subsample", "lam": 0.5},
        "curation": {"kind": "bradley_terry", "k": 2, "reward": {"kind": "classifier_confidence"}},
        "metrics": ["reward"],
    }
    store, (run_id,) = run_raw(raw, tmp_path / "s.sqlite")
    assert metric(store, run_id, "reward_mean").shape == (3, 2)
    assert np.all(np.isfinite(metric(store, run_id, "train_loss")))
