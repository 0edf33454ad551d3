"""Gaussian family: full-covariance Gaussians in any dimension, all replicates as array operations.

The fit is closed form (weighted mean and covariance), with the `unbiased` (1/(n-1)) or `mle` (1/n)
estimator of the talk's warm-up. The population update is the exact maximiser of
E_data[log p] + lam * E_{p_t}[log p]: the moments of the mixture (p_data + lam p_t) / (1 + lam),
with p_data the source's exact distribution (`population_target: exact`, the infinite-sample limit:
only its mean and covariance matter) or the real set (`population_target: empirical`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from selfconsume.errors import ConfigError
from selfconsume.models.base import MODELS, Params, Streams


class GaussianModelParams(Params):
    estimator: Literal["unbiased", "mle"] = "unbiased"
    population_target: Literal["exact", "empirical"] = "exact"
    """What population mode takes as p_data: the source's `moments()`, or the real set's."""


def weighted_moments(
    x: np.ndarray, weights: np.ndarray | None, unbiased: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Mean (R, d) and covariance (R, d, d) of x (R, n, d); 0/1-style weights drop samples.

    With weights w the unbiased estimator divides the weighted scatter by sum(w) - 1."""
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
        if np.any(count <= int(unbiased)):
            raise FloatingPointError("a replicate kept too few samples to fit a Gaussian")
        mean = np.einsum("rn,rnd->rd", weights, x) / count[:, None]
        xc = x - mean[:, None, :]
        scatter = np.matmul(xc.transpose(0, 2, 1), xc * weights[..., None])
    denom = count - 1.0 if unbiased else count
    return mean, scatter / denom[:, None, None]


@MODELS.register("gaussian", GaussianModelParams)
class GaussianModel:
    """One Gaussian N(mean_r, cov_r) per replicate r; params: estimator = unbiased | mle,
    population_target = exact | empirical."""

    population_schemes = frozenset({"replace", "mix"})
    population_curation = False

    def __init__(
        self, params: GaussianModelParams, dim: int, replicates: int, streams: Streams
    ) -> None:
        self.unbiased = params.estimator == "unbiased"
        self.target = params.population_target
        self.dim = dim
        self.mean = np.zeros((replicates, dim))
        self.cov = np.broadcast_to(np.eye(dim), (replicates, dim, dim)).copy()

    def fit(
        self, x: np.ndarray, weights: np.ndarray | None, generation: int, warm: bool
    ) -> dict[str, np.ndarray]:
        self.mean, self.cov = weighted_moments(x, weights, self.unbiased)
        return {}

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

    @staticmethod
    def exact_target(source: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """The source's exact mean (d,) and covariance (d, d), or None (no `moments()`)."""
        moments = getattr(source, "moments", None)
        return None if moments is None else moments()

    def _data_moments(self, real: np.ndarray, source: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean (R, d) and covariance (R, d, d) of p_data: exact, or the real set's (1/n)."""
        if self.target == "empirical":
            return weighted_moments(real, None, unbiased=False)
        exact = self.exact_target(source)
        if exact is None:
            raise ConfigError(
                "model.params.population_target: the data source has no exact mean and "
                "covariance (use empirical)"
            )
        (mean, cov), r = exact, real.shape[0]
        return np.tile(mean, (r, 1)), np.tile(cov, (r, 1, 1))

    def population_start(self, real: np.ndarray, source: Any) -> None:
        """p_0 of population mode: the exact p_data, or (empirical) the fit of the real set."""
        if self.target == "empirical":
            self.fit(real, None, 0, False)
        else:
            self.mean, self.cov = self._data_moments(real, source)

    def population_step(
        self, real: np.ndarray, lam: float | None, curation: Any, source: Any
    ) -> None:
        """Exact update: p_{t+1} has the mean and covariance of (p_data + lam p_t) / (1 + lam).

        `replace` (lam None) leaves p_t unchanged."""
        if lam is None:
            return
        data_mean, data_cov = self._data_moments(real, source)
        mean = (data_mean + lam * self.mean) / (1 + lam)
        second = (
            data_cov
            + data_mean[:, :, None] * data_mean[:, None, :]
            + lam * (self.cov + self.mean[:, :, None] * self.mean[:, None, :])
        ) / (1 + lam)
        self.mean, self.cov = mean, second - mean[:, :, None] * mean[:, None, :]

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "cov": self.cov}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.cov = np.asarray(state["mean"]), np.asarray(state["cov"])
