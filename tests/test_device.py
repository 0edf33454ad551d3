"""Every tensor a torch family keeps lives on the family's device, checked without a GPU: the
families are built on the `meta` device (a fake one: tensors without storage), so a tensor made
on the CPU beside the network (the DDPM noise schedule once was: CUDA runs failed at generation 0)
shows up as a CPU tensor in the walk over the family's attributes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from selfconsume.models import torch_batched
from selfconsume.models.base import MODELS
from selfconsume.seeding import Streams

FAKE = torch.device("meta")
TINY = {"hidden": 8, "depth": 1, "train_steps": 4, "finetune_steps": 2, "batch_size": 8}
UNET = {"net": "unet", "channels": [8, 8]}
CONDITIONAL = {"conditional": True, "classes": 3, "guidance": 1.0}
NEGATIVE = {"negative_guidance": {"w": 0.5, "bad": "synthetic"}}
VARIANTS = {
    "ddpm-mlp-ancestral": ("ddpm", {"n_steps": 5}),
    "ddpm-mlp-ddim-v": ("ddpm", {"n_steps": 5, "sampler": "ddim", "prediction": "v"}),
    "ddpm-unet": ("ddpm", {"n_steps": 5, **UNET}),
    "ddpm-unet-grouped-conditional": (
        "ddpm",
        {"n_steps": 5, **UNET, **CONDITIONAL, "unet_replicates": "grouped"},
    ),
    "ddpm-conditional": ("ddpm", {"n_steps": 5, **CONDITIONAL}),
    "ddpm-unet-bfloat16": ("ddpm", {"n_steps": 5, **UNET, "dtype": "bfloat16"}),
    "ddpm-negative-guidance": ("ddpm", {"n_steps": 5, **NEGATIVE}),
    "ddpm-early-guidance": (
        "ddpm",
        {"n_steps": 5, "negative_guidance": {"w": 0.5, "bad": "early"}},
    ),
    "flow-mlp": ("flow", {"n_ode_steps": 2}),
    "flow-ot-euler": ("flow", {"n_ode_steps": 2, "coupling": "ot", "sampler": "euler"}),
    "flow-unet-conditional": ("flow", {"n_ode_steps": 2, **UNET, **CONDITIONAL}),
    "flow-negative-guidance": ("flow", {"n_ode_steps": 2, **NEGATIVE}),
}
"""Each torch family with each network (the U-Net's replicates looped or grouped), sampler,
prediction, bfloat16 autocast, the conditional path and guidance."""


def tensors(
    obj: object, path: str = "", seen: set[int] | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """(path, tensor) for every tensor reachable from obj through the attributes of selfconsume
    objects, containers, optimiser state (but its step count) and torch modules' parameters and
    buffers."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from tensors(value, f"{path}[{key!r}]", seen)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from tensors(value, f"{path}[{i}]", seen)
    elif isinstance(obj, torch.optim.Optimizer):  # Adam's step count is a CPU scalar by design
        moments = [{k: v for k, v in s.items() if k != "step"} for s in obj.state.values()]
        yield from tensors(moments, f"{path}.state", seen)
    elif isinstance(obj, torch.nn.Module):
        yield from tensors(dict(obj.named_parameters()), f"{path}.parameters", seen)
        yield from tensors(dict(obj.named_buffers()), f"{path}.buffers", seen)
    elif type(obj).__module__.startswith("selfconsume") and hasattr(obj, "__dict__"):
        for key, value in vars(obj).items():
            yield from tensors(value, f"{path}.{key}", seen)


def off_device(obj: object, device: torch.device) -> list[str]:
    """The paths of the tensors reachable from obj that are not on `device`."""
    return [f"{p} on {t.device}" for p, t in tensors(obj) if t.device.type != device.type]


def build(variant: str, device: str = "cpu", replicates: int = 2):
    """A family of `variant` on 8x8 one-channel images (a U-Net needs images)."""
    kind, params = VARIANTS[variant]
    return MODELS.make(
        kind,
        {**TINY, **params, "device": device},
        dim=64,
        replicates=replicates,
        streams=Streams(0),
        image_shape=(1, 8, 8),
    )


@pytest.fixture
def fake_device(monkeypatch):
    """Families built while this is active put their network on the `meta` device."""
    monkeypatch.setattr(torch_batched, "resolve_device", lambda name: FAKE)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_tensor_of_a_built_family_is_on_its_device(variant, fake_device):
    """Built on the fake device, the network, its EMA, Adam, the bad model of negative guidance
    and every constant (the DDPM noise schedule) are there: nothing was made on the CPU."""
    model = build(variant)
    assert model.device == FAKE
    found = list(tensors(model))
    assert any(p.startswith(".net.params") for p, _ in found)  # the walk reaches the network
    assert off_device(model, FAKE) == []


@pytest.mark.parametrize("variant", ["ddpm-negative-guidance", "flow-unet-conditional"])
def test_a_family_restored_from_a_cpu_checkpoint_is_on_its_device(variant, fake_device):
    """A checkpoint holds CPU tensors; loading it moves parameters, EMA, Adam's moments and the
    bad model to the family's device."""
    with pytest.MonkeyPatch.context() as cpu:
        cpu.setattr(torch_batched, "resolve_device", lambda name: torch.device("cpu"))
        trained = build(variant)
        x = np.random.default_rng(0).normal(size=(2, 16, 64))
        labels = np.zeros((2, 16), dtype=int) if trained.conditional else None
        trained.fit(x, None, 0, False, labels=labels)
        state = trained.state_dict()
    assert off_device(state, torch.device("cpu")) == []
    model = build(variant)
    model.load_state_dict(state)
    assert off_device(model, FAKE) == []
    assert any(".opt.state" in p for p, _ in tensors(model))  # Adam's moments were walked


def test_the_walk_finds_a_tensor_left_on_the_cpu(fake_device):
    """The guard can fail: a schedule made on the CPU beside a fake-device network is reported."""
    model = build("ddpm-mlp-ancestral")
    model.abar_t = torch.as_tensor(model.abar, dtype=torch.float32)
    assert off_device(model, FAKE) == [".abar_t on cpu"]


@pytest.mark.parametrize("variant", ["ddpm-conditional", "flow-negative-guidance"])
def test_every_tensor_stays_on_the_cpu_through_fit_and_sample(variant):
    """On the CPU, fit (warm and cold) and sample leave no tensor elsewhere (the walk over a
    fitted family, which the fake device cannot run: it has no numbers to copy back)."""
    model = build(variant)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 16, 64))
    labels = rng.integers(0, 3, size=(2, 16)) if model.conditional else None
    model.fit(x, None, 0, False, labels=labels)
    model.fit(x, None, 1, True, labels=labels)
    out = model.sample(4, np.random.default_rng(1), 1)
    assert out.shape == (2, 4, 64) and np.isfinite(out).all()
    assert off_device(model, torch.device("cpu")) == []


