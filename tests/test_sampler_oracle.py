"""The sampler must not be the experiment: one pass of each 2-D preset's sampler, run with the exact
network of the 8 Gaussians (`theory.mixture_score`), returns the truth within 2% on the within-mode
std and with uniform mode weights. A sampler that shrinks the modes would read as model collapse in
a fully synthetic loop, where its bias compounds over the generations."""

from __future__ import annotations

import copy
import functools
import json

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from selfconsume.config import read_raw, set_path
from selfconsume.data.base import DATA
from selfconsume.models.base import MODELS
from selfconsume.models.ddpm import DDPM
from selfconsume.models.torch_batched import Net
from selfconsume.seeding import Streams
from selfconsume.theory import mixture_score as ms

DEEP_PRESETS = [
    "eight-gaussians-collapse",
    "stability-lambda",
    "stability-lambda-flow",
    "curated-toy",
]
BOUND = 0.02
N = 40_000  # relative standard error of the std: 1 / sqrt(4 N) = 0.25%
Z = 3.0


def preset_raw(name: str, quick: bool = False) -> dict:
    raw = copy.deepcopy(read_raw(name)[0])
    if quick:
        for key, value in (raw.get("quick") or {}).items():
            set_path(raw, key, value)
    return raw


def build(raw: dict, replicates: int = 1):
    """The preset's model (one replicate) and its data source."""
    kind = raw["model"]["kind"]
    model = MODELS.make(
        kind, raw["model"].get("params"), dim=2, replicates=replicates, streams=Streams(0)
    )
    data = raw["data"]
    source = DATA.make(data["kind"], data.get("params"))
    return model, source


def exact_scaling(model, source) -> None:
    """Give the model the normalisation a fit on infinitely many points would (exact mean, std)."""
    w = source.mode_weights[:, None]
    mean = (w * source.modes).sum(0)
    std = np.sqrt((w * (source.modes - mean) ** 2).sum(0) + source.mode_std**2)
    if model.p.normalize:
        model.net.shift, model.net.scale = mean[None, None], std[None, None]


def exact_net(model, source) -> Net:
    """The perfect network of the model's family, in its normalised coordinates and parameterisation."""
    shift, scale = model.net.shift[0, 0], model.net.scale[0, 0]
    variances = np.full(source.modes.shape, source.mode_std**2)
    means, variances = ms.standardised(source.modes, variances, shift, scale)
    w = source.mode_weights

    def net(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt, xs = float(t.flatten()[0]), x.double().numpy()
        if not isinstance(model, DDPM):
            return torch.as_tensor(ms.flow_velocity(xs, means, variances, w, tt), dtype=x.dtype)
        abar = model.abar[round(tt * model.p.n_steps)]
        out = ms.noise_prediction(xs, means, variances, w, abar)
        if model.p.prediction == "v":
            out = (out - np.sqrt(1 - abar) * xs) / np.sqrt(abar)
        return torch.as_tensor(out, dtype=x.dtype)

    return net


def within_mode(samples: np.ndarray, source) -> tuple[float, float, np.ndarray]:
    """Pooled within-mode std (per axis), its standard error, and the counts per nearest mode."""
    d2 = ((samples[:, None, :] - source.modes) ** 2).sum(-1)
    nearest = d2.argmin(1)
    sq = ((samples - source.modes[nearest]) ** 2).ravel()
    std = float(np.sqrt(sq.mean()))
    se = float(sq.std(ddof=1) / np.sqrt(sq.size) / (2 * std))  # delta method on sqrt(mean)
    return std, se, np.bincount(nearest, minlength=len(source.modes))


def one_pass(raw: dict) -> tuple[float, float, np.ndarray, object]:
    """Within-mode std, its standard error, mode counts and the source after one sampler pass."""
    return _one_pass(json.dumps({k: raw[k] for k in ("model", "data")}, sort_keys=True))


@functools.cache
def _one_pass(key: str) -> tuple[float, float, np.ndarray, object]:
    """Cached by model and data (the 8-Gaussian DDPM presets share their settings)."""
    model, source = build(json.loads(key))
    exact_scaling(model, source)
    samples = model.sample(N, np.random.default_rng(0), 0, net=exact_net(model, source))[0]
    return (*within_mode(samples, source), source)


@pytest.mark.slow
@pytest.mark.parametrize("name", DEEP_PRESETS)
def test_preset_sampler_with_the_exact_network_keeps_the_modes(name):
    std, se, counts, source = one_pass(preset_raw(name))
    sigma = source.mode_std
    # The bias is within BOUND with confidence: estimate plus Z standard errors.
    assert abs(std / sigma - 1) + Z * se / sigma < BOUND, (std, se)
    expected = source.mode_weights * counts.sum()
    stat = ((counts - expected) ** 2 / expected).sum()
    assert stat < chi2.ppf(1 - 1e-3, len(counts) - 1), counts


@pytest.mark.slow
def test_the_oracle_check_catches_a_contracting_sampler():
    """Ancestral sampling with T = 100 linear steps ends with the posterior mean E[x0 | x_1]: for
    a Gaussian mode of (normalised) variance v it alone shrinks the std by sqrt(v / (v + beta_1))
    (beta_1 = 1e-3), and the steps before it shrink it further."""
    raw = preset_raw("stability-lambda")
    raw["model"]["params"] = {"n_steps": 100, "sampler": "ancestral", "schedule": "linear"}
    model, source = build(raw)
    exact_scaling(model, source)
    v = (source.mode_std / model.net.scale[0, 0, 0]) ** 2
    last_step = np.sqrt(v / (v + model.beta[0]))
    std, se, _, _ = one_pass(raw)
    assert std / source.mode_std + Z * se / source.mode_std < last_step < 1 - BOUND


@pytest.mark.parametrize("name", DEEP_PRESETS)
def test_quick_scale_keeps_the_first_model_and_the_sampler(name):
    """Quick scale cuts generations or replicates only: the model's parameters are the default's."""
    assert preset_raw(name, quick=True)["model"] == preset_raw(name)["model"]


def score(x, means, variances, w, a, s, h=1e-5):
    """Central-difference gradient of log p of the noised mixture a x0 + s z."""
    cols = [
        ms.log_density(x + h * e, means, variances, w, a, s)
        - ms.log_density(x - h * e, means, variances, w, a, s)
        for e in np.eye(x.shape[-1])
    ]
    return np.stack(cols, axis=-1) / (2 * h)


@pytest.mark.parametrize("t", [0.05, 0.5, 0.95])
def test_exact_denoisers_follow_the_score_of_the_noised_mixture(t):
    """Tweedie: E[z | x] = -s grad log p(x) and E[x0 | x] = (x + s^2 grad log p(x)) / a. The DDPM
    noise predictor is the first (a = sqrt(abar), s = sqrt(1 - abar)), the flow's velocity the
    difference of the two (a = t, s = 1 - t)."""
    rng = np.random.default_rng(3)
    mix = rng.normal(size=(3, 2)), rng.uniform(0.01, 0.5, size=(3, 2)), np.array([0.2, 0.5, 0.3])
    x = rng.normal(size=(50, 2))
    a, s = np.sqrt(t), np.sqrt(1 - t)
    np.testing.assert_allclose(
        ms.noise_prediction(x, *mix, t), -s * score(x, *mix, a, s), rtol=1e-5, atol=1e-7
    )
    g = score(x, *mix, t, 1 - t)
    velocity = (x + (1 - t) ** 2 * g) / t + (1 - t) * g
    np.testing.assert_allclose(ms.flow_velocity(x, *mix, t), velocity, rtol=1e-5, atol=1e-6)
