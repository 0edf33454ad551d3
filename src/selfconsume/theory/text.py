"""Exact laws of the collision probability S(p) = sum_w p(w)^2 of categorical fits retrained on
their own samples (Seddik et al. 2024, "How bad is training on synthetic data?"), and the mixed
analogue.

One fit. Let p_hat be the frequencies of N i.i.d. draws of p. Each count is Bin(N, p_w), so
E[p_hat_w^2] = p_w^2 + p_w (1 - p_w) / N and, summing over w,

    E[S(p_hat) | p] = (1 - 1/N) S(p) + 1/N,   i.e.   1 - E[S(p_hat) | p] = (1 - 1/N) (1 - S(p)).

Fully synthetic (replace). Iterating, after m fits starting from p with S(p) = S_0,

    E[S] = 1 - (1 - 1/N)^m (1 - S_0)                                   (Seddik et al.)

Indexing against our generations: generation 0 is the fit on the real set, generation t has been
refitted t times on N = n_synthetic * L tokens of its predecessor. So, conditioning on generation
0, E[S(p_t)] = 1 - (1 - 1/N)^t (1 - E[S(p_0)]) (`collision_replace`), exact whatever the real
text is, since only generation 0 sees it. When the real tokens are themselves i.i.d. draws of a
law q (markov_text with order 0) and n_real = n_synthetic, generation t is m = t + 1 fits from
S_0 = S(q): `seddik(t + 1, N, S(q))`.

Our `ngram` family with order 1 and add_k = 0 is exactly such a fit: its token law is the
(weighted) token frequencies of its training sequences, and its samples are i.i.d. tokens of that
law, so the N of the law is the number of tokens sampled per fit. Smoothing (add_k > 0), a
temperature psi != 1 or higher orders break it (their token law is not the frequencies).

Mixed (mix, lambda). Generation t + 1 fits the fixed real set (N_r tokens, frequencies r = p_0)
plus N_s = round(lambda n_real) L tokens of p_t, so p_{t+1} = w r + (1 - w) s with
w = N_r / (N_r + N_s) and s the frequencies of N_s draws of p_t. Then

    E[p_{t+1} | p_t] = w r + (1 - w) p_t,
    E[S(p_{t+1}) | p_t] = w^2 S(r) + 2 w (1 - w) <r, p_t> + (1 - w)^2 ((1 - 1/N_s) S(p_t) + 1/N_s).

Since <r, p_0> = S(r) and E[<r, p_{t+1}> | p_t] = w S(r) + (1 - w) <r, p_t>, E<r, p_t> = S(r) for
every t; with R = S(p_0), c = (1 - w)^2 (1 - 1/N_s) and b = (1 - (1 - w)^2) R + (1 - w)^2 / N_s,

    E[S(p_{t+1})] = b + c E[S(p_t)],   so   E[S(p_t)] = S* + c^t (R - S*),   S* = b / (1 - c),

given the real set. lambda -> inf (w -> 0) gives back the replace law; lambda = 0 keeps S = R. The
fixed point S* exceeds R by (1 - w)^2 (1 - R) / (N_s (1 - c)) only: real data bounds the collapse.

Support lost (the ngram family fitted by maximum likelihood, add_k = 0, psi = 1, under replace).
An n-gram survives a fit when the training set holds it at least once.

- Unigram (order 1), over generations. A token of probability q appears among N i.i.d. tokens
  with probability 1 - (1 - q)^N. Its count in the next fit is Bin(N, q) whatever the other tokens
  do (a multinomial's marginal), and its probability there is count / N, so its count X_t alone is
  a Markov chain (neutral Wright-Fisher, the discrete family's chain of `theory.discrete`):
  X_1 ~ Bin(N, p_0(w)), X_{t+1} ~ Bin(N, X_t / N), 0 absorbing. P(w lost by generation t) = P(X_t = 0), a row of the (N + 1)-state chain's t-th
  power (`unigram_support_lost`); the expected share of p_0's tokens lost is its mean over them.
  It tends to 1 - 1/|support of p_0| as t grows: in the end one token holds all N draws.
- Order n, one generation, given p_t. Sampling walks a chain on contexts (the n - 1 previous
  tokens, beginning-of-sequence padded) from the all-BOS context; n-gram g = (c, w) is absent
  from one sequence of L tokens iff the walk never takes the step c -> w, whose probability
  P_g = 1' (Q_g)^L e_BOS is the walk with that one step removed (a sub-stochastic matrix). The
  m training sequences are independent, so g is absent from all with probability P_g^m and

      E[n-grams of p_{t+1}] = sum_g (1 - P_g^m),   g over every (c, w) with p_t(w | c) > 0

  (unreachable contexts give P_g = 1; the rows of unseen contexts, backed off to the token
  frequencies, count where the walk reaches them). E[support lost] is p_t's reachable n-grams
  minus that (`ngram_support_step`). Over several generations the tables are random and the
  step law is not linear in them, so no closed form follows for n >= 2 (E f(p_t) != f(E p_t)).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from selfconsume.theory.discrete import count_laws


def seddik(m: ArrayLike, n: int, s0: ArrayLike) -> np.ndarray:
    """E[sum p^2] after m fits of n i.i.d. draws each, from a law of collision probability s0."""
    m, s0 = np.asarray(m, dtype=float), np.asarray(s0, dtype=float)
    return 1.0 - (1.0 - 1.0 / n) ** m * (1.0 - s0)


def collision_replace(t: ArrayLike, n_tokens: int, s0: ArrayLike) -> np.ndarray:
    """E[S(p_t)] under replace with n_tokens sampled per fit, given S(p_0) = s0 (generation 0 is
    the real fit; generation t has t synthetic fits)."""
    return seddik(t, n_tokens, s0)


def collision_mix(t: ArrayLike, n_real_tokens: int, n_synthetic_tokens: int, s0: ArrayLike):
    """E[S(p_t)] under mix (the fixed real set of n_real_tokens plus n_synthetic_tokens of p_t),
    given S(p_0) = s0, the real set's collision probability (see the module docstring)."""
    t, r = np.asarray(t, dtype=float), np.asarray(s0, dtype=float)
    if n_synthetic_tokens == 0:
        return np.broadcast_to(r, np.broadcast_shapes(t.shape, r.shape)).copy()
    w = n_real_tokens / (n_real_tokens + n_synthetic_tokens)
    c = (1 - w) ** 2 * (1 - 1 / n_synthetic_tokens)
    b = (1 - (1 - w) ** 2) * r + (1 - w) ** 2 / n_synthetic_tokens
    fixed = b / (1 - c)
    return fixed + c**t * (r - fixed)


