"""A nanoGPT-style causal language model as a function of stacked replicate parameters.

Token and position embeddings, `n_layer` pre-LayerNorm blocks (causal multi-head self-attention,
then a GELU MLP of width 4 E, each added to the residual stream), a final LayerNorm and a linear
head to the V token logits, tied to the token embedding or not (Radford et al., 2019; Karpathy's
nanoGPT). The input vocabulary has one more token than the output, the beginning-of-sequence
symbol (index V) that stands before every sequence, so position i reads tokens 0..i-1 and predicts
token i of a window of L.

Replicate r owns slice [r] of every parameter. Every linear layer is one `torch.baddbmm` over the
stacked (R, in, out) weights and attention is one `F.scaled_dot_product_attention` call on
(R * B, heads, L, head dim) views, so all replicates run in one kernel per operation. LayerNorm is
normalised without affine and then scaled per replicate. Parameters are drawn as nanoGPT's: normal
with std 0.02 (the residual projections 0.02 / sqrt(2 n_layer)), biases 0, LayerNorm gains 1.

`step` runs one position for all sequences with a key-value cache (`Cache`): sampling costs
O(L) block evaluations of one token instead of O(L) of the whole prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from selfconsume.memory import COPIES, FLOAT32, TORCH_STATE, Dim, Term

Tensor = torch.Tensor

STD = 0.02
"""nanoGPT's initial weight std."""
PER_BLOCK = 16
"""Tensors of the model width (E floats per token) one block keeps per token for the backward pass:
two LayerNorms, q, k, v, attention output and projection, and the MLP's 4 E hidden twice."""


@dataclass
class Cache:
    """Keys and values of every layer, (R * S, heads, L, head dim) each, filled one position at a
    time by `GPT.step`."""

    keys: list[Tensor]
    values: list[Tensor]


