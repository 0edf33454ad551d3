"""The U-Net's grouped path (`unet_replicates: grouped`, all replicates as one network of grouped
convolutions) computes the loop's function: outputs and gradients equal replicate by replicate up
to float32 rounding, whatever R, the widths and the conditioning; replicates never mix; DDIM
sampling with it agrees with the loop's; `auto` is grouped on CUDA only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfconsume.models import torch_batched
from selfconsume.models.base import MODELS
from selfconsume.models.nets import UNet
from selfconsume.seeding import Streams

RTOL = 1e-5
"""Norm-wise relative bound on grouped - loop, per replicate: on its output, and on each
parameter's gradient relative to the replicate's whole gradient (some parameters' true gradient
is 0 and both paths give rounding noise: a bias or the embedding added right before a GroupNorm
of one channel per group, which subtracts it again). float32's unit roundoff is 6e-8; a value sums
at most a few thousand products in another order, about sqrt(n) roundoffs per layer (measured:
below 7e-7), while a wrong layout or one replicate's weights in another's channels is off by
O(1)."""

CASES = {
    "R=3": ((1, 8, 8), (16, 32), 3, 0),
    "R=1": ((1, 8, 8), (16, 32), 1, 0),
    "R=5": ((1, 8, 8), (8, 16), 5, 0),
    "fewer GroupNorm groups (12/20: 4 each)": ((1, 8, 8), (12, 20), 3, 0),
    "colour 7x7 (odd: the pooling rounds up)": ((3, 7, 7), (8, 16), 2, 0),
    "conditional, null labels among them": ((1, 8, 8), (8, 16), 3, 10),
}


def nets(shape, channels, replicates, classes, seed=0):
    """The loop and grouped U-Nets, their (shared) stacked parameters and an input batch."""
    loop, grouped = (UNet(shape, channels, 16, classes, g) for g in (False, True))
    params = loop.init([torch.Generator().manual_seed(seed + r) for r in range(replicates)])
    gen = torch.Generator().manual_seed(99)
    b, d = 32, int(np.prod(shape))
    x = torch.randn(replicates, b, d, generator=gen)
    t = torch.rand(replicates, b, generator=gen)
    y = None
    if classes:
        y = torch.randint(0, classes + 1, (replicates, b), generator=gen)  # classes: the null
    return loop, grouped, params, (x, t, y)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def outputs_and_grads(net, params, inputs):
    live = [p.clone().requires_grad_() for p in params]
    out = net(live, *inputs)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    (out * weights).sum().backward()
    return out.detach(), [p.grad for p in live]


@pytest.mark.parametrize("case", sorted(CASES))
def test_grouped_outputs_and_gradients_are_the_loops_per_replicate(case):
    loop, grouped, params, inputs = nets(*CASES[case])
    ref, ref_grads = outputs_and_grads(loop, params, inputs)
    out, grads = outputs_and_grads(grouped, params, inputs)
    assert out.shape == ref.shape == inputs[0].shape
    for r in range(ref.shape[0]):
        assert relative(out[r], ref[r]) < RTOL, (r, relative(out[r], ref[r]))
        scale = torch.cat([h[r].flatten() for h in ref_grads]).norm()
        for i, (g, h) in enumerate(zip(grads, ref_grads, strict=True)):
            error = float((g[r] - h[r]).norm() / scale)
            assert error < RTOL, (r, i, error)


def test_an_empty_batch_gives_an_empty_output():
    """A run asks for 0 samples (the lam = 0 arm): both paths return (R, 0, d)."""
    loop, grouped, params, (x, t, _) = nets((1, 8, 8), (8, 16), 3, 0)
    for net in (loop, grouped):
        assert net(params, x[:, :0], t[:, :0], None).shape == (3, 0, 64)


def test_grouping_does_not_mix_replicates():
    """Replicate 0's parameters changed: replicate 1's and 2's outputs are bit-identical, and a
    loss on replicate 1 alone has exactly zero gradient in every other replicate's slice."""
    _, grouped, params, inputs = nets((1, 8, 8), (16, 32), 3, 10)
    before = grouped(params, *inputs)
    changed = [p.clone() for p in params]
    for p in changed:
        p[0] += 0.5
    after = grouped(changed, *inputs)
    assert relative(after[0], before[0]) > 0.1
    assert torch.equal(after[1:], before[1:])
    live = [p.clone().requires_grad_() for p in params]
    grouped(live, *inputs)[1].pow(2).sum().backward()
    for p in live:
        assert p.grad[1].abs().sum() > 0
        assert not p.grad[0].any() and not p.grad[2].any()


def ddpm(unet_replicates: str, replicates: int, conditional: bool = False):
    params = {
        "net": "unet",
        "channels": [8, 16],
        "n_steps": 100,
        "sampler": "ddim",
        "ddim_steps": 20,
        "prediction": "v",
        "normalize": False,
        "train_steps": 10,
        "batch_size": 16,
        "unet_replicates": unet_replicates,
        **({"conditional": True, "guidance": 1.0} if conditional else {}),
    }
    return MODELS.make(
        "ddpm",
        params,
        dim=64,
        replicates=replicates,
        streams=Streams(0),
        image_shape=(1, 8, 8),
    )


@pytest.mark.parametrize("conditional", [False, True])
def test_ddim_samples_of_the_grouped_net_are_the_loops(conditional, digits):
    """The same fitted state sampled by both paths (20 DDIM steps, classifier-free guidance when
    conditional): samples within 20 RTOL (each step carries the output's rounding)."""
    x, y = digits.sample_labelled(3, 64, Streams(0).per_replicate("real", 0))
    loop = ddpm("loop", 3, conditional)
    loop.fit(x, None, 0, False, labels=y if conditional else None)
    grouped = ddpm("grouped", 3, conditional)
    grouped.load_state_dict(loop.state_dict())
    labels = y[:, :50] if conditional else None
    a, b = (m.sample(50, np.random.default_rng(1), 0, labels=labels) for m in (loop, grouped))
    assert np.abs(b - a).max() < 20 * RTOL * np.abs(a).max(), np.abs(b - a).max()


def test_a_grouped_fit_follows_the_loops(digits):
    """Ten Adam steps from the same parameters on the same draws: the final losses agree within
    RTOL (the gradients' rounding, which Adam's normalisation could amplify where a gradient is
    near 0; measured 1e-7)."""
    x = digits.sample(3, 64, np.random.default_rng(0))
    fits = [ddpm(mode, 3).fit(x, None, 0, False)["loss"] for mode in ("loop", "grouped")]
    np.testing.assert_allclose(fits[1], fits[0], rtol=RTOL)


def test_auto_groups_on_cuda_only(monkeypatch):
    params = MODELS.parse_params("ddpm", {"net": "unet", "device": "auto"}, "model.params")
    assert not torch_batched.network(params, 64, (1, 8, 8)).grouped
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert torch_batched.network(params, 64, (1, 8, 8)).grouped
    loop = params.model_copy(update={"unet_replicates": "loop"})
    assert not torch_batched.network(loop, 64, (1, 8, 8)).grouped
