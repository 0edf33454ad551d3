"""The transformer family: a nanoGPT-sized causal language model per replicate (`models.gpt`),
trained by the torch families' one trainer (`models.torch_batched.Trainer`).

Training minimises the next-token cross-entropy of minibatches of the training windows (float32;
`dtype: bfloat16` autocasts the forward pass on CUDA only). A warm start fine-tunes the previous
generation's weights and Adam state (Shumailov et al., 2024). The model p_t is the EMA of the
weights (`ema_decay` 0, the default, makes it the final weights).

Sampling runs the L positions one after another for every replicate and sequence at once, with a
key-value cache, from p_t's next-token law at temperature psi, p^(1/psi) renormalised, truncated
to its nucleus (the fewest most likely tokens holding `top_p` of the mass, renormalised; Holtzman
et al., 2020): psi and top_p are the sampling bias of this tier. psi -> 0 is greedy (argmax) in
the limit. Each position's uniforms are drawn per replicate from its own stream before any
sequence is decoded, so replicate r's draws do not depend on R nor on the decoding blocks.

`log_prob(x)` is the exact log-likelihood of p_t itself, temperature 1 and no truncation, as the
ngram family's: the sum of the L next-token log-probabilities, the first read after the
beginning-of-sequence symbol. (With psi != 1 or top_p < 1 the samples follow a biased law that
log_prob does not score; the text metrics score p_t.)
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, field_validator

from selfconsume.data.text import Tokens
from selfconsume.errors import ConfigError
from selfconsume.memory import Dim, Term
from selfconsume.models.base import MODELS, NetworkModel, ReadsTruth, Streams
from selfconsume.models.gpt import GPT
from selfconsume.models.torch_batched import (
    BatchedFamily,
    Tensor,
    Trainer,
    TrainParams,
    draws,
    generators_from,
)
from selfconsume.registry import Example

VOCAB_BOUND = 256
"""The vocabulary `memory_terms` assumes (it sees the params, not the data): character tokens."""
BLOCK_FLOATS = 1 << 22
"""Floats per replicate one decoding or scoring block may hold (its cache or activations): the
sequences are processed in blocks of this size, so memory stays bounded at any n."""


class TransformerParams(TrainParams):
    n_layer: int = Field(default=2, ge=1, le=64)
    n_embd: int = Field(default=64, ge=1, le=4096)
    """E, the width of the residual stream (a multiple of n_head)."""
    n_head: int = Field(default=4, ge=1)
    tied: bool = True
    """Whether the head's weights are the token embedding's (nanoGPT's weight tying)."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    """Nucleus sampling: keep the fewest most likely tokens holding this share of the mass (1: all)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """bfloat16 autocasts the training forward pass (CUDA only); the loss is float32 either way."""
    train_steps: int = Field(default=1000, ge=1)
    batch_size: int = Field(default=32, ge=1)
    ema_decay: float = Field(default=0.0, ge=0, lt=1)
    """The cap of the EMA's warm-up decay; 0 (default) samples the final weights, as nanoGPT."""

    @field_validator("n_head")
    @classmethod
    def _divides_width(cls, v: int, info: ValidationInfo) -> int:
        e = info.data.get("n_embd")
        if e is not None and e % v:
            raise ValueError(f"n_head must divide n_embd ({e})")
        return v


@MODELS.register(
    "transformer",
    TransformerParams,
    example=Example(
        {"n_layer": 1, "n_embd": 16, "n_head": 2, "train_steps": 20, "finetune_steps": 5},
        config={"data": {"kind": "markov_text", "params": {"vocab": 4, "length": 6}}},
    ),
)
class Transformer(BatchedFamily, NetworkModel, ReadsTruth):
    """A nanoGPT-style causal LM per replicate over the data's tokens; params: n_layer, n_embd,
    n_head, tied, train_steps, finetune_steps, batch_size, lr, ema_decay, grad_clip, psi (the
    sampling temperature), top_p, dtype (float32 | bfloat16 on CUDA), device (auto | cpu | cuda)."""

    purpose = "transformer"
    net: Trainer

    @classmethod
    def memory_terms(cls, params: TransformerParams, replicates: float, dim: Dim) -> list[Term]:
        """The model's weights, Adam state and training activations (`GPT.memory_terms`)."""
        p = params
        return GPT.memory_terms(
            replicates, dim, p.batch_size, p.n_layer, p.n_head, p.n_embd, VOCAB_BOUND, p.tied
        )

    def __init__(
        self,
        params: TransformerParams,
        dim: int,
        replicates: int,
        streams: Streams,
        truth: Any = None,
    ) -> None:
        if not isinstance(truth, Tokens):
            raise ConfigError(
                "model.kind: the transformer family needs token data (data.kind *_text)"
            )
        p = self.p = params
        self.vocab, self.length, self.replicates = truth.vocab_size, dim, replicates
        self.network = GPT(self.vocab, dim, p.n_layer, p.n_head, p.n_embd, p.tied)
        self.net = Trainer(p, self.network, replicates, streams, self.purpose)
        if p.dtype == "bfloat16" and self.device.type != "cuda":
            raise ConfigError("model.params.dtype: bfloat16 autocast needs a CUDA device")

    def tokens(self, x: np.ndarray) -> Tensor:
        """Sequences x (R, m, L) as a long tensor on the family's device (tokens 0..V-1 checked)."""
        if x.dtype.kind not in "iu" or (x.size and (x.min() < 0 or x.max() >= self.vocab)):
            raise ConfigError(
                f"model.kind: the transformer family needs tokens 0..{self.vocab - 1}"
            )
        return torch.as_tensor(x, dtype=torch.long, device=self.device)

    def inputs(self, tokens: Tensor) -> Tensor:
        """The model's inputs for targets (R, m, L): the beginning symbol, then tokens 0..L-2."""
        bos = torch.full_like(tokens[..., :1], self.vocab)
        return torch.cat([bos, tokens[..., :-1]], dim=-1)

    def cross_entropy(self, params: list[Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
        """Per-token next-token cross-entropy (R, B, L), nats, in float32."""
        with self._autocast():
            logits = self.network(params, inputs)
        flat = F.cross_entropy(logits.float().flatten(0, 2), targets.flatten(), reduction="none")
        return flat.view(targets.shape)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.p.dtype == "bfloat16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def fit(
        self, x: np.ndarray, weights: np.ndarray | None, generation: int, warm: bool
    ) -> dict[str, np.ndarray]:
        """Train on windows x (R, n, L): from fresh weights, or fine-tune when warm; the loss is
        the final per-token cross-entropy (nats)."""
        if not warm:
            self.net.reset(generation)
        targets = self.tokens(x)
        inputs = self.inputs(targets)

        def step_loss(params: list[Tensor], idx: Tensor, u: Tensor, z: Tensor) -> Tensor:
            rows = idx[..., None].expand(-1, -1, self.length)
            return self.cross_entropy(params, inputs.gather(1, rows), targets.gather(1, rows)).mean(
                -1
            )

        loss = self.net.optimise(
            x.shape[1], weights, generation, self.p.steps(warm), step_loss, 1, ()
        )
        return {"loss": loss}

    def block(self, floats_per_sequence: int) -> int:
        """Sequences per decoding or scoring block (per replicate; independent of R)."""
        return max(1, BLOCK_FLOATS // max(1, floats_per_sequence))

    @torch.no_grad()
    def sample(self, n: int, rng: np.random.Generator, generation: int) -> np.ndarray:
        """Sequences (R, n, L) int64 from p_t at temperature psi within the nucleus top_p."""
        gens = generators_from(rng, self.replicates)
        u = torch.stack([uu for uu, _ in draws(gens, self.length, (n,), (0,))], dim=-1)
        out = torch.empty((self.replicates, n, self.length), dtype=torch.long)
        size = self.block(2 * self.network.n_layer * self.length * self.network.n_embd)
        for start in range(0, n, size):
            part = u[:, start : start + size].to(self.device)
            out[:, start : start + size] = self._decode(part).cpu()
        return out.numpy()

    def _decode(self, u: Tensor) -> Tensor:
        """Sequences (R, S, L) of S sequences per replicate, position i drawn with u[..., i]."""
        r, s, _ = u.shape
        cache = self.network.cache(r * s, self.device)
        token = torch.full((r, s), self.vocab, dtype=torch.long, device=self.device)
        out = torch.empty((r, s, self.length), dtype=torch.long, device=self.device)
        for i in range(self.length):
            logits = self.network.step(self.net.ema, token, i, cache)
            token = out[..., i] = draw(logits, u[..., i], self.p.psi, self.p.top_p)
        return out

    @torch.no_grad()
    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """log p_t(x) of sequences x (R, m, L) at temperature 1, no truncation: (R, m) float64."""
        targets = self.tokens(x)
        size = self.block(self.length * (4 * self.network.n_embd + self.vocab))
        parts = [self._log_prob(t) for t in targets.split(size, dim=1)]
        if not parts:
            return np.zeros(x.shape[:2])
        return torch.cat(parts, dim=1).cpu().numpy()

    def _log_prob(self, targets: Tensor) -> Tensor:
        logits = self.network(self.net.ema, self.inputs(targets)).float()
        token = logits.log_softmax(-1).gather(-1, targets[..., None])[..., 0]
        return token.double().sum(-1)


def next_token_law(logits: Tensor, psi: float, top_p: float) -> Tensor:
    """The sampling law (..., V) in float64: softmax(logits / psi), the max subtracted before
    dividing (so psi -> 0 tends to the argmax without overflow), then truncated to its nucleus
    (the most likely tokens until top_p of the mass, the first always kept) unless top_p = 1."""
    z = logits.double()
    w = ((z - z.amax(-1, keepdim=True)) / psi).exp()
    if top_p < 1:
        ranked, order = w.sort(-1, descending=True)
        before = ranked.cumsum(-1) - ranked
        keep = before < top_p * ranked.sum(-1, keepdim=True)
        w = w * torch.zeros_like(keep).scatter(-1, order, keep)
    return w / w.sum(-1, keepdim=True)


def draw(logits: Tensor, u: Tensor, psi: float, top_p: float) -> Tensor:
    """One token (...,) per row of logits (..., V) by inverse CDF of `next_token_law` at u (...,)."""
    cdf = next_token_law(logits, psi, top_p).cumsum(-1)
    at = u.double()[..., None] * cdf[..., -1:]
    return torch.searchsorted(cdf, at, right=True)[..., 0].clamp_(max=logits.shape[-1] - 1)