def transformer(device: str = "cpu", **params):
    """A tiny transformer on a 4-token Markov language of windows of 6."""
    from selfconsume.data.text import MarkovText, MarkovTextParams

    src = MarkovText(MarkovTextParams(vocab=4, length=6))
    tiny = {"n_layer": 1, "n_embd": 8, "n_head": 2, "train_steps": 4, "finetune_steps": 2}
    return MODELS.make(
        "transformer",
        {**tiny, **params, "device": device},
        dim=6,
        replicates=2,
        streams=Streams(0),
        truth=src,
    ), src


@pytest.mark.parametrize("params", [{}, {"tied": False, "ema_decay": 0.9}])
def test_every_tensor_of_a_built_or_restored_transformer_is_on_its_device(params, fake_device):
    """The transformer's stacked weights, EMA and Adam are on the fake device when built, and
    again after loading a CPU checkpoint of a fitted one."""
    model, src = transformer(**params)
    assert model.device == FAKE and off_device(model, FAKE) == []
    with pytest.MonkeyPatch.context() as cpu:
        cpu.setattr(torch_batched, "resolve_device", lambda name: torch.device("cpu"))
        trained, _ = transformer(**params)
        trained.fit(src.sample(2, 16, np.random.default_rng(0)), None, 0, False)
        state = trained.state_dict()
    assert off_device(state, torch.device("cpu")) == []
    model.load_state_dict(state)
    assert off_device(model, FAKE) == []
    assert any(".opt.state" in p for p, _ in tensors(model))


def test_every_tensor_of_a_transformer_stays_on_the_cpu_through_fit_sample_and_scoring():
    model, src = transformer()
    x = src.sample(2, 16, np.random.default_rng(0))
    model.fit(x, None, 0, False)
    model.fit(x, None, 1, True)
    out = model.sample(4, np.random.default_rng(1), 1)
    assert out.shape == (2, 4, 6) and out.dtype == np.int64
    assert np.isfinite(model.log_prob(x)).all()
    assert off_device(model, torch.device("cpu")) == []
