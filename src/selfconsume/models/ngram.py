"""The n-gram family: P(token | the previous n - 1 tokens) per replicate, add-k smoothed.

A sequence of L tokens over a vocabulary of V (the data's `vocab_size`) is scored token by token;
the context of position i is tokens i-n+1..i-1, positions before the start reading a
beginning-of-sequence symbol (index V), so the first tokens use the sequences' own openings. With
C = (V + 1)^(n - 1) contexts the fit is one weighted bincount of (replicate, context, token) into a
(R, C, V) count table and

    p(w | c) = (N(c, w) + k) / (N(c) + k V),

add-k smoothing (k = `add_k`; 0 is the maximum-likelihood fit). A context never seen in training
(N(c) = 0 with k = 0) backs off to the replicate's token frequencies. `smoothing: kneser_ney` is
interpolated Kneser-Ney with absolute discount D (`discount`, Chen & Goodman 1998):

    p(w | c) = max(N(c, w) - D, 0) / N(c) + D N1+(c .) / N(c) * p(w | c'),

c' the context without its oldest token; below the top order N counts continuations (the number
of distinct tokens seen before c' w), and the recursion ends in the continuation unigram
interpolated with the uniform law, so every token has positive probability. An unseen context
takes p(w | c') whole. Log-likelihoods are exact
sums of these log-probabilities. Sampling draws all sequences of all replicates at once, one
position at a time (a loop over L, never over sequences), from p(. | c)^(1/psi) renormalised:
psi is the sampling temperature. The fit is a count, not an optimisation, so a warm start means
nothing (the model ignores `warm`); `accumulate` adds each batch's counts (`fit_more`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from selfconsume.data.text import Tokens, inverse_cdf_rows
from selfconsume.errors import ConfigError
from selfconsume.models.base import MODELS, ReadsTruth, SamplingParams, Streams, tempered
from selfconsume.registry import Example

MAX_TABLE = 5 * 10**7
"""Most entries of all replicates' count tables, R (V + 1)^(n - 1) V (8 bytes each)."""


class NgramParams(SamplingParams):
    order: int = Field(default=2, ge=1, le=8)
    """n: a token depends on the n - 1 before it (1: unigram)."""
    add_k: float = Field(default=0.0, ge=0, le=1e6)
    """k of add-k smoothing; 0 fits by maximum likelihood (unseen n-grams get probability 0)."""
    smoothing: Literal["add_k", "kneser_ney"] = "add_k"
    """add_k, or interpolated Kneser-Ney with absolute discount `discount` (add_k then unused)."""
    discount: float = Field(default=0.75, gt=0, lt=1)
    """D of Kneser-Ney."""

    @model_validator(mode="after")
    def _one_smoothing(self) -> NgramParams:
        if self.smoothing == "kneser_ney" and self.add_k != 0.0:
            raise ValueError("add_k is unused with smoothing kneser_ney (leave it at 0)")
        return self


