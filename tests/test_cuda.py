"""The torch paths on a CUDA device (skipped without one): each family and network, each sampler
(ancestral, DDIM, flow Euler and midpoint), classifier-free and negative guidance and the
conditional path fit and sample with every tensor on the GPU; the classifier reward reads CUDA
samples, and the feature metrics' network from a file gives the CPU's features on the GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_device import VARIANTS, build, off_device
from test_feature_net import GROUPS, Fixed, Linear, digits_with, export

from selfconsume.metrics.base import METRICS, MetricContext
from selfconsume.rewards.base import build_reward
from selfconsume.seeding import Streams

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.filterwarnings("ignore:.torch.jit.*:DeprecationWarning"),
]
CUDA = torch.device("cuda")
SAMPLERS = {"ddpm-mlp-ancestral": {}, "ddpm-mlp-ddim-v": {}, "flow-mlp": {"sampler": "euler"}}


def fitted(variant: str, x: np.ndarray, labels: np.ndarray | None):
    model = build(variant, device="cuda")
    model.fit(x, None, 0, False, labels=labels if model.conditional else None)
    model.fit(x, None, 1, True, labels=labels if model.conditional else None)
    return model


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_family_fits_and_samples_on_cuda_with_every_tensor_there(variant):
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(2, 32, 64)), rng.integers(0, 3, size=(2, 32))
    model = fitted(variant, x, labels)
    assert model.device.type == "cuda"
    out = model.sample(8, np.random.default_rng(1), 1)
    assert out.shape == (2, 8, 64) and np.isfinite(out).all()
    if model.conditional:
        asked = model.sample(8, np.random.default_rng(1), 1, labels=labels[:, :8])
        assert np.isfinite(asked).all()
    assert off_device(model, CUDA) == []


@pytest.mark.parametrize("variant", sorted(SAMPLERS))
def test_cuda_and_cpu_sample_alike_from_the_same_state(variant):
    """Same parameters, same CPU-drawn noise: the GPU's samples are the CPU's up to float32
    arithmetic (a few steps of a tiny net: within 1e-3)."""
    x = np.random.default_rng(0).normal(size=(2, 32, 64))
    cpu = build(variant)
    cpu.fit(x, None, 0, False)
    gpu = build(variant, device="cuda")
    gpu.load_state_dict(cpu.state_dict())
    a, b = (m.sample(8, np.random.default_rng(1), 1) for m in (cpu, gpu))
    np.testing.assert_allclose(b, a, atol=1e-3)


def test_flow_log_prob_on_cuda_is_the_cpus():
    x = np.random.default_rng(0).normal(size=(2, 16, 64))
    cpu = build("flow-mlp")
    cpu.fit(x, None, 0, False)
    gpu = build("flow-mlp", device="cuda")
    gpu.load_state_dict(cpu.state_dict())
    np.testing.assert_allclose(gpu.log_prob(x[:, :4]), cpu.log_prob(x[:, :4]), rtol=1e-3)


def test_the_classifier_reward_scores_cuda_samples(digits):
    reward = build_reward("classifier_confidence", {"output": "prob"}, digits)
    samples = fitted("ddpm-unet", digits.sample(2, 32, Streams(0).per_replicate("real", 0)), None)
    out = reward(samples.sample(8, np.random.default_rng(1), 1))
    assert out.shape == (2, 8) and np.all((out > 0) & (out <= 1))


def test_the_feature_network_on_cuda_gives_the_cpus_features(tmp_path, digits):
    rng = np.random.default_rng(0)
    path = export(Linear(rng.normal(size=(6, 64)) / 8, rng.normal(size=6)), tmp_path / "f.pt")
    on = {d: digits_with(path, device=d) for d in ("cpu", "cuda")}
    real = digits.sample(2, 60, Streams(0).per_replicate("real", 0))
    test = digits.sample_test(2, 50, Streams(0).per_replicate("test", 0))
    fake = real[:, :50] + 0.3 * rng.normal(size=(2, 50, 64))
    assert next(on["cuda"].feature_network().module.parameters()).device.type == "cuda"
    values = {
        d: {
            k: v
            for name in GROUPS
            for k, v in METRICS.get(name)
            .obj(MetricContext(Fixed(fake), s, real, test, 0, Streams(0)))
            .items()
        }
        for d, s in on.items()
    }
    for key, value in values["cpu"].items():
        np.testing.assert_allclose(values["cuda"][key], value, rtol=1e-3, atol=1e-6, err_msg=key)


def test_the_transformer_fits_samples_and_scores_on_cuda_as_on_the_cpu():
    """Every tensor on the GPU through fit, fine-tune and sampling; from the same state, the GPU's
    log-likelihoods are the CPU's up to float32 arithmetic, and so (but for a rare draw on a
    boundary) are its samples; bfloat16 autocast trains to finite losses."""
    from test_device import transformer

    cpu, src = transformer()
    x = src.sample(2, 32, np.random.default_rng(0))
    cpu.fit(x, None, 0, False)
    gpu, _ = transformer(device="cuda")
    gpu.load_state_dict(cpu.state_dict())
    np.testing.assert_allclose(gpu.log_prob(x), cpu.log_prob(x), rtol=1e-4)
    a, b = (m.sample(64, np.random.default_rng(1), 1) for m in (cpu, gpu))
    assert (a == b).mean() > 0.99
    gpu.fit(x, None, 1, True)
    assert off_device(gpu, CUDA) == []
    half, _ = transformer(device="cuda", dtype="bfloat16")
    assert np.isfinite(half.fit(x, None, 0, False)["loss"]).all()