def unigram_support_lost(t: int, n_tokens: int, p0: np.ndarray) -> np.ndarray:
    """E[share of p_0's tokens with p_t(w) = 0] (...,) under replace, for unigram laws p0 (..., V)
    fitted by maximum likelihood on n_tokens tokens per generation: the discrete family's
    Wright-Fisher count laws (`theory.discrete.count_laws`) started from p_0, t - 1 steps on."""
    p0 = np.asarray(p0, dtype=float)
    if t == 0:
        return np.zeros(p0.shape[:-1])
    lost = count_laws(t - 1, n_tokens, p0.ravel())[-1, :, 0].reshape(p0.shape)
    kept = p0 > 0
    return np.where(kept, lost, 0.0).sum(-1) / kept.sum(-1)


def ngram_support_step(
    conditionals: np.ndarray, vocab: int, n_sequences: int, length: int
) -> tuple[float, float]:
    """(reachable n-grams of p_t, E[n-grams of p_{t+1}]) for one replicate's table p(w | c)
    (C, V), C = (V + 1)^(n - 1) contexts as the ngram family indexes them, when p_{t+1} is the
    maximum-likelihood fit of n_sequences sequences of L tokens sampled from p_t (psi = 1)."""
    contexts = conditionals.shape[0]
    nxt = (np.arange(contexts)[:, None] * (vocab + 1) + np.arange(vocab)[None, :]) % contexts
    move = np.zeros((contexts * vocab, contexts))
    move[np.arange(contexts * vocab), nxt.ravel()] = 1.0  # step (c, w) -> next context
    grams = np.flatnonzero(conditionals.ravel() > 0)  # every g = c * V + w of positive p
    state = np.zeros((len(grams), contexts))
    state[:, contexts - 1] = 1.0  # all beginning-of-sequence
    reach = state[:1].copy()
    reached = np.zeros(contexts, dtype=bool)
    rows = np.arange(len(grams))
    for _ in range(length):
        reached |= reach[0] > 0
        flow = state[:, :, None] * conditionals[None]  # (G, C, V)
        flow.reshape(len(grams), -1)[rows, grams] = 0.0  # never take step g
        state = flow.reshape(len(grams), -1) @ move
        reach = (reach[:, :, None] * conditionals[None]).reshape(1, -1) @ move
    absent = state.sum(1)
    reachable = int(reached[grams // vocab].sum())
    return float(reachable), float(np.sum(1.0 - absent**n_sequences))
