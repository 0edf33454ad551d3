"""The networks of the torch families, as functions of stacked parameters: replicate r owns slice [r]
of every parameter tensor, and each network maps (params, x (R, B, d), t (R, B) in [0, 1], labels
(R, B) or None) to (R, B, d).

- `MLP`: layers are `torch.baddbmm` over the stacked (R, in, out) weights, on [features(x), embed(t),
  one-hot(label)]; replicate r's numbers are bit-identical whatever R.
- `UNet`: a small convolutional U-Net for images (two resolutions, residual blocks with GroupNorm,
  the time and label embedding added in every block). Its replicates run one after another
  through the same functions (`loop`: replicate r bit-identical whatever R), or all at once as one
  network (`grouped`: replicates stacked on the channel axis, grouped convolutions, GroupNorm of R
  times the groups, the embedding's projection a baddbmm; the same stacked parameters seen as
  views), which is what a GPU needs: one set of kernels per layer instead of R small ones. On one
  CPU thread (benchmarks/bench_images_models.py, CPU seconds) grouped is no faster: forward and
  backward at batch 128 takes 1.05x and 0.99x the loop's time for 3 and 5 replicates of the
  digits' 16/32 U-Net and 1.39x for 3 of MNIST's 32/64 U-Net; a sampler step at batch 500 1.45x
  to 5.7x (the grouped convolutions' large buffers); torch.func.vmap over the stacked parameters
  1.45x; stability-digits --quick on 2 workers 1.13x the CPU seconds. So the CPU loops (`auto`)
  and CUDA groups.

Labels are classes 0..classes-1; `classes` itself is the null label (the unconditional model,
trained by label dropout for classifier-free guidance). Parameters are drawn from one generator per
replicate, uniform in ±1/sqrt(fan_in) like torch's defaults.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F

from selfconsume.memory import COPIES, FLOAT32, TORCH_STATE, Dim, Term

Tensor = torch.Tensor

GROUPS = 8
"""GroupNorm groups of the U-Net (fewer when a width is not a multiple)."""


class Initialised(Protocol):
    """A network over stacked parameters: `init` draws them, replicate r's from gens[r]."""

    def init(self, gens: list[torch.Generator]) -> list[Tensor]: ...


class Network(Initialised, Protocol):
    """A network over stacked parameters (see the module docstring)."""

    def __call__(self, params: list[Tensor], x: Tensor, t: Tensor, y: Tensor | None) -> Tensor: ...


def uniform(shape: tuple[int, ...], fan_in: int, gens: list[torch.Generator]) -> Tensor:
    """Stacked (R, *shape) draws uniform in ±1/sqrt(fan_in), replicate r's from gens[r]."""
    draw = [torch.rand(shape, generator=g) for g in gens]
    return (torch.stack(draw) * 2 - 1) * fan_in**-0.5


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of t in [0, 1] (as 1000 t, like DDPM step indices): (..., dim)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, dtype=t.dtype, device=t.device) / half
    )
    arg = 1000.0 * t[..., None] * freqs
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


def x_features(x: Tensor, octaves: int) -> Tensor:
    """[x, sin(2^k π x), cos(2^k π x) for k < octaves]: (..., d) -> (..., d (1 + 2 octaves))."""
    if octaves == 0:
        return x
    k = torch.arange(octaves, dtype=x.dtype, device=x.device)
    arg = (math.pi * 2.0**k)[:, None] * x[..., None, :]
    return torch.cat([x, torch.sin(arg).flatten(-2), torch.cos(arg).flatten(-2)], dim=-1)


def embed(t: Tensor, y: Tensor | None, time_dim: int, classes: int) -> Tensor:
    """[embed(t), one-hot(label) over classes + 1 (the last is the null label)] (R, B, e); the
    one-hot part only when the network is conditional (classes > 0)."""
    out = time_embedding(t, time_dim)
    if classes == 0:
        return out
    if y is None:
        y = torch.full(t.shape, classes, dtype=torch.long, device=t.device)
    return torch.cat([out, F.one_hot(y, classes + 1).to(out.dtype)], dim=-1)


