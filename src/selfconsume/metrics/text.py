"""Metrics of a text model p_t: perplexity on held-out real text, distinct-n and the real n-gram
support its samples lost, its token law's entropy and collision probability, the per-token KL
to a source with an exact law (group `text`), and the perplexity of p_t's samples under the
generation-0 model p_0 with its quantiles (group `p0_perplexity`, Shumailov et al.'s histograms).

Any family with exact log-likelihoods (`HasLogProb`: ngram, transformer) works; the token law is
the family's own where it has one (`unigram_probs`), else its samples' frequencies. Sample-based
values read ctx.samples (n_test sequences of p_t per replicate); n-grams never cross a sequence's
end. Every sequence is a window of L tokens (no end token), so sequence-length statistics do not
apply: a window's length is L by construction.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from selfconsume.data.base import data_is
from selfconsume.data.text import KnownLanguage, Tokens
from selfconsume.metrics.base import METRICS, MetricContext, MetricValues
from selfconsume.models.base import HasLogProb, model_is
from selfconsume.registry import Example

ORDERS = (1, 2, 3)
"""The n of distinct_n and support_lost_n."""


@runtime_checkable
class HasUnigram(Protocol):
    def unigram_probs(self) -> np.ndarray | None:
        """p_t's exact token law (R, V), or None where the family has no closed form."""
        ...


def ngram_keys(x: np.ndarray, n: int, vocab: int) -> np.ndarray:
    """A unique int64 key per (replicate, n-gram) of sequences x (R, m, L): (R, m, L - n + 1),
    replicate r's keys in [r V^n, (r + 1) V^n)."""
    width = x.shape[-1] - n + 1
    keys = np.zeros((*x.shape[:-1], max(width, 0)), dtype=np.int64)
    for j in range(n):
        keys = keys * vocab + x[..., j : j + width]
    return keys + np.arange(x.shape[0])[:, None, None] * vocab**n


def unique(keys: np.ndarray) -> np.ndarray:
    """The sorted distinct keys: a sort and a mask, many times faster than np.unique's hash here."""
    flat = np.sort(keys, axis=None)
    return flat[np.concatenate([[True], flat[1:] != flat[:-1]])] if flat.size else flat


def distinct(x: np.ndarray, n: int, vocab: int) -> np.ndarray:
    """distinct-n (R,): distinct n-grams over all n-grams of each replicate's sequences."""
    keys = ngram_keys(x, n, vocab)
    total = keys[0].size
    return np.bincount(unique(keys) // vocab**n, minlength=x.shape[0]) / max(total, 1)


def support_lost(real: np.ndarray, samples: np.ndarray, n: int, vocab: int) -> np.ndarray:
    """The fraction (R,) of the real set's distinct n-grams that no sample of p_t contains."""
    have = unique(ngram_keys(real, n, vocab))
    lost = ~np.isin(have, ngram_keys(samples, n, vocab))
    r = real.shape[0]
    owner = have // vocab**n
    with np.errstate(invalid="ignore"):
        return np.bincount(owner[lost], minlength=r) / np.bincount(owner, minlength=r)


def token_law(ctx: MetricContext, vocab: int) -> np.ndarray:
    """p_t's token law (R, V): exact where the family has it, else its samples' frequencies."""
    exact = ctx.model.unigram_probs() if isinstance(ctx.model, HasUnigram) else None
    if exact is not None:
        return exact
    x = ctx.samples
    flat = (np.arange(x.shape[0])[:, None, None] * vocab + x).ravel()
    counts = np.bincount(flat, minlength=x.shape[0] * vocab).reshape(x.shape[0], vocab)
    return counts / counts.sum(1, keepdims=True)


@METRICS.register(
    "text",
    needs=[
        model_is(HasLogProb, "a family with exact log-likelihoods (ngram, transformer)"),
        data_is(Tokens, "token data (data.kind markov_text, stdlib_text or text_file)"),
    ],
    example=Example(
        config={
            "data": {"kind": "markov_text", "params": {"vocab": 4, "length": 6}},
            "model": {"kind": "ngram"},
        }
    ),
    outputs=(
        "perplexity",
        "distinct_{n}",
        "support_lost_{n}",
        "unigram_entropy",
        "collision",
        "kl_per_token",
    ),
)
def text(ctx: MetricContext) -> MetricValues:
    """perplexity = exp(-mean log p_t per test token); distinct_n and support_lost_n (n = 1..3)
    of p_t's samples; unigram_entropy (nats) and collision = sum_w p_t(w)^2 of p_t's token law
    (exact for a unigram model); kl_per_token = mean (log P(x) - log p_t(x)) / L over the test
    set, P the source's exact law (markov_text only): unbiased for KL(P || p_t) / L."""
    vocab, length = ctx.source.vocab_size, ctx.test.shape[-1]
    log_q = ctx.model.log_prob(ctx.test)
    out = {"perplexity": np.exp(-log_q.mean(1) / length)}
    for n in ORDERS:
        out[f"distinct_{n}"] = distinct(ctx.samples, n, vocab)
        out[f"support_lost_{n}"] = support_lost(ctx.real, ctx.samples, n, vocab)
    p = token_law(ctx, vocab)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["unigram_entropy"] = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    out["collision"] = (p**2).sum(1)
    if isinstance(ctx.source, KnownLanguage):
        out["kl_per_token"] = (ctx.source.log_prob(ctx.test) - log_q).mean(1) / length
    return out


PERCENTILES = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99)
"""Levels k of p0_perplexity_q{k}: enough for the report to draw each generation's histogram
(`report.text`), q50, q90 and q99 being the tail Shumailov et al. watch."""


@METRICS.register(
    "p0_perplexity",
    needs=[
        model_is(HasLogProb, "a family with exact log-likelihoods (ngram, transformer)"),
        data_is(Tokens, "token data (data.kind markov_text, stdlib_text or text_file)"),
    ],
    example=Example(
        config={
            "data": {"kind": "markov_text", "params": {"vocab": 4, "length": 6}},
            "model": {"kind": "ngram"},
        }
    ),
    outputs=("p0_perplexity", "p0_perplexity_q{k}"),
    reference=True,
)
def p0_perplexity(ctx: MetricContext) -> MetricValues:
    """Perplexity of p_t's samples under p_0, the generation-0 model (Shumailov et al.):
    p0_perplexity = exp(mean of -log p_0(x) / L over the samples), and p0_perplexity_q{k} the k-th
    percentile of the samples' own perplexities exp(-log p_0(x) / L) (inverted CDF, so always a
    sample's value; inf where p_0 gives a sample probability 0)."""
    length = ctx.samples.shape[-1]
    nll = -ctx.reference.log_prob(ctx.samples) / length
    out = {"p0_perplexity": np.exp(nll.mean(1))}
    levels = np.percentile(nll, PERCENTILES, axis=1, method="inverted_cdf")
    out.update({f"p0_perplexity_q{k}": np.exp(q) for k, q in zip(PERCENTILES, levels, strict=True)})
    return out