@MODELS.register(
    "ngram",
    NgramParams,
    example=Example(
        config={"data": {"kind": "markov_text", "params": {"vocab": 4, "length": 6}}},
    ),
)
class NgramModel(ReadsTruth):
    """Add-k or Kneser-Ney smoothed n-gram model per replicate over the data's tokens; params:
    order, add_k, smoothing = add_k | kneser_ney, discount, psi (the sampling temperature)."""

    def __init__(
        self,
        params: NgramParams,
        dim: int,
        replicates: int,
        streams: Streams,
        truth: Any = None,
    ) -> None:
        if not isinstance(truth, Tokens):
            raise ConfigError("model.kind: the ngram family needs token data (data.kind *_text)")
        self.vocab, self.length = truth.vocab_size, dim
        self.order, self.add_k, self.psi = params.order, params.add_k, params.psi
        self.smoothing, self.discount = params.smoothing, params.discount
        self.contexts = (self.vocab + 1) ** (self.order - 1)
        size = replicates * self.contexts * self.vocab
        if size > MAX_TABLE:
            raise ConfigError(
                f"model.params.order: {replicates} replicates of {self.contexts} contexts x "
                f"{self.vocab} tokens exceed {MAX_TABLE:.0e} table entries"
            )
        self.counts = np.zeros((replicates, self.contexts, self.vocab))
        self.conditionals = np.full(self.counts.shape, 1.0 / self.vocab)
        """p(w | c), (R, C, V) (not `probs`: the family is no categorical law over states)."""

    def context_ids(self, x: np.ndarray) -> np.ndarray:
        """The context index (R, m, L) of every position of sequences x (R, m, L)."""
        v1, n = self.vocab + 1, self.order
        pad = np.full((*x.shape[:-1], n - 1), self.vocab, dtype=np.int64)
        padded = np.concatenate([pad, x], axis=-1)
        ids = np.zeros(x.shape, dtype=np.int64)
        for j in range(n - 1):
            ids = ids * v1 + padded[..., j : j + x.shape[-1]]
        return ids

    def count(self, x: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        """Weighted (replicate, context, token) counts (R, C, V) of sequences x (R, m, L)."""
        r = x.shape[0]
        if x.dtype.kind not in "iu" or (x.size and (x.min() < 0 or x.max() >= self.vocab)):
            raise ConfigError(f"model.kind: the ngram family needs tokens 0..{self.vocab - 1}")
        rows = np.arange(r)[:, None, None] * self.contexts + self.context_ids(x)
        flat = (rows * self.vocab + x).ravel()
        w = None if weights is None else np.broadcast_to(weights[..., None], x.shape).ravel()
        size = r * self.contexts * self.vocab
        return np.bincount(flat, weights=w, minlength=size).reshape(self.counts.shape)

    def fit(
        self, x: np.ndarray, weights: np.ndarray | None, generation: int, warm: bool
    ) -> dict[str, np.ndarray]:
        """Count x (warm is ignored: a count has no starting point)."""
        self._set(self.count(x, weights))
        return {}

    def fit_more(self, x: np.ndarray, weights: np.ndarray | None) -> dict[str, np.ndarray]:
        """Add x's counts to the last training set's (`accumulate`)."""
        self._set(self.counts + self.count(x, weights))
        return {}

    def _set(self, counts: np.ndarray) -> None:
        total = counts.sum(-1, keepdims=True)
        tokens = counts.sum(1, keepdims=True)
        if np.any(tokens.sum(-1) <= 0):
            raise FloatingPointError("a replicate kept no token to fit its n-gram counts")
        self.counts = counts
        if self.smoothing == "kneser_ney":
            self.conditionals = kneser_ney(counts, self.vocab, self.discount)
            return
        k = self.add_k
        backoff = np.broadcast_to(tokens / tokens.sum(-1, keepdims=True), counts.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            smoothed = (counts + k) / (total + k * self.vocab)
        self.conditionals = np.where(total + k > 0, smoothed, backoff)

    def unigram_probs(self) -> np.ndarray | None:
        """p_t's token law (R, V), exact for a unigram model (order 1); None otherwise."""
        return self.conditionals[:, 0] if self.order == 1 else None

    def sample(self, n: int, rng: np.random.Generator, generation: int) -> np.ndarray:
        """Sequences (R, n, L), every replicate and sequence at once, a loop over positions."""
        r, c, v = self.conditionals.shape
        cdf = np.cumsum(tempered(self.conditionals.reshape(r * c, v), self.psi), axis=1)
        out = np.empty((r, n, self.length), dtype=np.int64)
        context = np.full((r, n), c - 1, dtype=np.int64)  # all beginning-of-sequence
        rows = np.arange(r)[:, None] * c
        for i in range(self.length):
            out[..., i] = inverse_cdf_rows(cdf, rows + context, rng.random((r, n)))
            context = (context * (v + 1) + out[..., i]) % c
        return out

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """log p_t(x) of sequences x (R, m, L), exact: (R, m); -inf where an n-gram has p = 0."""
        r = x.shape[0]
        rows = np.arange(r)[:, None, None] * self.contexts + self.context_ids(x)
        with np.errstate(divide="ignore"):
            return np.log(self.conditionals.reshape(-1, self.vocab)[rows, x]).sum(-1)

    def state_dict(self) -> dict[str, Any]:
        return {"counts": self.counts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._set(np.asarray(state["counts"], dtype=float))


def kneser_ney(counts: np.ndarray, vocab: int, discount: float) -> np.ndarray:
    """Interpolated Kneser-Ney p(w | c) (R, C, V) from counts (R, C, V), C = (V + 1)^(n - 1)
    with the oldest token the leading digit of c (see the module docstring)."""
    r, c, v = counts.shape
    if c == 1:  # the bottom: counts interpolated with the uniform law
        return _interpolate(counts, np.full((r, 1, v), 1.0 / v), discount)
    shorter = counts.reshape(r, vocab + 1, c // (vocab + 1), v)
    continuation = (shorter > 0).sum(1).astype(float)  # distinct tokens seen before c' w
    lower = kneser_ney(continuation, vocab, discount)
    above = np.broadcast_to(lower[:, None], shorter.shape).reshape(r, c, v)
    return _interpolate(counts, above, discount)


def _interpolate(counts: np.ndarray, lower: np.ndarray, discount: float) -> np.ndarray:
    """max(N - D, 0) / N(c) + (mass removed) / N(c) * lower, the removed mass D N1+(c .) for
    whole counts (sum min(N, D) for weighted ones, so each row sums to 1); lower where N(c) = 0."""
    total = counts.sum(-1, keepdims=True)
    removed = np.minimum(counts, discount).sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (np.maximum(counts - discount, 0) + removed * lower) / total
    return np.where(total > 0, p, lower)