class MLP:
    """The batched MLP on [features(x), embed(t), one-hot(label)] with SiLU activations."""

    def __init__(
        self, dim: int, hidden: int, depth: int, time_dim: int, octaves: int, classes: int
    ) -> None:
        self.time_dim, self.octaves, self.classes = time_dim, octaves, classes
        self.sizes = self.layer_sizes(dim, hidden, depth, time_dim, octaves, classes)

    @staticmethod
    def layer_sizes(
        dim: float, hidden: float, depth: int, time_dim: int, octaves: int, classes: int
    ) -> list[float]:
        """Widths from the input [features(x), embed(t), one-hot(label)] to the output."""
        inputs = dim * (1 + 2 * octaves) + time_dim + (classes + 1 if classes else 0)
        return [inputs] + [hidden] * depth + [dim]

    @classmethod
    def memory_terms(
        cls,
        replicates: float,
        dim: Dim,
        batch: float,
        hidden: int,
        depth: int,
        time_dim: int,
        octaves: int,
        classes: int,
    ) -> list[Term]:
        """Weights and Adam state of every replicate's MLP, and the activations autograd keeps
        per training batch."""
        widths = cls.layer_sizes(dim[1], hidden, depth, time_dim, octaves, classes)
        weights = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
        r = {"replicates": replicates}
        return [
            Term(
                "network parameters", {**r, "model.params.hidden": weights}, FLOAT32 * TORCH_STATE
            ),
            Term(
                "network activations",
                {**r, "model.params.batch_size": batch, "model.params.hidden": hidden},
                FLOAT32 * COPIES * (depth + 1),
            ),
        ]

    def init(self, gens: list[torch.Generator]) -> list[Tensor]:
        """Stacked weights (R, in, out) and biases (R, 1, out)."""
        params = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            params += [
                uniform((fan_in, fan_out), fan_in, gens),
                uniform((1, fan_out), fan_in, gens),
            ]
        return params

    def __call__(self, params: list[Tensor], x: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        h = torch.cat(
            [x_features(x, self.octaves), embed(t, y, self.time_dim, self.classes)], dim=-1
        )
        layers = len(params) // 2
        for i in range(layers):
            h = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
            if i < layers - 1:
                h = F.silu(h)
        return h


class UNet:
    """A two-level U-Net on (C, H, W) images: conv in; a residual block at full resolution (c1)
    and one at half resolution (c1 -> c2); a middle block; upsampling, the skip concatenated, a
    block back to c1; GroupNorm, SiLU and a conv out. Each block adds a linear projection of the
    time (and label) embedding to its channels. `grouped`: all replicates in one pass of grouped
    convolutions (`all`), else one after another (`one`)."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        channels: tuple[int, int],
        time_dim: int,
        classes: int,
        grouped: bool = False,
    ) -> None:
        self.shape, self.time_dim, self.classes = tuple(image_shape), time_dim, classes
        self.grouped = grouped
        c, (c1, c2) = image_shape[0], channels
        self.emb = time_dim + (classes + 1 if classes else 0)
        self.blocks = [(c1, c1), (c1, c2), (c2, c2), (c2 + c1, c1)]
        self.c_in, self.c1 = c, c1

    ACTIVATIONS = 24
    """Floats autograd keeps per image, channel and pixel in a training step (each block holds
    about 8 tensors of its channels, the full-resolution ones twice over with the skip)."""

    @classmethod
    def memory_terms(
        cls, replicates: float, dim: Dim, batch: float, channels: tuple[int, int], emb: int
    ) -> list[Term]:
        """Weights and Adam state of every replicate's U-Net (3x3 convolutions between its
        widths, `emb` the embedding's width), and its training activations (all replicates'
        graphs are alive at the backward pass), per pixel of d = C * H * W."""
        c1, c2 = (float(c) for c in channels)
        blocks = [(c1, c1), (c1, c2), (c2, c2), (c2 + c1, c1)]
        weights = sum(9 * a * b + 9 * b * b + emb * b + a * b for a, b in blocks) + 18 * c1 * 3
        r = {"replicates": replicates}
        key, d = dim
        activations = {**r, "model.params.batch_size": batch, "model.params.channels": c1 + c2}
        return [
            Term(
                "network parameters", {**r, "model.params.channels": weights}, FLOAT32 * TORCH_STATE
            ),
            Term("network activations", {**activations, key: d}, FLOAT32 * cls.ACTIVATIONS),
        ]

    def init(self, gens: list[torch.Generator]) -> list[Tensor]:
        """[conv in w, b] + per block [gn1 w, b, conv1 w, b, emb w, b, gn2 w, b, conv2 w, b,
        (skip w, b)] + [gn out w, b, conv out w, b], each stacked over replicates."""
        r = len(gens)
        params = self._conv(self.c_in, self.c1, 3, gens)
        for cin, cout in self.blocks:
            params += [torch.ones(r, cin), torch.zeros(r, cin), *self._conv(cin, cout, 3, gens)]
            params += [
                uniform((self.emb, cout), self.emb, gens),
                uniform((1, cout), self.emb, gens),
            ]
            params += [torch.ones(r, cout), torch.zeros(r, cout), *self._conv(cout, cout, 3, gens)]
            if cin != cout:
                params += self._conv(cin, cout, 1, gens)
        params += [torch.ones(r, self.c1), torch.zeros(r, self.c1)]
        return params + self._conv(self.c1, self.c_in, 3, gens)

    @staticmethod
    def _conv(cin: int, cout: int, k: int, gens: list[torch.Generator]) -> list[Tensor]:
        fan_in = cin * k * k
        return [uniform((cout, cin, k, k), fan_in, gens), uniform((cout,), fan_in, gens)]

    def __call__(self, params: list[Tensor], x: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        """(R, B, C*H*W) -> (R, B, C*H*W): replicate by replicate, or all R grouped."""
        e = embed(t, y, self.time_dim, self.classes)
        if self.grouped:
            return self.all(params, x, e)
        outs = [
            self.one([p[i] for p in params], x[i].reshape(-1, *self.shape), e[i])
            for i in range(x.shape[0])
        ]
        return torch.stack(outs).reshape(x.shape)

    def all(self, params: list[Tensor], x: Tensor, e: Tensor) -> Tensor:
        """All R replicates as one network: images (B, R*C, H, W), replicate r on channels
        [r*C, (r+1)*C) of every layer; each stacked weight seen as one grouped tensor (a view:
        its gradient lands in the stacked one), the embedding's projection a baddbmm over (R, B,
        emb). (R, B, C*H*W) -> (R, B, C*H*W)."""
        r, b = x.shape[:2]
        images = x.reshape(r, b, *self.shape).transpose(0, 1).flatten(1, 2)
        flat = [q if q.dim() == 3 else q.flatten(0, 1) for q in params]  # 3-D: the embedding's
        out = self.one(flat, images, e, groups=r)
        return out.reshape(b, r, x.shape[2]).transpose(0, 1)

    def one(self, params: list[Tensor], x: Tensor, e: Tensor, groups: int = 1) -> Tensor:
        """One replicate: images (B, C, H, W), embedding (B, emb) -> (B, C, H, W); or, with
        `groups` = R, all of them in the layout of `all`."""
        it = iter(params)
        h = F.conv2d(x, next(it), next(it), padding=1, groups=groups)
        skip = h = self._block(h, e, it, self.blocks[0], groups)
        h = self._block(F.avg_pool2d(h, 2, ceil_mode=True), e, it, self.blocks[1], groups)
        h = self._block(h, e, it, self.blocks[2], groups)
        h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
        h = self._block(_cat(h, skip, groups), e, it, self.blocks[3], groups)
        h = F.silu(_norm(h, next(it), next(it), groups))
        return F.conv2d(h, next(it), next(it), padding=1, groups=groups)

    @staticmethod
    def _block(x: Tensor, e: Tensor, it, sizes: tuple[int, int], groups: int) -> Tensor:
        h = _norm(x, next(it), next(it), groups)
        h = F.conv2d(F.silu(h), next(it), next(it), padding=1, groups=groups)
        h = h + _project(e, next(it), next(it))[..., None, None]
        h = _norm(h, next(it), next(it), groups)
        h = F.conv2d(F.silu(h), next(it), next(it), padding=1, groups=groups)
        if sizes[0] != sizes[1]:
            x = F.conv2d(x, next(it), next(it), groups=groups)
        return x + h


def _norm(x: Tensor, weight: Tensor, bias: Tensor, groups: int = 1) -> Tensor:
    """GroupNorm of `groups` replicates' channel blocks, each in gcd(GROUPS, its width) groups:
    contiguous blocks, so every group lies within one replicate."""
    channels = x.shape[1] // groups
    return F.group_norm(x, groups * math.gcd(GROUPS, channels), weight, bias)


def _project(e: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """The embedding's projection: one replicate's (B, emb) @ (emb, c) + (1, c), or R of them
    at once, (R, B, emb) -> (B, R*c) in the grouped channel layout."""
    if e.dim() == 2:
        return e @ weight + bias
    return torch.baddbmm(bias, e, weight).transpose(0, 1).flatten(1)


def _cat(h: Tensor, skip: Tensor, groups: int) -> Tensor:
    """Each replicate's channels of h, then its channels of skip (the U-Net's skip connection)."""
    both = [h.unflatten(1, (groups, -1)), skip.unflatten(1, (groups, -1))]
    return torch.cat(both, dim=2).flatten(1, 2)
