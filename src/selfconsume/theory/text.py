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
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


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
