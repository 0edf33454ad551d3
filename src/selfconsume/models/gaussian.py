"""Gaussian family: full-covariance Gaussians in any dimension, all replicates as array operations.

The fit is closed form (weighted mean and covariance), with the `unbiased` (1/(n-1)) or `mle` (1/n)
estimator of the talk's warm-up. The population update is the exact maximiser of
E_real[log p] + lam * E_{p_t}[log p]: the moments of the mixture (p_real + lam p_t) / (1 + lam).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from selfconsume.models.base import MODELS, Params, Streams


class GaussianModelParams(Params):
    estimator: Literal["unbiased", "mle"] = "unbiased"


def weighted_moments(
    x: np.ndarray, weights: np.ndarray | None, unbiased: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Mean (R, d) and covariance (R, d, d) of x (R, n, d); 0/1-style weights drop samples.

    With weights w the unbiased estimator divides the weighted scatter by sum(w) - 1."""
    count, mean, scatter = scatter_stats(x, weights)
    return mean, covariance(count, scatter, unbiased)


def covariance(count: np.ndarray, scatter: np.ndarray, unbiased: bool) -> np.ndarray:
    """The estimator's covariance from the (weighted) count (R,) and scatter (R, d, d)."""
    denom = count - 1.0 if unbiased else count
    if np.any(denom <= 0):
        raise FloatingPointError("a replicate kept too few samples to fit a Gaussian")
    return scatter / denom[:, None, None]


def merge_stats(
    a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sufficient statistics (count, mean, scatter) of the union of two sets (Chan et al., 1979):
    the scatter gains n_a n_b / n (m_b - m_a)(m_b - m_a)^T."""
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    delta = mb - ma
    mean = ma + delta * (nb / n)[:, None]
    shift = (na * nb / n)[:, None, None] * delta[:, :, None] * delta[:, None, :]
    return n, mean, sa + sb + shift


def scatter_stats(
    x: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Weighted) count (R,), mean (R, d) and scatter sum w (x - mean)(x - mean)^T (R, d, d)."""
    r, n, d = x.shape
    if weights is None:
        mean = x.mean(axis=1)
        count = np.full(r, float(n))
        xc = x - mean[:, None, :]
        scatter = (
            np.einsum("rn,rn->r", xc[..., 0], xc[..., 0])[:, None, None]
            if d == 1
            else np.matmul(xc.transpose(0, 2, 1), xc)
        )
    else:
        count = weights.sum(axis=1)
        if np.any(count <= 0):
            raise FloatingPointError("a replicate kept no sample to fit a Gaussian")
        mean = np.einsum("rn,rnd->rd", weights, x) / count[:, None]
        xc = x - mean[:, None, :]
        scatter = np.matmul(xc.transpose(0, 2, 1), xc * weights[..., None])
    return count, mean, scatter


@MODELS.register("gaussian", GaussianModelParams)
class GaussianModel:
    """One Gaussian N(mean_r, cov_r) per replicate r; params: estimator = unbiased | mle."""

    population_schemes = frozenset({"replace", "mix"})
    population_curation = False

    def __init__(
        self, params: GaussianModelParams, dim: int, replicates: int, streams: Streams
    ) -> None:
        self.unbiased = params.estimator == "unbiased"
        self.dim = dim
        self.mean = np.zeros((replicates, dim))
        self.cov = np.broadcast_to(np.eye(dim), (replicates, dim, dim)).copy()
        self.count = np.zeros(replicates)
        self.scatter = np.zeros((replicates, dim, dim))

    def fit(
        self, x: np.ndarray, weights: np.ndarray | None, generation: int, warm: bool
    ) -> dict[str, np.ndarray]:
        self._set_stats(scatter_stats(x, weights))
        return {}

    def fit_more(self, x: np.ndarray, weights: np.ndarray | None) -> dict[str, np.ndarray]:
        """Refit on the previous training set plus x, from the sufficient statistics (what
        `accumulate` asks, in O(batch) instead of O(pool))."""
        self._set_stats(
            merge_stats((self.count, self.mean, self.scatter), scatter_stats(x, weights))
        )
        return {}

    def _set_stats(self, stats: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.count, self.mean, self.scatter = stats
        self.cov = covariance(self.count, self.scatter, self.unbiased)

    def sample(self, n: int, rng: np.random.Generator, generation: int) -> np.ndarray:
        r, d = self.mean.shape
        z = rng.standard_normal((r, n, d))
        if d == 1:
            z *= np.sqrt(self.cov[:, :, 0])[:, None, :]
        else:
            z = np.matmul(z, np.linalg.cholesky(self.cov).transpose(0, 2, 1))
        z += self.mean[:, None, :]
        return z

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        chol = np.linalg.cholesky(self.cov)
        diff = np.linalg.solve(chol[:, None], (x - self.mean[:, None, :])[..., None])[..., 0]
        logdet = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(-1)
        return -0.5 * ((diff**2).sum(-1) + logdet[:, None] + self.dim * np.log(2 * np.pi))

    def population_step(self, real: np.ndarray, lam: float | None, curation: Any) -> None:
        """Exact update: p_{t+1} has the mean and covariance of (p_real + lam p_t) / (1 + lam).

        p_real is the empirical real set; `replace` (lam None) leaves p_t unchanged."""
        if lam is None:
            return
        real_mean, real_cov = weighted_moments(real, None, unbiased=False)
        mean = (real_mean + lam * self.mean) / (1 + lam)
        second = (
            real_cov
            + real_mean[:, :, None] * real_mean[:, None, :]
            + lam * (self.cov + self.mean[:, :, None] * self.mean[:, None, :])
        ) / (1 + lam)
        self.mean, self.cov = mean, second - mean[:, :, None] * mean[:, None, :]

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "cov": self.cov, "count": self.count, "scatter": self.scatter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.cov = np.asarray(state["mean"]), np.asarray(state["cov"])
        self.count, self.scatter = np.asarray(state["count"]), np.asarray(state["scatter"])
