"""Gaussian real data in any dimension: N(mean, cov), with cov = std^2 I or a full matrix."""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from selfconsume.data.base import DATA, Params

MAX_DIM = 4096
"""Largest dimension of Gaussian data (its covariance and Cholesky factor are dim x dim)."""


class GaussianParams(Params):
    dim: int = Field(default=1, ge=1, le=MAX_DIM)
    mean: float | list[float] = 0.0
    std: float = Field(default=1.0, gt=0, le=1e100)  # std^2 and the samples stay finite
    cov: list[list[float]] | None = None

    @model_validator(mode="after")
    def _check(self) -> GaussianParams:
        if isinstance(self.mean, list) and len(self.mean) != self.dim:
            raise ValueError(f"mean must have dim={self.dim} entries")
        if self.cov is not None:
            cov = np.asarray(self.cov, dtype=float)
            if cov.shape != (self.dim, self.dim) or not np.allclose(cov, cov.T):
                raise ValueError(f"cov must be a symmetric {self.dim}x{self.dim} matrix")
            if np.linalg.eigvalsh(cov).min() <= 0:
                raise ValueError("cov must be positive definite")
        return self


@DATA.register("gaussian", GaussianParams)
class GaussianSource:
    """A Gaussian N(mean, cov) in `dim` dimensions; exposes its mean, covariance and density."""

    def __init__(self, params: GaussianParams) -> None:
        self.dim = params.dim
        self.mean = np.broadcast_to(np.asarray(params.mean, dtype=float), (self.dim,)).copy()
        if params.cov is not None:
            self.cov = np.asarray(params.cov, dtype=float)
        else:
            self.cov = params.std**2 * np.eye(self.dim)
        self.chol = np.linalg.cholesky(self.cov)

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((replicates, n, self.dim))
        return self.mean + z @ self.chol.T

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact mean (dim,) and covariance (dim, dim): what population mode fits to."""
        return self.mean.copy(), self.cov.copy()

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        diff = np.linalg.solve(self.chol, (x - self.mean)[..., None])[..., 0]
        logdet = 2 * np.log(np.diag(self.chol)).sum()
        return -0.5 * ((diff**2).sum(-1) + logdet + self.dim * np.log(2 * np.pi))
