"""Shared machinery of the torch families: one network per replicate, all replicates trained at once.

`Trainer` is the one training loop of every torch family (the diffusion and flow families through
`BatchedNet`, the transformer of `models.transformer` directly): replicate r owns slice [r] of
every stacked parameter (the networks are in `models.nets`: an MLP of `torch.baddbmm` layers, or
a convolutional U-Net for images; and `models.gpt`, a causal transformer); one Adam updates the stacked
tensors (Adam is per element, so replicates do not mix), gradients are clipped per replicate, and
every random draw of replicate r comes from its own CPU generator. So replicate r trains exactly
as it would alone: adding replicates changes no replicate's numbers.

A conditional family (`conditional: true`) takes each sample's class label as an input; labels are
dropped to the null label with probability `p_uncond` while training, so one network is both the
conditional and the unconditional model, and sampling mixes them with classifier-free guidance
(Ho and Salimans, 2022): out = (1 + w) out(x, t, y) - w out(x, t, null), w = `guidance`.

Negative guidance (`negative_guidance: {w, bad}`) samples with out = (1 + w) out - w out_bad, away
from a bad version of the model: `synthetic`, a copy fine-tuned on the model's own samples each fit
(self-improving diffusion, Alemohammad et al., 2024), or `early`, the EMA after a fraction of the fit
(autoguidance, Karras et al., 2024). The outputs (eps, v or velocity) are affine in the network's
with coefficients free of it, so guiding the output is guiding eps (or the velocity field) exactly.

Training is float32 on `device` (`auto`: CUDA when present, else the CPU; random numbers are drawn
on the CPU either way, so a GPU run sees the same draws, though not the same arithmetic); the
families return float64 numpy arrays.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator, model_validator

from selfconsume.errors import ConfigError
from selfconsume.memory import Dim, Term
from selfconsume.models.base import NetworkModel, SamplingParams, ShapedImageModel
from selfconsume.models.nets import MLP, Initialised, Network, UNet
from selfconsume.registry import Params
from selfconsume.seeding import Streams

Tensor = torch.Tensor
Net = Callable[[Tensor, Tensor], Tensor]
"""A network bound to parameters (and labels): (x (R, B, d), t (R, B) in [0, 1]) -> (R, B, d)."""
LossFn = Callable[[Net, Tensor, Tensor, Tensor], Tensor]
"""(net, data batch (R, B, d), uniforms (R, B), normals (R, B, d)) -> per-sample loss (R, B)."""
StepLoss = Callable[[list[Tensor], Tensor, Tensor, Tensor], Tensor]
"""(live parameters, minibatch row indices (R, B), uniforms (R, B, k), normals (R, B, ...)) ->
per-row loss (R, B): one training step's loss, as `Trainer.optimise` asks for it."""

SMALL_NET = {"hidden": 16, "depth": 2, "train_steps": 30, "finetune_steps": 10, "batch_size": 32}
"""A net small enough for the contract suite's examples (seconds on a CPU)."""
DRAW_CHUNK = 1 << 16
"""Random numbers pre-drawn per replicate at a time; fixed, so a replicate's stream never depends on R."""


