"""Linear-regression data: rows (x, y) with y = x . w* + sigma eps, the regression tier's truth.

A sample is one row of dim + 1 columns, the design row x (dim features) followed by its label y, so
every scheme, selection and store path handles regression data without knowing about labels. The
design is `gaussian` (each replicate draws its rows x ~ N(0, Sigma), a random design) or `fixed`
(one matrix, drawn once from `design_seed`, shared by every replicate and every call of the same
size: fixed-design regression, where the expectations of theory.regression condition on X).
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from selfconsume.data.base import DATA, Params

MAX_DIM = 1024
"""Most features (the family solves dim x dim systems per replicate)."""


class RegressionParams(Params):
    dim: int = Field(default=10, ge=1, le=MAX_DIM)
    """d, the number of features (a sample has d + 1 columns: x then y)."""
    noise_std: float = Field(default=1.0, gt=0, le=1e100)
    """sigma, the std of the label noise."""
    w_star: float | list[float] = 1.0
    """The true coefficients w* (d,); one number sets every coefficient."""
    feature_std: float = Field(default=1.0, gt=0, le=1e100)
    """The std of each feature: Sigma = feature_std^2 I."""
    design: Literal["gaussian", "fixed"] = "gaussian"
    design_seed: int = Field(default=0, ge=0)
    """The seed of the fixed design (read only when design is fixed)."""

    @field_validator("w_star")
    @classmethod
    def _check_length(
        cls, w_star: float | list[float], info: ValidationInfo
    ) -> float | list[float]:
        dim = info.data.get("dim")
        if isinstance(w_star, list) and dim is not None and len(w_star) != dim:
            raise ValueError(f"w_star must have dim={dim} entries")
        return w_star


@runtime_checkable
class RegressionTruth(Protocol):
    """A linear model y = x . w_star + noise_std eps with features of covariance design_cov."""

    w_star: np.ndarray
    noise_std: float
    design_cov: np.ndarray


@DATA.register("regression", RegressionParams)
class RegressionSource:
    """Rows (x, y), y = x . w* + sigma eps; params: dim, noise_std, w_star, feature_std,
    design = gaussian | fixed, design_seed."""

    def __init__(self, params: RegressionParams) -> None:
        self.features = params.dim
        self.dim = params.dim + 1
        self.w_star = np.broadcast_to(np.asarray(params.w_star, dtype=float), (params.dim,)).copy()
        self.noise_std = params.noise_std
        self.feature_std = params.feature_std
        self.design_cov = params.feature_std**2 * np.eye(params.dim)
        self.design = params.design
        self.design_seed = params.design_seed

    def fixed_design(self, n: int) -> np.ndarray:
        """The fixed design of n rows (n, d): the same matrix for every replicate and call."""
        z = np.random.default_rng(self.design_seed).standard_normal((n, self.features))
        return self.feature_std * z

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Rows (replicates, n, d + 1): the design (drawn, or the fixed one) and its labels."""
        if self.design == "gaussian":
            x = self.feature_std * rng.standard_normal((replicates, n, self.features))
        else:
            x = np.broadcast_to(self.fixed_design(n), (replicates, n, self.features))
        y = x @ self.w_star + self.noise_std * rng.standard_normal((replicates, n))
        return np.concatenate([x, y[..., None]], axis=-1)
