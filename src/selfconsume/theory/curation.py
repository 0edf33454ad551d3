"""Exact population update of curated retraining on a finite set of states (Ferbach et al., 2024).

Bradley–Terry curation draws K i.i.d. candidates X_1..X_K ~ p and keeps X_k with probability
w(X_k) / sum_j w(X_j), w = e^{beta r}. The kept sample has law p(x) H^K_p(x), with

    H^K_p(x) = E[ K w(x) / (w(x) + sum_{j<K} w(X_j)) ],   X_1..X_{K-1} ~ p i.i.d.

Derivation of the exact one-dimensional form: with 1/a = int_0^inf e^{-s a} ds (a > 0) and the
independence of the X_j, writing S = sum_{j<K} w(X_j) and phi(s) = E_p[e^{-s w(X)}],

    E[1 / (w(x) + S)] = int_0^inf e^{-s w(x)} E[e^{-s S}] ds = int_0^inf e^{-s w(x)} phi(s)^{K-1} ds,

so H^K_p(x) = K int_0^inf w(x) e^{-s w(x)} phi(s)^{K-1} ds. On a discrete p, phi is a finite sum.
With s = e^u the integrand becomes K g_x(u) phi(e^u)^{K-1}, g_x(u) = w(x) e^u exp(-w(x) e^u): a
Gumbel-shaped bump centred at u = -log w(x), decaying like e^u on the left and doubly exponentially
on the right; phi(e^u)^{K-1} is smooth and in [0, 1]. The trapezoidal rule on the whole line converges
geometrically in 1/h for such analytic, rapidly decaying integrands, so a uniform u-grid of step 1/16
covering every bump (with 40 e-folds of margin on the left, more by log K) gives H to about
machine precision, for all states and replicates at once. No Monte Carlo is involved.

As K -> inf, K / (w(x) + S) -> 1 / E_p[w] (law of large numbers), so H -> w / E_p[w]: the
RLHF-like tilt p e^{beta r} / E_p[e^{beta r}]. With real data in proportion 1 : lam, the maximiser
of E_data[log p] + lam E_curated[log p] is the mixture (p_data + lam p H) / (1 + lam).
"""

from __future__ import annotations

import math

import numpy as np

STEP = 1.0 / 16.0
LEFT_MARGIN = 40.0  # e-folds of the e^u tail left out below the grid: relative error e^-40
RIGHT_MARGIN = 4.0  # exp(-e^4) ~ 2e-24 left out above the grid
MAX_LOG_RANGE = 740.0  # states with w / w_max below e^-740 have w = 0 in float64 anyway


def tilt_weights(rewards: np.ndarray, beta: float) -> np.ndarray:
    """w = e^{beta (r - max r)}: Bradley–Terry weights scaled so the largest is 1 (H is scale-free)."""
    z = beta * np.asarray(rewards, dtype=float)
    return np.exp(z - z.max())


def h_factor(p: np.ndarray, rewards: np.ndarray, k: float, beta: float) -> np.ndarray:
    """H^K_p(x) for every state: p (..., S) probabilities, rewards (S,); returns (..., S).

    k = inf gives the limit w / E_p[w]. Computed exactly by the 1-D integral of the module doc."""
    p = np.asarray(p, dtype=float)
    w = tilt_weights(rewards, beta)
    if math.isinf(k):
        return w / (p @ w)[..., None]
    log_w = np.log(np.clip(w, np.exp(-MAX_LOG_RANGE), None))
    lo = -LEFT_MARGIN - math.log(k)  # below the bump of the largest weight (w = 1)
    hi = -log_w.min() + RIGHT_MARGIN
    u = np.arange(lo, hi + STEP, STEP)
    s = np.exp(u)
    phi = p @ np.exp(-np.outer(w, s))  # (..., U): E_p[exp(-s w(X))]
    power = np.power(phi, k - 1.0)
    kernel = w[:, None] * s * np.exp(-np.outer(w, s))  # (S, U): g_x(u)
    return k * STEP * (power @ kernel.T)


def curated(p: np.ndarray, rewards: np.ndarray, k: float, beta: float) -> np.ndarray:
    """Law of the kept sample, p H^K_p, renormalised against rounding (it sums to 1 exactly)."""
    q = np.asarray(p, dtype=float) * h_factor(p, rewards, k, beta)
    return q / q.sum(axis=-1, keepdims=True)


def tilted(p: np.ndarray, rewards: np.ndarray, beta: float) -> np.ndarray:
    """The K -> inf closed form p e^{beta r} / E_p[e^{beta r}]."""
    q = np.asarray(p, dtype=float) * tilt_weights(rewards, beta)
    return q / q.sum(axis=-1, keepdims=True)


def thresholded(p: np.ndarray, rewards: np.ndarray, threshold: float) -> np.ndarray:
    """Unnormalised law of the kept samples of the `threshold` filter: p 1[r >= threshold]."""
    return np.asarray(p, dtype=float) * (np.asarray(rewards) >= threshold)


def top_fraction(p: np.ndarray, rewards: np.ndarray, fraction: float) -> np.ndarray:
    """Law of the kept samples of `top_fraction`: the top `fraction` of p's mass by reward.

    A state is kept whole if all higher-reward mass fits in the fraction, partly at the boundary
    (ties share the boundary in proportion to their mass), not at all below it."""
    p = np.asarray(p, dtype=float)
    r = np.asarray(rewards, dtype=float)
    above = (p[..., None, :] * (r[None, :] > r[:, None])).sum(-1)  # mass strictly above each state
    level = (p[..., None, :] * (r[None, :] == r[:, None])).sum(
        -1
    )  # mass of each state's reward level
    share = np.clip((fraction - above) / np.where(level > 0, level, 1.0), 0.0, 1.0)
    return p * share / fraction


def mixed(p_data: np.ndarray, kept: np.ndarray, lam: float | None) -> np.ndarray:
    """Next generation from the law of the kept synthetic samples: replace (lam None) or mix.

    `kept` may be unnormalised (a filter keeping a fraction of its draws): its total mass is the
    synthetic weight, so mixing gives (p_data + lam kept) / (1 + lam sum(kept))."""
    if lam is None:
        return kept / kept.sum(axis=-1, keepdims=True)
    return (p_data + lam * kept) / (1.0 + lam * kept.sum(axis=-1, keepdims=True))


def step(
    p: np.ndarray,
    p_data: np.ndarray,
    rewards: np.ndarray | None,
    lam: float | None,
    kind: str | None = None,
    k: float = 1,
    beta: float = 1.0,
    fraction: float = 1.0,
    threshold: float = 0.0,
) -> np.ndarray:
    """One exact generation: curate p (kind None: no curation), then replace or mix with p_data."""
    if kind is None:
        kept = np.asarray(p, dtype=float)
    elif kind == "bradley_terry":
        kept = curated(p, rewards, k, beta)
    elif kind == "top_fraction":
        kept = top_fraction(p, rewards, fraction)
    elif kind == "threshold":
        kept = thresholded(p, rewards, threshold)
    else:
        raise ValueError(f"unknown curation kind {kind!r}")
    return mixed(np.asarray(p_data, dtype=float), kept, lam)
