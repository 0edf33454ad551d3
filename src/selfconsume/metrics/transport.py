"""Optimal-transport distances between samples: exact W2 (POT) and sliced W2 (sorting)."""

from __future__ import annotations

import numpy as np
import ot

from selfconsume.metrics.base import METRICS, MetricContext, MetricValues

SLICED_PROJECTIONS = 256
CHUNK_ELEMENTS = 2**24  # largest temporary array of sliced_w2, in elements (128 MiB of float64)
EMD_MAX_ITER = 10_000_000


def _subsample(x: np.ndarray, size: int, rng: np.random.Generator | None) -> np.ndarray:
    """At most `size` of the rows of x (n, d): the first ones (the rows are i.i.d.) or, with rng,
    a uniform draw without replacement."""
    if len(x) <= size:
        return x
    if rng is None:
        return x[:size]
    return x[rng.choice(len(x), size=size, replace=False)]


def w2_empirical(
    x: np.ndarray, y: np.ndarray, max_points: int = 1000, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Exact W2 between the empirical measures of x (R, n, d) and y (R, m, d), per replicate: (R,).

    Each side is cut to at most `max_points` points (the first ones, or a random subset with rng),
    then POT's network simplex solves the transport with squared Euclidean cost and uniform weights.
    POT has no batched solver, so this loops over replicates."""
    out = np.empty(len(x))
    for r in range(len(x)):
        xs, ys = _subsample(x[r], max_points, rng), _subsample(y[r], max_points, rng)
        cost = ot.dist(xs, ys, metric="sqeuclidean")
        a, b = np.full(len(xs), 1 / len(xs)), np.full(len(ys), 1 / len(ys))
        out[r] = ot.emd2(a, b, cost, numItermax=EMD_MAX_ITER)
    return np.sqrt(np.clip(out, 0, None))


def w2_1d_sq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact squared W2 between 1-D empirical measures along axis 1: x (R, n, P), y (R, m, P) ->
    (R, P). Integrates (F^-1(u) - G^-1(u))^2 over the pieces where both quantile functions are flat."""
    n, m = x.shape[1], y.shape[1]
    levels = np.union1d(np.arange(n + 1) / n, np.arange(m + 1) / m)
    mid, width = (levels[1:] + levels[:-1]) / 2, np.diff(levels)
    xq = np.sort(x, axis=1)[:, np.floor(mid * n).astype(int)]
    yq = np.sort(y, axis=1)[:, np.floor(mid * m).astype(int)]
    return np.einsum("l,rlp->rp", width, (xq - yq) ** 2)


def sliced_w2(
    x: np.ndarray, y: np.ndarray, n_projections: int, rng: np.random.Generator
) -> np.ndarray:
    """Sliced W2 of x (R, n, d) and y (R, m, d): sqrt of the mean over random unit directions θ
    (shared by all replicates) of the exact 1-D W2^2 between the projections: (R,)."""
    theta = rng.standard_normal((n_projections, x.shape[-1]))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    per_direction = len(x) * (x.shape[1] + y.shape[1])
    step = max(1, CHUNK_ELEMENTS // per_direction)
    total = np.zeros(len(x))
    for start in range(0, n_projections, step):
        t = theta[start : start + step].T
        total += w2_1d_sq(x @ t, y @ t).sum(-1)
    return np.sqrt(total / n_projections)


@METRICS.register("sliced_w2", outputs=("sliced_w2",))
def sliced_w2_metric(ctx: MetricContext) -> MetricValues:
    """sliced_w2: sliced W2 between n_test samples of p_t and the test set, over 256 random
    directions (drawn from the stream metric-sliced_w2 at each generation, shared by replicates)."""
    rng = ctx.streams.numpy("metric-sliced_w2", ctx.generation)
    return {"sliced_w2": sliced_w2(ctx.samples, ctx.test, SLICED_PROJECTIONS, rng)}
