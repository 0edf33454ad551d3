"""DDPM (Ho et al., 2020) for low-dimensional data: an MLP noise predictor, all replicates batched.

The network eps(x_t, t) takes a sinusoidal embedding of t / T. Training minimises
||eps - eps(sqrt(abar_t) x + sqrt(1 - abar_t) eps, t)||^2 with t uniform on {0, ..., T-1}; sampling
is ancestral (posterior variance) or deterministic DDIM on an evenly spaced subset of the steps.
There is no log_prob: a DDPM only bounds its likelihood.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator

from selfconsume.models.base import MODELS, Streams
from selfconsume.models.torch_batched import (
    Net,
    NetParams,
    Tensor,
    TorchFamily,
    draws,
    generators_from,
)


class DDPMParams(NetParams):
    n_steps: int = Field(default=200, ge=1)
    schedule: Literal["linear", "cosine"] = "linear"
    sampler: Literal["ancestral", "ddim"] = "ancestral"
    ddim_steps: int = Field(default=50, ge=1)

    @field_validator("ddim_steps")
    @classmethod
    def _ddim_within_steps(cls, v: int, info: ValidationInfo) -> int:
        n_steps = info.data.get("n_steps")
        if n_steps is not None and v > n_steps:
            raise ValueError(f"ddim_steps must be <= n_steps ({n_steps})")
        return v


def betas(schedule: str, n_steps: int) -> np.ndarray:
    """Noise schedule beta_1..beta_T: `linear` (Ho et al., rescaled to T steps) or `cosine`."""
    if schedule == "linear":
        scale = 1000.0 / n_steps
        out = np.linspace(scale * 1e-4, scale * 0.02, n_steps)
    else:
        s = 0.008
        f = np.cos((np.arange(n_steps + 1) / n_steps + s) / (1 + s) * np.pi / 2) ** 2
        out = 1.0 - f[1:] / f[:-1]
    return np.clip(out, 0.0, 0.999)


@MODELS.register("ddpm", DDPMParams)
class DDPM(TorchFamily):
    """Denoising diffusion with an MLP; params: hidden, depth, time_dim, n_steps, schedule,
    train_steps, finetune_steps, batch_size, lr, ema_decay, grad_clip, sampler (ancestral | ddim), ddim_steps,
    normalize."""

    purpose = "ddpm"

    def __init__(self, params: DDPMParams, dim: int, replicates: int, streams: Streams) -> None:
        super().__init__(params, dim, replicates, streams)
        self.beta = betas(params.schedule, params.n_steps)
        self.abar = np.cumprod(1.0 - self.beta)
        self.abar_t = torch.as_tensor(self.abar, dtype=torch.float32)

    def loss(self, net: Net, x: Tensor, u: Tensor, z: Tensor) -> Tensor:
        """Noise-prediction loss per sample with t = floor(u T)."""
        steps = self.p.n_steps
        t = (u * steps).long().clamp_(max=steps - 1)
        abar = self.abar_t[t][..., None]
        xt = abar.sqrt() * x + (1 - abar).sqrt() * z
        return (net(xt, t.float() / steps) - z).pow(2).mean(dim=-1)

    @torch.no_grad()
    def sample(self, n: int, rng: np.random.Generator, generation: int) -> np.ndarray:
        """Ancestral or DDIM sampling with the EMA network; replicate r's noise from its own stream."""
        gens = generators_from(rng, self.replicates)
        net = self.net.net(ema=True)
        ancestral = self.p.sampler == "ancestral"
        noise = draws(gens, self.p.n_steps if ancestral else 1, (0,), (n, self.dim))
        x = next(noise)[1]
        x = self._ancestral(net, x, noise) if ancestral else self._ddim(net, x)
        return self.net.denormalise(x)

    def _eps(self, net: Net, x: Tensor, t: int) -> Tensor:
        return net(x, torch.full(x.shape[:2], t / self.p.n_steps))

    def _ancestral(self, net: Net, x: Tensor, noise: Iterator[tuple[Tensor, Tensor]]) -> Tensor:
        for t in range(self.p.n_steps - 1, -1, -1):
            beta, abar = self.beta[t], self.abar[t]
            x = (x - beta / np.sqrt(1 - abar) * self._eps(net, x, t)) / np.sqrt(1 - beta)
            if t > 0:
                var = beta * (1 - self.abar[t - 1]) / (1 - abar)
                x = x + float(np.sqrt(var)) * next(noise)[1]
        return x

    def _ddim(self, net: Net, x: Tensor) -> Tensor:
        steps = np.unique(np.linspace(0, self.p.n_steps - 1, self.p.ddim_steps).round().astype(int))
        for i in range(len(steps) - 1, -1, -1):
            t = int(steps[i])
            abar, abar_prev = self.abar[t], (self.abar[steps[i - 1]] if i > 0 else 1.0)
            eps = self._eps(net, x, t)
            x0 = (x - np.sqrt(1 - abar) * eps) / np.sqrt(abar)
            x = float(np.sqrt(abar_prev)) * x0 + float(np.sqrt(1 - abar_prev)) * eps
        return x
