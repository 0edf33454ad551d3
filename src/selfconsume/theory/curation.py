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
on the right; phi(e^u)^{K-1} is smooth and in [0, 1]. The trapezoidal rule on the whole line
converges geometrically in 1/h for such analytic, rapidly decaying integrands, so a u-grid of step
1/16 covering every bump (40 e-folds of margin on its left, more by log K, 4 on its right) gives H
to about machine precision, for all states and replicates at once. The grid is the union of the
bumps' windows, and each chain of overlapping windows is measured from its own best state c
(log(w(x) s) = v + beta (r_x - r_c), u = v - log w(c)), so any finite beta works: the weights of
states far below the best never underflow, far-apart bumps leave gaps the grid skips, and no
coordinate grows with beta (at beta (r_max - r_min) ~ 1e15 a global u would lose the bumps'
positions, and H its argmax limit). No Monte Carlo is involved.

As beta -> inf the kept sample is the best of the K candidates, ties split uniformly (`argmax_h`).

As K -> inf, K / (w(x) + S) -> 1 / E_p[w] (law of large numbers), so H -> w / E_p[w]: the
RLHF-like tilt p e^{beta r} / E_p[e^{beta r}]. Iterated without real data (`replace`), t tilts of
p_0 give p_t ∝ p_0 e^{t beta r} (`iterated_tilt`): the maximiser of E_q[r] - KL(q || p_0) / (t beta),
KL-regularised reward maximisation (RLHF) whose coefficient 1/(t beta) shrinks with t. With real
data in proportion 1 : lam, the maximiser of E_data[log p] + lam E_curated[log p] is the mixture
(p_data + lam p H) / (1 + lam).
"""

from __future__ import annotations

import math

import numpy as np

STEP = 1.0 / 16.0
LEFT_MARGIN = 40.0  # e-folds of the e^u tail left out below each bump: relative error e^-40
RIGHT_MARGIN = 4.0  # exp(-e^4) ~ 2e-24 left out above each bump
MAX_LOG = 1e300
"""Cap of log(w s): beyond it w s is infinite either way, and the cap keeps inf - inf out."""


def log_tilt(rewards: np.ndarray, beta: float, p: np.ndarray | None = None) -> np.ndarray:
    """log w = beta (r - r_top) <= 0 on p's support: Bradley–Terry log-weights, the best state's 0
    (H is scale-free). r_top is the best reward of p's support (..., 1), of every state if p is None.

    Kept as logarithms: at beta (r_max - r_min) beyond ~745 the small weights underflow to 0 while
    the curation still orders them (it matters when no better candidate is drawn). The difference
    r - r_top is taken before scaling by beta, so the best level is exactly 0 at any beta, and a
    tie of the best level is never split by the rounding of a huge beta r."""
    r = np.asarray(rewards, dtype=float)
    if p is None:
        top = r.max()
    else:
        top = np.max(np.where(np.asarray(p) > 0, r, -np.inf), axis=-1, keepdims=True)
    delta = r - top
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(delta == 0, 0.0, beta * delta)


def _grid(rewards: np.ndarray, beta: float, k: float) -> tuple[np.ndarray, np.ndarray]:
    """The integration grid as pairs (anchor reward r_c, v) with u = v - log w(c): step STEP on
    the union of one window per state around its bump.

    A window spans LEFT_MARGIN + log K e-folds left of the bump and RIGHT_MARGIN right of it; a
    state's integrand is negligible outside its own window, so gaps between far-apart bumps (a
    large beta (r_max - r_min)) are skipped and the grid stays small at any beta. States whose
    windows chain together form a cluster, measured from its best state c: log(w(x) s) =
    v + beta (r_x - r_c) stays exact however far the clusters lie apart (a global u ~ beta r
    loses the bump's position once beta (r_max - r_min) nears 1e15, and its index overflows)."""
    r = np.asarray(rewards, dtype=float)
    lo = -LEFT_MARGIN - math.log(k)
    width = math.ceil((RIGHT_MARGIN - lo) / STEP) + 1
    order = np.argsort(-r, kind="stable")
    gaps = beta * -np.diff(r[order])  # bump spacing in e-folds, >= 0
    cluster = np.empty(r.size, dtype=np.int64)
    cluster[order] = np.concatenate([[0], np.cumsum(gaps > RIGHT_MARGIN - lo)])
    anchor = r[order][np.searchsorted(cluster[order], np.arange(cluster.max() + 1))]
    offset = beta * (r - anchor[cluster])  # bump of x at v = -offset, |offset| < S * width STEP
    start = np.floor((lo - offset) / STEP).astype(np.int64)
    first = start.min()
    span = int(start.max() - first) + width  # one key per (cluster, grid index)
    keys = np.unique((cluster * span + start - first)[:, None] + np.arange(width))
    return anchor[keys // span], (keys % span + first) * STEP


def argmax_h(p: np.ndarray, rewards: np.ndarray, k: float) -> np.ndarray:
    """H^K at beta = inf: keep the best of K candidates, ties split uniformly.

    The best level is the one of x with probability (1 - A)^K - (1 - A - L)^K, A the mass above
    x's reward and L the mass at it; x gets the share p(x) / L of it, so H = that probability / L
    (K (1 - A)^{K-1} at L = 0, the limit). K = inf keeps the top level of p's support:
    H = 1[A = 0] / L."""
    p = np.asarray(p, dtype=float)
    r = np.asarray(rewards, dtype=float)
    above = p @ (r[None, :] > r[:, None]).T  # (..., S): mass strictly above each state
    level = p @ (r[None, :] == r[:, None]).T  # (..., S): mass at each state's reward
    with np.errstate(divide="ignore", invalid="ignore"):
        if math.isinf(k):
            return np.where(above <= 0, 1.0 / level, 0.0)
        a = np.clip(1.0 - above, 0.0, 1.0)
        ratio = np.clip(level / a, 0.0, 1.0)
        # ((1-A)^K - (1-A-L)^K) / L = a^K (1 - (1 - L/a)^K) / L, without cancellation
        h = a**k * -np.expm1(k * np.log1p(-ratio)) / level
        return np.where(level > 0, h, k * a ** (k - 1.0))


def h_factor(p: np.ndarray, rewards: np.ndarray, k: float, beta: float) -> np.ndarray:
    """H^K_p(x) for every state: p (..., S) probabilities, rewards (S,); returns (..., S).

    k = inf gives the limit w / E_p[w], beta = inf the argmax limit (`argmax_h`). Computed exactly
    by the 1-D integral of the module doc, in logarithms (stable at any beta)."""
    p = np.asarray(p, dtype=float)
    if math.isinf(beta):
        return argmax_h(p, rewards, k)
    r = np.asarray(rewards, dtype=float)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if math.isinf(k):  # scaled by the best weight of p's support, so E_p[w] cannot underflow
            w = np.exp(log_tilt(r, beta, p))
            return w / (p * np.where(p > 0, w, 0.0)).sum(axis=-1, keepdims=True)
        anchor, v = _grid(r, beta, k)
        # (S, U): log(w(x) s) with s = e^u; capped so that a weight beyond overflow gives 0, not NaN
        a = np.minimum(v + beta * (r[:, None] - anchor), MAX_LOG)
        ws = np.exp(a)
        phi = p @ np.exp(-ws)  # (..., U): E_p[exp(-s w(X))]
        kernel = np.exp(a - ws)  # (S, U): g_x(u) = w(x) s exp(-w(x) s)
    return k * STEP * (np.power(phi, k - 1.0) @ kernel.T)


def curated(p: np.ndarray, rewards: np.ndarray, k: float, beta: float) -> np.ndarray:
    """Law of the kept sample, p H^K_p, renormalised against rounding (it sums to 1 exactly)."""
    p = np.asarray(p, dtype=float)
    with np.errstate(invalid="ignore"):  # H may be inf off p's support, where p H is 0
        q = np.where(p > 0, p * h_factor(p, rewards, k, beta), 0.0)
    return q / q.sum(axis=-1, keepdims=True)


def tilted(p: np.ndarray, rewards: np.ndarray, beta: float) -> np.ndarray:
    """The K -> inf closed form p e^{beta r} / E_p[e^{beta r}] (beta = inf: p on its best level)."""
    return curated(p, rewards, math.inf, beta)


def iterated_tilt(p0: np.ndarray, rewards: np.ndarray, beta: float, t: int) -> np.ndarray:
    """p_t ∝ p_0 e^{t beta r}: t exact K = inf curation steps of `replace` from p_0 (..., S).

    It is argmax_q E_q[r] - c KL(q || p_0) at c = 1/(t beta): the first-order condition
    r - c log(q / p_0) = const has this q as its solution, and the objective is strictly concave.
    Computed in logarithms (log p_0 + t beta (r - r_top), r_top the best reward of p_0's support),
    so large t beta never overflows and ties at the top keep p_0's ratios exactly;
    beta must be finite (at beta = inf one step already keeps only p_0's best level)."""
    if not math.isfinite(beta):
        raise ValueError("iterated_tilt needs a finite beta")
    p0 = np.asarray(p0, dtype=float)
    with np.errstate(divide="ignore"):
        log_q = np.log(p0) + log_tilt(rewards, t * beta, p0)
    q = np.exp(log_q - np.max(log_q, axis=-1, keepdims=True))
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
    synthetic weight, so mixing gives (p_data + lam kept) / (1 + lam sum(kept)). Replacing by a
    `kept` of mass 0 (a filter that keeps nothing) gives NaN."""
    if lam is None:
        with np.errstate(invalid="ignore"):
            return kept / kept.sum(axis=-1, keepdims=True)
    return (p_data + lam * kept) / (1.0 + lam * kept.sum(axis=-1, keepdims=True))