class GPT:
    """The causal LM over stacked parameters: tokens (R, B, T) in 0..V (V the beginning of a
    sequence) -> logits (R, B, T, V)."""

    def __init__(
        self, vocab: int, length: int, n_layer: int, n_head: int, n_embd: int, tied: bool
    ) -> None:
        self.vocab, self.length, self.tied = vocab, length, tied
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd

    @staticmethod
    def count(vocab: float, length: float, n_layer: float, n_embd: float, tied: bool) -> float:
        """The number of parameters of one replicate."""
        e = n_embd
        head = 0 if tied else e * vocab
        return (vocab + 1) * e + length * e + n_layer * (12 * e * e + 13 * e) + 2 * e + head

    @classmethod
    def memory_terms(
        cls,
        replicates: float,
        dim: Dim,
        batch: float,
        n_layer: int,
        n_head: int,
        n_embd: int,
        vocab: float,
        tied: bool,
    ) -> list[Term]:
        """Weights and Adam state of every replicate's model, and the activations autograd keeps
        per training batch of L = dim tokens (the blocks', the attention weights' and the logits)."""
        key, length = dim
        r = {"replicates": replicates}
        weights = cls.count(vocab, length, n_layer, n_embd, tied)
        per_token = n_layer * (PER_BLOCK * n_embd + COPIES * n_head * length) + COPIES * vocab
        return [
            Term(
                "network parameters", {**r, "model.params.n_embd": weights}, FLOAT32 * TORCH_STATE
            ),
            Term(
                "network activations",
                {
                    **r,
                    "model.params.batch_size": batch,
                    key: length,
                    "model.params.n_embd": per_token,
                },
                FLOAT32,
            ),
        ]

    def init(self, gens: list[torch.Generator]) -> list[Tensor]:
        """[token embedding (R, V + 1, E), position embedding (R, L, E)] + per block [ln1 gain,
        bias (R, E), qkv weight (R, E, 3E), bias (R, 1, 3E), projection (R, E, E), (R, 1, E),
        ln2 gain, bias, MLP in (R, E, 4E), (R, 1, 4E), MLP out (R, 4E, E), (R, 1, E)] + [final
        ln gain, bias] + [head (R, E, V) unless tied]."""
        e, r = self.n_embd, len(gens)
        proj = STD / math.sqrt(2 * self.n_layer)
        params = [normal((self.vocab + 1, e), STD, gens), normal((self.length, e), STD, gens)]
        for _ in range(self.n_layer):
            params += [torch.ones(r, e), torch.zeros(r, e)]
            params += [normal((e, 3 * e), STD, gens), torch.zeros(r, 1, 3 * e)]
            params += [normal((e, e), proj, gens), torch.zeros(r, 1, e)]
            params += [torch.ones(r, e), torch.zeros(r, e)]
            params += [normal((e, 4 * e), STD, gens), torch.zeros(r, 1, 4 * e)]
            params += [normal((4 * e, e), proj, gens), torch.zeros(r, 1, e)]
        params += [torch.ones(r, e), torch.zeros(r, e)]
        return params if self.tied else [*params, normal((e, self.vocab), STD, gens)]

    def __call__(self, params: list[Tensor], tokens: Tensor) -> Tensor:
        """Logits (R, B, T, V) of the next token at every position of tokens (R, B, T)."""
        r, b, t = tokens.shape
        h = self._embed(params, tokens, torch.arange(t, device=tokens.device)).reshape(r, b * t, -1)
        blocks = iter(params[2 : 2 + 12 * self.n_layer])
        for _ in range(self.n_layer):
            h = self._block(h, [next(blocks) for _ in range(12)], b, t, None, 0)
        return self._head(params, h).reshape(r, b, t, self.vocab)

    def cache(self, sequences: int, device: torch.device) -> Cache:
        """An empty key-value cache for `sequences` = R * S sequences of L positions."""
        shape = (sequences, self.n_head, self.length, self.n_embd // self.n_head)
        zeros = [torch.zeros(shape, device=device) for _ in range(2 * self.n_layer)]
        return Cache(zeros[: self.n_layer], zeros[self.n_layer :])

    def step(self, params: list[Tensor], tokens: Tensor, position: int, cache: Cache) -> Tensor:
        """Logits (R, S, V) of the token after `position`, given the tokens (R, S) at it and the
        cache of the positions before (which this call extends by one)."""
        r, s = tokens.shape
        where = torch.full((1,), position, device=tokens.device)
        h = self._embed(params, tokens[..., None], where).reshape(r, s, -1)
        blocks = iter(params[2 : 2 + 12 * self.n_layer])
        for layer in range(self.n_layer):
            kv = (cache.keys[layer], cache.values[layer])
            h = self._block(h, [next(blocks) for _ in range(12)], s, 1, kv, position)
        return self._head(params, h)

    def _embed(self, params: list[Tensor], tokens: Tensor, positions: Tensor) -> Tensor:
        """Token plus position embeddings (R, B, T, E): one lookup in the flattened (R (V + 1), E)
        table at token + r (V + 1)."""
        wte, wpe = params[0], params[1]
        r = tokens.shape[0]
        offset = torch.arange(r, device=tokens.device).view(r, 1, 1) * (self.vocab + 1)
        return F.embedding(tokens + offset, wte.reshape(-1, self.n_embd)) + wpe[:, None, positions]

    def _head(self, params: list[Tensor], h: Tensor) -> Tensor:
        """Logits (R, N, V) of the residual stream h (R, N, E) after the final LayerNorm."""
        base = 2 + 12 * self.n_layer
        h = _norm(h, params[base], params[base + 1])
        if self.tied:
            return torch.bmm(h, params[0][:, : self.vocab].transpose(1, 2))
        return torch.bmm(h, params[base + 2])

    def _block(
        self,
        h: Tensor,
        p: list[Tensor],
        b: int,
        t: int,
        kv: tuple[Tensor, Tensor] | None,
        position: int,
    ) -> Tensor:
        """One pre-LN block on h (R, B T, E): h + attention(ln1 h), then + MLP(ln2 h)."""
        h = h + self._attend(_norm(h, p[0], p[1]), p[2:6], b, t, kv, position)
        hidden = F.gelu(torch.baddbmm(p[9], _norm(h, p[6], p[7]), p[8]))
        return h + torch.baddbmm(p[11], hidden, p[10])

    def _attend(
        self,
        x: Tensor,
        p: list[Tensor],
        b: int,
        t: int,
        kv: tuple[Tensor, Tensor] | None,
        position: int,
    ) -> Tensor:
        """Causal multi-head self-attention of x (R, B T, E) on (R B, heads, T, head dim) views;
        with a cache (t = 1), the new key and value are written at `position` and the query
        attends to positions 0..position."""
        r, e, heads = x.shape[0], self.n_embd, self.n_head
        qkv = torch.baddbmm(p[1], x, p[0]).view(r * b, t, 3, heads, e // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        if kv is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            keys, values = kv
            keys[:, :, position] = k[:, :, 0]
            values[:, :, position] = v[:, :, 0]
            y = F.scaled_dot_product_attention(
                q, keys[:, :, : position + 1], values[:, :, : position + 1]
            )
        y = y.transpose(1, 2).reshape(r, b * t, e)
        return torch.baddbmm(p[3], y, p[2])


def normal(shape: tuple[int, ...], std: float, gens: list[torch.Generator]) -> Tensor:
    """Stacked (R, *shape) normal draws of standard deviation std, replicate r's from gens[r]."""
    return torch.stack([torch.randn(shape, generator=g) for g in gens]) * std


def _norm(h: Tensor, gain: Tensor, bias: Tensor) -> Tensor:
    """LayerNorm over the last axis of h (R, N, E) with replicate r's gain and bias (R, E)."""
    return F.layer_norm(h, h.shape[-1:]) * gain[:, None] + bias[:, None]