class NegativeGuidance(Params):
    """Sampling with out = (1 + w) out - w out_bad, away from a bad version of the model."""

    w: float = Field(default=0.0, ge=0)
    """Guidance weight (0: exactly the unguided sampler; no bad model is trained)."""
    bad: Literal["synthetic", "early"] | None = Field(default=None, validate_default=True)
    """`synthetic`: a copy fine-tuned on the model's own (unguided) samples after every fit;
    `early`: the EMA after `fraction` of every fit's Adam steps."""
    fraction: float = Field(default=0.25, gt=0, lt=1)
    """`early`: the fraction of the fit's steps after which the bad model is taken."""
    steps: int | None = Field(default=None, ge=1)
    """`synthetic`: fine-tuning steps of the bad copy (None: finetune_steps, else train_steps)."""

    @field_validator("bad")
    @classmethod
    def _bad_when_guided(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None and info.data.get("w", 0.0) > 0:
            raise ValueError("w > 0 needs a bad model (synthetic | early)")
        return v


class TrainParams(SamplingParams):
    """The optimiser, EMA and device of a family trained by `Trainer` (psi: its sampling bias)."""

    train_steps: int = Field(default=2000, ge=1)
    finetune_steps: int | None = Field(default=None, ge=1)
    """Adam steps of a warm-started generation (fine-tuning); None means train_steps."""
    batch_size: int = Field(default=256, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    ema_decay: float = Field(default=0.999, ge=0, lt=1)
    """The cap of the EMA's warm-up decay; the EMA restarts with every fit (see Trainer)."""
    grad_clip: float | None = Field(default=1.0, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    """Where to train and sample: `auto` is CUDA when present, else the CPU."""

    def steps(self, warm: bool) -> int:
        """Adam steps of a fit: `finetune_steps` when warm (and set), else `train_steps`."""
        return self.finetune_steps if warm and self.finetune_steps else self.train_steps


class NetParams(TrainParams):
    """Parameters of the diffusion and flow families (network, normalisation; psi scales the
    initial noise of sampling, negative_guidance steers it away from a bad model)."""

    hidden: int = Field(default=128, ge=1)
    depth: int = Field(default=3, ge=1)
    time_dim: int = Field(default=16, ge=2, multiple_of=2)
    x_octaves: int = Field(default=0, ge=0)
    """Octaves L of sinusoidal features of x fed beside x (sin, cos of 2^k π x, k < L): lets the
    MLP draw the sharp boundaries between narrow modes without huge first-layer weights."""
    normalize: bool = True
    net: Literal["mlp", "unet"] = "mlp"
    """The network: an MLP (hidden, depth, x_octaves) or, for images, a U-Net (channels)."""
    channels: tuple[int, int] = (32, 64)
    """The U-Net's widths at full and half resolution."""
    unet_replicates: Literal["auto", "loop", "grouped"] = "auto"
    """How the U-Net runs the replicates: one after another (`loop`: replicate r bit-identical
    whatever R), or as one network of grouped convolutions (`grouped`: one set of kernels for all,
    as a GPU wants; the loop's function up to float32 rounding, at which level replicate r's
    numbers then depend on R); `auto`: grouped on CUDA, else loop (no faster on a CPU,
    `benchmarks/bench_images_models.py`)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """bfloat16 autocasts the network's forward pass in training, on the family's device (a CPU
    runs it too, no faster: the tests check it there); the loss, the parameters, Adam and sampling
    stay float32."""
    conditional: bool = False
    """Whether the network takes class labels (needs labelled data with `classes` classes)."""
    classes: int = Field(default=10, ge=2)
    guidance: float = Field(default=0.0, ge=0)
    """Classifier-free guidance scale w (0: the plain conditional model)."""
    p_uncond: float = Field(default=0.1, ge=0, lt=1)
    """Probability that a training label is replaced by the null label (the unconditional model)."""
    prompt_weights: list[float] | None = None
    """p_user, the distribution of the prompts (labels) a conditional model is asked for; None is
    uniform over the classes."""
    negative_guidance: NegativeGuidance | None = None
    """Guidance away from a bad version of the model (None: none)."""

    LATER: ClassVar[dict[str, Any]] = {
        **SamplingParams.LATER,
        "negative_guidance": None,
        "unet_replicates": "auto",
        "dtype": "float32",
    }

    @property
    def guide_w(self) -> float:
        """The negative guidance weight (0 when none is configured)."""
        return self.negative_guidance.w if self.negative_guidance is not None else 0.0

    @model_validator(mode="after")
    def _conditioning(self) -> NetParams:
        if self.guidance > 0 and not (self.conditional and self.p_uncond > 0):
            raise ValueError("guidance needs conditional: true and p_uncond > 0")
        w = self.prompt_weights
        if w is not None and (
            len(w) != self.classes or min(w) < 0 or sum(w) <= 0 or not self.conditional
        ):
            raise ValueError(
                "prompt_weights must be `classes` non-negative weights with a positive sum "
                "(conditional families only)"
            )
        return self

    def check_data(self, source: object) -> None:
        """Refuse data the network cannot take (one-line ConfigError naming the key)."""
        from selfconsume.data.base import HasLabels, Images

        if self.net == "unet" and not isinstance(source, Images):
            raise ConfigError("model.params.net: unet needs image data (digits, mnist, image_file)")
        if self.conditional:
            if not isinstance(source, HasLabels):
                raise ConfigError(
                    "model.params.conditional: needs labelled data (digits, mnist, "
                    "image_file with y)"
                )
            if source.n_classes != self.classes:
                raise ConfigError(
                    f"model.params.classes: {self.classes}, but the data has {source.n_classes} "
                    "classes"
                )


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else the CPU; `cuda` without a GPU is bad input."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("model.params.device: cuda, but torch sees no CUDA device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def network(p: NetParams, dim: int, image_shape: tuple[int, int, int] | None) -> Network:
    """The network `p.net` names, for samples of dimension dim (images of `image_shape`)."""
    classes = p.classes if p.conditional else 0
    if p.net == "mlp":
        return MLP(dim, p.hidden, p.depth, p.time_dim, p.x_octaves, classes)
    if image_shape is None:
        side = math.isqrt(dim)
        if side * side != dim:
            raise ConfigError("model.params.net: unet needs image data (digits, mnist, image_file)")
        image_shape = (1, side, side)
    grouped = p.unet_replicates == "grouped" or (
        p.unet_replicates == "auto" and resolve_device(p.device).type == "cuda"
    )
    return UNet(image_shape, p.channels, p.time_dim, classes, grouped)


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
    gens: list[torch.Generator],
    steps: int,
    uniform: tuple[int, ...],
    normal: tuple[int, ...],
    device: torch.device | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Per step, uniforms (R, *uniform) and normals (R, *normal), replicate r's from gens[r]
    (drawn on the CPU, moved to `device`).

    Draws come in chunks of steps whose length depends only on the per-replicate shapes."""
    per_step = max(1, math.prod(uniform) + math.prod(normal))
    chunk = max(1, min(steps, DRAW_CHUNK // per_step))
    for start in range(0, steps, chunk):
        c = min(chunk, steps - start)
        u = torch.stack([torch.rand((c, *uniform), generator=g) for g in gens], dim=1)
        z = torch.stack([torch.randn((c, *normal), generator=g) for g in gens], dim=1)
        if device is not None:
            u, z = u.to(device), z.to(device)
        yield from zip(u, z, strict=True)


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


def to_cpu(state: Any) -> Any:
    """A copy of a nested state (dicts, lists, tensors) with every tensor on the CPU."""
    if isinstance(state, Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: to_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(to_cpu(v) for v in state)
    return copy.deepcopy(state)


class Trainer:
    """Stacked parameters of R replicates of a network, their EMA and one Adam over them: the
    training loop every torch family shares (minibatches drawn by weight, per-replicate gradient
    clipping, the EMA), whatever the network and its loss.

    The EMA follows the generation it samples: every fit, warm or not, restarts it from the
    parameters it starts from with the warm-up decay `ema_decay`, so after k updates its weight on
    them is `ema_start_weight` (under 1e-6 from k = 20 on) and none is left on the previous
    generation's EMA. (Carried over instead, a decay of 0.999 would keep 0.999^500 = 61% of its
    weight on earlier generations after 500 fine-tuning steps.)"""

    def __init__(
        self, p: TrainParams, network: Initialised, replicates: int, streams: Streams, purpose: str
    ) -> None:
        self.p, self.replicates, self.streams, self.purpose = p, replicates, streams, purpose
        self.device = resolve_device(p.device)
        self.network = network
        self.reset(0)

    def reset(self, generation: int) -> None:
        """Fresh parameters (drawn from this generation's init streams), EMA and optimiser."""
        gens = replicate_generators(
            self.streams, f"{self.purpose}/init", generation, self.replicates
        )
        self._set(self.network.init(gens), None, None)

    def _set(self, params: list[Tensor], ema: list[Tensor] | None, opt: dict | None) -> None:
        self.params = [q.detach().to(self.device, copy=True).requires_grad_() for q in params]
        self.ema = [
            q.detach().to(self.device, copy=True) for q in (ema if ema is not None else params)
        ]
        self.opt = torch.optim.Adam(self.params, lr=self.p.lr)
        if opt is not None:
            self.opt.load_state_dict(opt)
            for group in self.opt.param_groups:
                group["lr"] = self.p.lr
        self.ema_count = 0

    def optimise(
        self,
        n: int,
        weights: np.ndarray | None,
        generation: int,
        steps: int,
        loss: StepLoss,
        uniforms: int,
        normals: tuple[int, ...],
    ) -> np.ndarray:
        """Run `steps` Adam steps on all replicates of the loss of minibatches of a training set
        of n rows; return the final loss per replicate (R,).

        Each step draws, per replicate from its own stream, `uniforms` uniforms and normals of
        shape `normals` per minibatch row; the first uniform picks the row with probability
        proportional to `weights` (an unbiased estimate of the weighted loss that wastes no
        batch slot on zero weights). The final loss is the mean over the last tenth of the
        steps; a diverged replicate reports NaN or inf."""
        p = self.p
        cdf = None
        if weights is not None:
            cdf = torch.as_tensor(weights, dtype=torch.float64, device=self.device).cumsum(1)
        gens = replicate_generators(
            self.streams, f"{self.purpose}/train", generation, self.replicates
        )
        self.ema = [q.detach().clone() for q in self.params]
        self.ema_count = 0
        tail = max(1, steps // 10)
        losses = []
        for step, (u, z) in enumerate(
            draws(gens, steps, (p.batch_size, uniforms), (p.batch_size, *normals), self.device)
        ):
            idx = sample_indices(u[..., 0], cdf, n).clamp_(max=n - 1)
            value = loss(self.params, idx, u, z).mean(dim=1)
            self.opt.zero_grad(set_to_none=True)
            value.sum().backward()
            if p.grad_clip is not None:
                clip_per_replicate(self.params, p.grad_clip)
            self.opt.step()
            self._update_ema()
            self.after_step(step + 1, steps)
            if step >= steps - tail:
                losses.append(value.detach())
        return torch.stack(losses).mean(dim=0).double().cpu().numpy()

    def after_step(self, step: int, steps: int) -> None:
        """Called after the step-th of a fit's `steps` Adam steps (a subclass's hook)."""

    @torch.no_grad()
    def _update_ema(self) -> None:
        self.ema_count += 1
        decay = ema_decay(self.p.ema_decay, self.ema_count)
        for e, q in zip(self.ema, self.params, strict=True):
            e.lerp_(q, 1.0 - decay)

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume, every tensor on the CPU (a checkpoint reads the same anywhere)."""
        return {
            "params": to_cpu(self.params),
            "ema": to_cpu(self.ema),
            "ema_count": self.ema_count,
            "opt": to_cpu(self.opt.state_dict()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._set(state["params"], state["ema"], state["opt"])
        self.ema_count = int(state["ema_count"])


class BatchedNet(Trainer):
    """The trainer of the diffusion and flow families: their network (`network`), the data
    scaling, class labels and the bad model of negative guidance."""

    def __init__(
        self,
        p: NetParams,
        dim: int,
        replicates: int,
        streams: Streams,
        purpose: str,
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        self.dim = dim
        self.null = p.classes if p.conditional else None
        super().__init__(p, network(p, dim, image_shape), replicates, streams, purpose)

    def reset(self, generation: int) -> None:
        """Fresh parameters, EMA, optimiser (`Trainer.reset`), bad model and scaling."""
        super().reset(generation)
        self.bad = [q.detach().clone() for q in self.ema] if self.p.guide_w > 0 else None
        self.shift = np.zeros((self.replicates, 1, self.dim))
        self.scale = np.ones((self.replicates, 1, self.dim))

    def net(self, ema: bool = True, labels: np.ndarray | Tensor | None = None) -> Net:
        """The network bound to the EMA (for sampling) or the live parameters, and to labels
        (R, B) (None: the null label of a conditional network); with labels and guidance w > 0,
        the classifier-free guided (1 + w) out(y) - w out(null), both halves in one pass. The EMA
        network with negative guidance w > 0 is (1 + w) out - w out_bad (both bound alike)."""
        good = self.bound(self.ema if ema else self.params, labels)
        w = self.p.guide_w
        if not ema or w == 0:
            return good
        bad = self.bound(self.bad, labels)
        return lambda x, t: (1 + w) * good(x, t) - w * bad(x, t)

    def bound(self, params: list[Tensor], labels: np.ndarray | Tensor | None) -> Net:
        """The network with `params` bound to labels (classifier-free guided when w > 0)."""
        y = None if labels is None else torch.as_tensor(labels, device=self.device)
        w = self.p.guidance
        if y is None or w == 0:
            return lambda x, t: self.network(params, x, t, y)
        both = torch.cat([y, torch.full_like(y, self.null)], dim=1)

        def guided(x: Tensor, t: Tensor) -> Tensor:
            out = self.network(params, torch.cat([x, x], dim=1), torch.cat([t, t], dim=1), both)
            cond, uncond = out.chunk(2, dim=1)
            return (1 + w) * cond - w * uncond

        return guided

    def normalise(self, x: np.ndarray) -> Tensor:
        return torch.as_tensor(
            (x - self.shift) / self.scale, dtype=torch.float32, device=self.device
        )

    def denormalise(self, z: Tensor) -> np.ndarray:
        return z.double().cpu().numpy() * self.scale + self.shift

    def prompts(self, n: int, rng: Any) -> np.ndarray:
        """n prompts (labels) per replicate drawn from p_user (`prompt_weights`, else uniform)."""
        w = np.asarray(self.p.prompt_weights or np.ones(self.p.classes), dtype=float)
        return rng.choice(self.p.classes, size=(self.replicates, n), p=w / w.sum())

    def train(
        self,
        x: np.ndarray,
        weights: np.ndarray | None,
        generation: int,
        loss_fn: LossFn,
        warm: bool,
        labels: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Train all replicates on x (`Trainer.optimise`: `finetune_steps` when warm, else
        `train_steps`; a warm fit keeps the data scaling and Adam's moments, and restarts the
        EMA); return the final loss per replicate. A conditional network trains on `labels`
        (R, n), each dropped to the null label with probability p_uncond. With negative guidance
        from `early`, the EMA after that fraction of the steps becomes the bad model."""
        p = self.p
        if not warm and p.normalize:
            self.shift, self.scale = weighted_stats(x, weights)
        data = self.normalise(x)
        y = None
        if self.null is not None:
            if labels is None:
                raise ValueError("a conditional family is fitted with labels")
            y = torch.as_tensor(labels, dtype=torch.long, device=self.device)

        def step_loss(params: list[Tensor], idx: Tensor, u: Tensor, z: Tensor) -> Tensor:
            batch = data.gather(1, idx[..., None].expand(-1, -1, self.dim))
            yb = (
                None
                if y is None
                else y.gather(1, idx).masked_fill_(u[..., 2] < p.p_uncond, self.null)
            )
            net = functools.partial(self.network, params, y=yb)
            return loss_fn(
                net if p.dtype == "float32" else self._bfloat16(net), batch, u[..., 1], z
            )

        uniforms = 2 if y is None else 3
        loss = self.optimise(
            data.shape[1], weights, generation, p.steps(warm), step_loss, uniforms, (self.dim,)
        )
        return {"loss": loss}

    def _bfloat16(self, net: Net) -> Net:
        """The network's forward pass autocast to bfloat16 on the device, its output float32."""

        def cast(x: Tensor, t: Tensor) -> Tensor:
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return net(x, t).float()

        return cast

    def after_step(self, step: int, steps: int) -> None:
        """With negative guidance from `early`, keep the EMA after that step as the bad model."""
        if step == self._early_step(steps):
            self.bad = [e.detach().clone() for e in self.ema]

    def _early_step(self, steps: int) -> int | None:
        """The step after which the EMA is the `early` bad model (None: no such model)."""
        g = self.p.negative_guidance
        if g is None or g.w == 0 or g.bad != "early":
            return None
        return max(1, round(g.fraction * steps))

    def fine_tuned_bad(
        self, x: np.ndarray, labels: np.ndarray | None, generation: int, loss_fn: LossFn
    ) -> None:
        """The `synthetic` bad model: the EMA of a copy of this network fine-tuned (warm, its own
        random streams) on x, the network's own samples; this network is left as it was."""
        g = self.p.negative_guidance
        steps = g.steps or self.p.finetune_steps or self.p.train_steps
        twin = copy.copy(self)
        twin.p = self.p.model_copy(update={"finetune_steps": steps})
        twin.purpose = f"{self.purpose}/bad"
        twin.load_state_dict(self.state_dict())
        twin.train(x, None, generation, loss_fn, True, labels)
        self.bad = twin.ema

    def state_dict(self) -> dict[str, Any]:
        return (
            super().state_dict()
            | {"shift": self.shift.copy(), "scale": self.scale.copy()}
            | ({} if self.bad is None else {"bad": to_cpu(self.bad)})
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.shift, self.scale = np.asarray(state["shift"]), np.asarray(state["scale"])
        if self.p.guide_w > 0:
            self.bad = [q.detach().to(self.device, copy=True) for q in state["bad"]]


class BatchedFamily:
    """Base of the families trained by a `Trainer` (`self.net`): their device, their constants
    and their state (the trainer's)."""

    net: Trainer

    @property
    def device(self) -> torch.device:
        """The device every tensor of the family lives on: the network's (`device` param)."""
        return self.net.device

    def constant(self, values: np.ndarray) -> Tensor:
        """A float32 constant of the family (a noise schedule) on its device: families create
        the tensors they keep here, so none is left on the CPU beside a CUDA network."""
        return torch.as_tensor(values, dtype=torch.float32, device=self.device)

    def state_dict(self) -> dict[str, Any]:
        return self.net.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state)


class TorchFamily(BatchedFamily, ShapedImageModel, NetworkModel):
    """Base of the diffusion and flow families: fit and state through a BatchedNet; subclasses
    give the loss.

    Takes images (`net: unet` for a convolutional network) and, with `conditional: true`, labels:
    `fit(..., labels=(R, n))`, `sample(..., labels=(R, n))` (None: prompts from p_user)."""

    purpose = "net"
    net: BatchedNet

    @classmethod
    def memory_terms(cls, params: NetParams, replicates: float, dim: Dim) -> list[Term]:
        """The terms of the network `params.net` names (`MLP` or `UNet`)."""
        p, batch = params, float(params.batch_size)
        classes = p.classes if p.conditional else 0
        if p.net == "unet":
            emb = p.time_dim + (classes + 1 if classes else 0)
            return UNet.memory_terms(replicates, dim, batch, p.channels, emb)
        return MLP.memory_terms(
            replicates, dim, batch, p.hidden, p.depth, p.time_dim, p.x_octaves, classes
        )

    def __init__(
        self,
        params: NetParams,
        dim: int,
        replicates: int,
        streams: Streams,
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        self.p, self.dim, self.replicates = params, dim, replicates
        self.conditional = params.conditional
        self.net = BatchedNet(params, dim, replicates, streams, self.purpose, image_shape)

    def loss(self, net: Net, x: Tensor, u: Tensor, z: Tensor) -> Tensor:
        raise NotImplementedError

    def fit(
        self,
        x: np.ndarray,
        weights: np.ndarray | None,
        generation: int,
        warm: bool,
        labels: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Train on x (and labels, if conditional); warm continues parameters and Adam state and
        keeps the data scaling."""
        if not warm:
            self.net.reset(generation)
        out = self.net.train(x, weights, generation, self.loss, warm, labels)
        g = self.p.negative_guidance
        if g is not None and g.w > 0 and g.bad == "synthetic":
            own = self.sample(
                x.shape[1],
                self.net.streams.per_replicate(f"{self.purpose}/bad", generation),
                generation,
                labels,
                self.net.bound(self.net.ema, labels),
            )
            self.net.fine_tuned_bad(own, labels, generation, self.loss)
        return out

    def prompts(self, n: int, rng: Any) -> np.ndarray:
        return self.net.prompts(n, rng)

    def sampling_net(self, n: int, rng: Any, labels: np.ndarray | None) -> Net:
        """The EMA network bound to labels: given, else (conditional) n prompts from p_user."""
        if self.conditional and labels is None:
            labels = self.prompts(n, rng)
        return self.net.net(ema=True, labels=labels)
