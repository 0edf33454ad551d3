"""Gaussian kernel density estimates, all replicates as array operations.

The kernel covariance is factor^2 times the (weighted) data covariance with Scott's or Silverman's
factor (as scipy's gaussian_kde), or h^2 I for a fixed bandwidth h in data units. Sampling picks a
training point (with probability proportional to its weight: weight-0 points are never picked) and
adds kernel noise, scaled by the sampling bias psi (psi < 1 sharpens the kernel, not the choice of
point: the fitted kernel, and `log_prob`, are unchanged). A KDE has no
parameters to fine-tune: `fit` always rebuilds it from its data, so a warm start has no effect.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import PositiveFloat
from scipy.special import logsumexp

from selfconsume.memory import COPIES, FLOAT64, Dim, Term
from selfconsume.models.base import MODELS, ImageModel, SamplingParams, Streams
from selfconsume.models.gaussian import weighted_moments

CHUNK_ELEMENTS = 1 << 22
"""Pairwise distances held at once by `log_prob` (query points are processed in chunks)."""


class KDEParams(SamplingParams):
    bandwidth: Literal["scott", "silverman"] | PositiveFloat = "scott"


def categorical(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Index drawn with probability proportional to `weights` (R, m) for each u ~ U[0, 1) of
    (R, n): the first i whose cumulative weight exceeds u times the total, so a weight-0 index is
    never drawn (whatever the rounding of the cumulative sum)."""
    c = np.cumsum(weights, axis=1)
    return (c[:, None, :] <= u[..., None] * c[:, -1:, None]).sum(-1)


def bandwidth_factor(rule: str, n_eff: np.ndarray, dim: int) -> np.ndarray:
    """Scott's n^(-1/(d+4)) or Silverman's (n (d+2) / 4)^(-1/(d+4)) per replicate."""
    if rule == "scott":
        return n_eff ** (-1.0 / (dim + 4))
    return (n_eff * (dim + 2) / 4.0) ** (-1.0 / (dim + 4))


@MODELS.register("kde", KDEParams)
class KDE(ImageModel):
    """Gaussian kernel density per replicate; params: bandwidth = scott | silverman | h > 0, psi
    (kernel noise times psi when sampling)."""

    # an ImageModel: flattened images work as any vectors (use a fixed bandwidth: pixels that
    # never vary make the data covariance singular)

    @classmethod
    def memory_terms(cls, params: KDEParams, replicates: float, dim: Dim) -> list[Term]:
        """Each replicate's kernel covariance (d, d) and its Cholesky factor."""
        key, d = dim
        return [Term("covariances", {"replicates": replicates, key: d * d}, FLOAT64 * COPIES)]

    def __init__(self, params: KDEParams, dim: int, replicates: int, streams: Streams) -> None:
        self.p, self.dim = params, dim
        self.points = np.zeros((replicates, 1, dim))
        self.weights = np.ones((replicates, 1))
        self.chol = np.broadcast_to(np.eye(dim), (replicates, dim, dim)).copy()

    def fit(
        self, x: np.ndarray, weights: np.ndarray | None, generation: int, warm: bool
    ) -> dict[str, np.ndarray]:
        """Keep the (weighted) points and set the kernel; `warm` is ignored (nothing to continue)."""
        w = np.ones(x.shape[:2]) if weights is None else np.asarray(weights, dtype=float)
        w = w / w.sum(axis=1, keepdims=True)
        if isinstance(self.p.bandwidth, str):
            n_eff = 1.0 / (w**2).sum(axis=1)
            _, cov = weighted_moments(x, w, unbiased=False)
            factor = bandwidth_factor(self.p.bandwidth, n_eff, self.dim)
            self.chol = np.linalg.cholesky(cov) * factor[:, None, None]
        else:
            self.chol = np.broadcast_to(self.p.bandwidth * np.eye(self.dim), self.chol.shape).copy()
        self.points, self.weights = np.asarray(x, dtype=float).copy(), w
        return {}

    def sample(self, n: int, rng: np.random.Generator, generation: int) -> np.ndarray:
        """A training point drawn by weight plus N(0, psi^2 kernel covariance) noise."""
        r = self.points.shape[0]
        idx = categorical(rng.random((r, n)), self.weights)
        z = rng.standard_normal((r, n, self.dim))
        centre = np.take_along_axis(self.points, idx[..., None], axis=1)
        return centre + np.matmul(z, (self.p.psi * self.chol).transpose(0, 2, 1))

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """log sum_i w_i N(x; x_i, H) with whitened distances, in chunks of query points."""
        inv = np.linalg.inv(self.chol).transpose(0, 2, 1)
        pts = np.matmul(self.points, inv)
        pts_sq = (pts**2).sum(-1)[:, None, :]
        with np.errstate(divide="ignore"):
            logw = np.log(self.weights)[:, None, :]
        const = np.log(np.diagonal(self.chol, axis1=1, axis2=2)).sum(-1)[:, None]
        const = const + 0.5 * self.dim * np.log(2 * np.pi)
        chunk = max(1, CHUNK_ELEMENTS // (pts.shape[0] * pts.shape[1]))
        out = []
        for start in range(0, x.shape[1], chunk):
            q = np.matmul(x[:, start : start + chunk], inv)
            sq = (q**2).sum(-1)[..., None] + pts_sq - 2 * np.matmul(q, pts.transpose(0, 2, 1))
            out.append(logsumexp(logw - 0.5 * np.maximum(sq, 0.0), axis=2))
        return np.concatenate(out, axis=1) - const

    def state_dict(self) -> dict[str, Any]:
        return {
            "points": self.points.copy(),
            "weights": self.weights.copy(),
            "chol": self.chol.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("points", "weights", "chol"):
            setattr(self, key, np.array(state[key], dtype=float))
