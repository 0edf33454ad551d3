"""Conditional flow matching (Lipman et al., 2023; Tong et al., 2024) with an MLP or U-Net velocity
field (`models.nets`; with `conditional: true` it also takes class labels).

The path x_t = (1 - t) x0 + t x1 joins noise x0 ~ N(0, I) to data x1; the network regresses the
velocity x1 - x0. The coupling of (x0, x1) in a minibatch is `independent` or `ot` (exact minibatch
optimal transport, `ot.emd`, one small LP per replicate per step: POT is not batched). Sampling
integrates dx/dt = v(x, t) from 0 to 1; `log_prob` integrates backward from data to noise with the
instantaneous change of variables, the divergence computed exactly (one autograd pass per dimension).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import ot
import torch
from pydantic import Field

from selfconsume.models.base import MODELS
from selfconsume.models.torch_batched import (
    SMALL_NET,
    Net,
    NetParams,
    Tensor,
    TorchFamily,
    draws,
    generators_from,
)
from selfconsume.registry import Example


class FlowParams(NetParams):
    coupling: Literal["independent", "ot"] = "independent"
    sampler: Literal["euler", "midpoint"] = "midpoint"
    n_ode_steps: int = Field(default=50, ge=1)


def ot_pair(x0: Tensor, x1: Tensor) -> Tensor:
    """Reorder each replicate's noise x0 (R, B, d) to the minibatch OT plan with x1 (squared cost)."""
    out = torch.empty_like(x0)
    for r in range(x0.shape[0]):
        a, b = x0[r].double().cpu().numpy(), x1[r].double().cpu().numpy()
        plan = ot.emd([], [], ot.dist(a, b))
        out[r] = x0[r][torch.as_tensor(plan.argmax(axis=0), device=x0.device)]
    return out


def divergence(net: Net, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Velocity (R, m, d) and its exact divergence (R, m): one autograd pass per dimension."""
    with torch.enable_grad():
        x = x.detach().requires_grad_()
        v = net(x, t)
        d = x.shape[-1]
        div = sum(
            torch.autograd.grad(v[..., i].sum(), x, retain_graph=i < d - 1)[0][..., i]
            for i in range(d)
        )
    return v.detach(), div.detach()


@MODELS.register("flow", FlowParams, example=Example({**SMALL_NET, "n_ode_steps": 5}))
class Flow(TorchFamily):
    """Conditional flow matching with an MLP or a U-Net; params: net (mlp | unet), hidden, depth,
    time_dim, x_octaves, channels, unet_replicates (auto | loop | grouped), train_steps,
    finetune_steps, batch_size, lr, ema_decay, grad_clip, normalize, coupling (independent | ot),
    sampler (euler | midpoint), n_ode_steps, conditional, classes, guidance, p_uncond,
    prompt_weights, dtype (float32 | bfloat16), device (auto | cpu | cuda), negative_guidance (w,
    bad: synthetic | early, fraction, steps)."""

    purpose = "flow"

    def loss(self, net: Net, x: Tensor, u: Tensor, z: Tensor) -> Tensor:
        """Velocity regression per sample on the straight path between the coupled noise and data."""
        x0 = ot_pair(z, x) if self.p.coupling == "ot" else z
        t = u[..., None]
        return (net((1 - t) * x0 + t * x, u) - (x - x0)).pow(2).mean(dim=-1)

    def _time(self, x: Tensor, t: float) -> Tensor:
        return torch.full(x.shape[:2], t, device=x.device)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        rng: np.random.Generator,
        generation: int,
        labels: np.ndarray | None = None,
        net: Net | None = None,
    ) -> np.ndarray:
        """Integrate the EMA velocity field (or `net`, a velocity in the normalised coordinates:
        tests inject the exact one) from noise (t = 0) to data (t = 1). A conditional model
        samples class `labels` (R, n), by default n prompts from p_user."""
        gens = generators_from(rng, self.replicates)
        x = self.p.psi * next(draws(gens, 1, (0,), (n, self.dim), self.net.device))[1]  # bias
        net = self.sampling_net(n, rng, labels) if net is None else net
        h = 1.0 / self.p.n_ode_steps
        for k in range(self.p.n_ode_steps):
            t = k * h
            if self.p.sampler == "euler":
                x = x + h * net(x, self._time(x, t))
            else:
                mid = x + 0.5 * h * net(x, self._time(x, t))
                x = x + h * net(mid, self._time(x, t + 0.5 * h))
        return self.net.denormalise(x)

    @torch.no_grad()
    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact-divergence change of variables, integrated backward from data to N(0, I) (a
        conditional model's density is that of its null label, the unconditional model; with
        negative guidance, that of the guided field, which is what `sample` integrates)."""
        z = self.net.normalise(x)
        net = self.net.net(ema=True)
        h = 1.0 / self.p.n_ode_steps
        trace = torch.zeros(z.shape[:2], device=z.device)
        for k in range(self.p.n_ode_steps, 0, -1):
            t = k * h
            v, div = divergence(net, z, self._time(z, t))
            if self.p.sampler == "midpoint":
                v, div = divergence(net, z - 0.5 * h * v, self._time(z, t - 0.5 * h))
            z = z - h * v
            trace += h * div
        base = -0.5 * (z.pow(2).sum(-1) + self.dim * math.log(2 * math.pi))
        log_scale = np.log(self.net.scale).sum(axis=-1)
        return (base - trace).double().cpu().numpy() - log_scale
