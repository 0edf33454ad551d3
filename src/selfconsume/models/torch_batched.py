"""Shared machinery of the torch families: one MLP per replicate, all replicates trained at once.

Replicate r owns slice [r] of every stacked parameter (R, in, out); layers are `torch.baddbmm`, one
Adam updates the stacked tensors (Adam is per element, so replicates do not mix), gradients are
clipped per replicate, and every random draw of replicate r comes from its own generator. So
replicate r trains exactly as it would alone: adding replicates changes no replicate's numbers.
Training is float32 on the CPU; the families return float64 numpy arrays.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from selfconsume.registry import Params
from selfconsume.seeding import Streams

Tensor = torch.Tensor
Net = Callable[[Tensor, Tensor], Tensor]
"""A network bound to parameters: (x (R, B, d), t (R, B) in [0, 1]) -> (R, B, d)."""
LossFn = Callable[[Net, Tensor, Tensor, Tensor], Tensor]
"""(net, data batch (R, B, d), uniforms (R, B), normals (R, B, d)) -> per-sample loss (R, B)."""

DRAW_CHUNK = 1 << 16
"""Random numbers pre-drawn per replicate at a time; fixed, so a replicate's stream never depends on R."""


class NetParams(Params):
    """Parameters shared by the torch families (network, optimiser, EMA, normalisation)."""

    hidden: int = Field(default=128, ge=1)
    depth: int = Field(default=3, ge=1)
    time_dim: int = Field(default=16, ge=2, multiple_of=2)
    x_octaves: int = Field(default=0, ge=0)
    """Octaves L of sinusoidal features of x fed beside x (sin, cos of 2^k π x, k < L): lets the
    MLP draw the sharp boundaries between narrow modes without huge first-layer weights."""
    train_steps: int = Field(default=2000, ge=1)
    finetune_steps: int | None = Field(default=None, ge=1)
    """Adam steps of a warm-started generation (fine-tuning); None means train_steps."""
    batch_size: int = Field(default=256, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    ema_decay: float = Field(default=0.999, ge=0, lt=1)
    """The cap of the EMA's warm-up decay; the EMA restarts with every fit (see BatchedNet)."""
    grad_clip: float | None = Field(default=1.0, gt=0)
    normalize: bool = True


def replicate_generators(
    streams: Streams, purpose: str, generation: int, replicates: int
) -> list[torch.Generator]:
    """One torch generator per replicate, keyed by the replicate's index (not by R)."""
    return [streams.torch(f"{purpose}/{r}", generation) for r in range(replicates)]


def generators_from(rng: np.random.Generator, replicates: int) -> list[torch.Generator]:
    """One torch generator per replicate seeded from a numpy generator (seed r is the r-th draw)."""
    seeds = rng.integers(0, 2**63 - 1, size=replicates)
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def draws(
    gens: list[torch.Generator], steps: int, uniform: tuple[int, ...], normal: tuple[int, ...]
) -> Iterator[tuple[Tensor, Tensor]]:
    """Per step, uniforms (R, *uniform) and normals (R, *normal), replicate r's from gens[r].

    Draws come in chunks of steps whose length depends only on the per-replicate shapes."""
    per_step = max(1, math.prod(uniform) + math.prod(normal))
    chunk = max(1, min(steps, DRAW_CHUNK // per_step))
    for start in range(0, steps, chunk):
        c = min(chunk, steps - start)
        u = torch.stack([torch.rand((c, *uniform), generator=g) for g in gens], dim=1)
        z = torch.stack([torch.randn((c, *normal), generator=g) for g in gens], dim=1)
        yield from zip(u, z, strict=True)


def init_mlp(sizes: list[int], gens: list[torch.Generator]) -> list[Tensor]:
    """Stacked weights (R, in, out) and biases (R, 1, out), uniform like `nn.Linear`'s default."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        bound = fan_in**-0.5
        for shape in ((fan_in, fan_out), (1, fan_out)):
            draw = [torch.rand(shape, generator=g) for g in gens]
            params.append((torch.stack(draw) * 2 - 1) * bound)
    return params


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of t in [0, 1] (as 1000 t, like DDPM step indices): (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=t.dtype) / half)
    arg = 1000.0 * t[..., None] * freqs
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


def x_features(x: Tensor, octaves: int) -> Tensor:
    """[x, sin(2^k π x), cos(2^k π x) for k < octaves]: (..., d) -> (..., d (1 + 2 octaves))."""
    if octaves == 0:
        return x
    arg = (math.pi * 2.0 ** torch.arange(octaves, dtype=x.dtype))[:, None] * x[..., None, :]
    return torch.cat([x, torch.sin(arg).flatten(-2), torch.cos(arg).flatten(-2)], dim=-1)


def mlp(params: list[Tensor], x: Tensor, t: Tensor, time_dim: int, octaves: int = 0) -> Tensor:
    """The batched MLP on [features(x), embed(t)] with SiLU activations: (R, B, d) -> (R, B, d)."""
    h = torch.cat([x_features(x, octaves), time_embedding(t, time_dim)], dim=-1)
    layers = len(params) // 2
    for i in range(layers):
        h = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
        if i < layers - 1:
            h = F.silu(h)
    return h


def clip_per_replicate(params: list[Tensor], max_norm: float) -> None:
    """Scale each replicate's gradient so its norm over all parameters is at most max_norm."""
    sq = sum(p.grad.pow(2).flatten(1).sum(1) for p in params)
    factor = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(factor.view(-1, *([1] * (p.dim() - 1))))


def sample_indices(u: Tensor, cdf: Tensor | None, n: int) -> Tensor:
    """Indices drawn by inverse CDF of the weights (R, B); uniform weights reduce to floor(u n)."""
    if cdf is None:
        return (u.double() * n).long()
    return torch.searchsorted(cdf, u.double() * cdf[:, -1:], right=True)


def weighted_stats(x: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-replicate weighted mean and standard deviation per dimension, shapes (R, 1, d)."""
    w = np.ones(x.shape[:2]) if weights is None else weights
    w = w[..., None] / w.sum(axis=1)[:, None, None]
    mean = (w * x).sum(axis=1, keepdims=True)
    std = np.sqrt((w * (x - mean) ** 2).sum(axis=1, keepdims=True))
    return mean, np.maximum(std, 1e-6)


def ema_decay(cap: float, count: int) -> float:
    """The EMA decay of the count-th update of a fit: min(cap, (1 + count) / (10 + count))."""
    return min(cap, (1 + count) / (10 + count))


def ema_start_weight(cap: float, steps: int) -> float:
    """Weight the EMA keeps on the parameters a fit starts from after `steps` updates:
    prod_k ema_decay(cap, k), which is 10! (k+1)! / (k+10)! below the cap (7e-10 at k = 50)."""
    return math.prod(ema_decay(cap, k) for k in range(1, steps + 1))


class BatchedNet:
    """Stacked MLP parameters of R replicates, their EMA, one Adam over them, and the data scaling.

    The EMA follows the generation it samples: every fit, warm or not, restarts it from the
    parameters it starts from with the warm-up decay `ema_decay`, so after k updates its weight on
    them is `ema_start_weight` (under 1e-6 from k = 20 on) and none is left on the previous
    generation's EMA. (Carried over instead, a decay of 0.999 would keep 0.999^500 = 61% of its
    weight on earlier generations after 500 fine-tuning steps.)"""

    def __init__(
        self, p: NetParams, dim: int, replicates: int, streams: Streams, purpose: str
    ) -> None:
        self.p, self.dim, self.replicates = p, dim, replicates
        self.streams, self.purpose = streams, purpose
        self.sizes = [dim * (1 + 2 * p.x_octaves) + p.time_dim] + [p.hidden] * p.depth + [dim]
        self.reset(0)

    def reset(self, generation: int) -> None:
        """Fresh parameters (drawn from this generation's init streams), EMA, optimiser, scaling."""
        gens = replicate_generators(
            self.streams, f"{self.purpose}/init", generation, self.replicates
        )
        self._set(init_mlp(self.sizes, gens), None, None)
        self.shift = np.zeros((self.replicates, 1, self.dim))
        self.scale = np.ones((self.replicates, 1, self.dim))

    def _set(self, params: list[Tensor], ema: list[Tensor] | None, opt: dict | None) -> None:
        self.params = [q.detach().clone().requires_grad_() for q in params]
        self.ema = [q.detach().clone() for q in (ema if ema is not None else params)]
        self.opt = torch.optim.Adam(self.params, lr=self.p.lr)
        if opt is not None:
            self.opt.load_state_dict(opt)
            for group in self.opt.param_groups:
                group["lr"] = self.p.lr
        self.ema_count = 0

    def net(self, ema: bool = True) -> Net:
        """The network bound to the EMA (for sampling) or the live parameters."""
        params = self.ema if ema else self.params
        return lambda x, t: mlp(params, x, t, self.p.time_dim, self.p.x_octaves)

    def normalise(self, x: np.ndarray) -> Tensor:
        return torch.as_tensor((x - self.shift) / self.scale, dtype=torch.float32)

    def denormalise(self, z: Tensor) -> np.ndarray:
        return z.double().numpy() * self.scale + self.shift

    def train(
        self,
        x: np.ndarray,
        weights: np.ndarray | None,
        generation: int,
        loss_fn: LossFn,
        warm: bool,
    ) -> dict[str, np.ndarray]:
        """Run Adam steps on all replicates (`finetune_steps` when warm, else `train_steps`; a warm
        fit keeps the data scaling and Adam's moments, and restarts the EMA); return the final loss
        per replicate.

        Minibatch indices are drawn with probability proportional to `weights` (an unbiased
        estimate of the weighted loss that wastes no batch slot on zero weights). The final loss
        is the mean over the last tenth of the steps; a diverged replicate reports NaN or inf."""
        p = self.p
        steps = p.finetune_steps if warm and p.finetune_steps else p.train_steps
        if not warm and p.normalize:
            self.shift, self.scale = weighted_stats(x, weights)
        data = self.normalise(x)
        cdf = None if weights is None else torch.as_tensor(weights, dtype=torch.float64).cumsum(1)
        last = data.shape[1] - 1
        gens = replicate_generators(
            self.streams, f"{self.purpose}/train", generation, self.replicates
        )
        self.ema = [q.detach().clone() for q in self.params]
        self.ema_count = 0
        net = self.net(ema=False)
        tail = max(1, steps // 10)
        losses = []
        for step, (u, z) in enumerate(
            draws(gens, steps, (p.batch_size, 2), (p.batch_size, self.dim))
        ):
            idx = sample_indices(u[..., 0], cdf, last + 1).clamp_(max=last)
            batch = data.gather(1, idx[..., None].expand(-1, -1, self.dim))
            loss = loss_fn(net, batch, u[..., 1], z).mean(dim=1)
            self.opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            if p.grad_clip is not None:
                clip_per_replicate(self.params, p.grad_clip)
            self.opt.step()
            self._update_ema()
            if step >= steps - tail:
                losses.append(loss.detach())
        return {"loss": torch.stack(losses).mean(dim=0).double().numpy()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        self.ema_count += 1
        decay = ema_decay(self.p.ema_decay, self.ema_count)
        for e, q in zip(self.ema, self.params, strict=True):
            e.lerp_(q, 1.0 - decay)

    def state_dict(self) -> dict[str, Any]:
        return {
            "params": [q.detach().clone() for q in self.params],
            "ema": [q.clone() for q in self.ema],
            "ema_count": self.ema_count,
            "opt": copy.deepcopy(self.opt.state_dict()),
            "shift": self.shift.copy(),
            "scale": self.scale.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._set(state["params"], state["ema"], state["opt"])
        self.ema_count = int(state["ema_count"])
        self.shift, self.scale = np.asarray(state["shift"]), np.asarray(state["scale"])


class TorchFamily:
    """Base of the torch families: fit and state through a BatchedNet; subclasses give the loss."""

    purpose = "net"

    def __init__(self, params: NetParams, dim: int, replicates: int, streams: Streams) -> None:
        self.p, self.dim, self.replicates = params, dim, replicates
        self.net = BatchedNet(params, dim, replicates, streams, self.purpose)

    def loss(self, net: Net, x: Tensor, u: Tensor, z: Tensor) -> Tensor:
        raise NotImplementedError

    def fit(
        self, x: np.ndarray, weights: np.ndarray | None, generation: int, warm: bool
    ) -> dict[str, np.ndarray]:
        """Train on x; warm continues parameters and Adam state and keeps the data scaling."""
        if not warm:
            self.net.reset(generation)
        return self.net.train(x, weights, generation, self.loss, warm)

    def state_dict(self) -> dict[str, Any]:
        return self.net.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state)
