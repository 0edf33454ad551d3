"""Linear-regression family: OLS or ridge per replicate, sampling labels on the fixed design.

Rows are (x, y): the last column is the label (`data.regression`). The fit is (weighted) ridge,

    w_hat = (X^T W X + ridge * n I)^{-1} X^T W y,      n = sum of the weights (the row count),

so `ridge` is the per-sample penalty of Dohmatob et al. (2024)'s min ||Xw - y||^2 / n + ridge ||w||^2
and 0 is OLS. The noise estimate is sigma_hat^2 = RSS / (n - d) (unbiased for OLS; the same
denominator for ridge). Both come from the sufficient statistics (X^T W X, X^T W y, y^T W y, n),
which add across batches, so `accumulate` refits in O(batch) (`fit_more`).

Sampling follows Gerstgrasser et al. (2024) and Dohmatob et al. (2024): the fitted model labels the
design of the real set generation 0 was fitted on (row i of a draw is design row i mod T), with
noise sigma_hat (`noise: sigma_hat`, the model's own estimate) or the data's true sigma
(`noise: true_sigma`, the papers' setting). psi scales that noise (sampling bias).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import Field

from selfconsume.data.regression import RegressionTruth
from selfconsume.errors import ConfigError
from selfconsume.models.base import MODELS, ReadsTruth, SamplingParams, Streams
from selfconsume.registry import Example


class RegressionModelParams(SamplingParams):
    ridge: float = Field(default=0.0, ge=0, le=1e100)
    """lambda_ridge, the per-sample ridge penalty; 0 is OLS."""
    noise: Literal["sigma_hat", "true_sigma"] = "sigma_hat"
    """The label noise of the samples: the fitted sigma_hat, or the data's true sigma."""


@runtime_checkable
class HasCoefficients(Protocol):
    """A linear model per replicate: coefficients (R, d) and noise variance estimate (R,)."""

    coef: np.ndarray
    sigma2: np.ndarray


RegressionStats = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""Per replicate: total weight n (R,), X^T W X (R, d, d), X^T W y (R, d), y^T W y (R,)."""


def regression_stats(x: np.ndarray, weights: np.ndarray | None) -> RegressionStats:
    """The sufficient statistics of rows x (R, m, d + 1), optionally weighted (R, m)."""
    design, y = x[..., :-1], x[..., -1]
    wd = design if weights is None else design * weights[..., None]
    wy = y if weights is None else y * weights
    count = np.full(x.shape[0], float(x.shape[1])) if weights is None else weights.sum(axis=1)
    gram = np.matmul(wd.transpose(0, 2, 1), design)
    xty = np.einsum("rmd,rm->rd", wd, y)
    yty = np.einsum("rm,rm->r", wy, y)
    return count, gram, xty, yty


def add_stats(a: RegressionStats, b: RegressionStats) -> RegressionStats:
    """The statistics of the union of two sets: every term adds."""
    return tuple(u + v for u, v in zip(a, b, strict=True))  # type: ignore[return-value]


def ridge_fit(stats: RegressionStats, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """w_hat (R, d) and sigma_hat^2 = RSS / (n - d) (R,) from the statistics."""
    count, gram, xty, yty = stats
    d = gram.shape[-1]
    if np.any(count <= d):
        raise FloatingPointError(f"a replicate kept too few rows to fit {d} coefficients")
    system = gram + ridge * count[:, None, None] * np.eye(d)
    coef = np.linalg.solve(system, xty[..., None])[..., 0]
    rss = yty - 2 * np.einsum("rd,rd->r", coef, xty) + np.einsum("rd,rde,re->r", coef, gram, coef)
    return coef, np.clip(rss, 0.0, None) / (count - d)


@MODELS.register(
    "regression",
    RegressionModelParams,
    example=Example(config={"data": {"kind": "regression", "params": {"dim": 3}}}),
)
class RegressionModel(ReadsTruth):
    """OLS / ridge per replicate on rows (x, y); samples label the real design; params: ridge,
    noise = sigma_hat | true_sigma, psi."""

    def __init__(
        self,
        params: RegressionModelParams,
        dim: int,
        replicates: int,
        streams: Streams,
        truth: Any = None,
    ) -> None:
        if dim < 2:
            raise ConfigError("data.kind: the regression family needs rows (x, y) of dim >= 2")
        self.ridge, self.psi, self.noise = params.ridge, params.psi, params.noise
        self.true_std: float | None = None
        if params.noise == "true_sigma":
            if not isinstance(truth, RegressionTruth):
                raise ConfigError(
                    "model.params.noise: true_sigma needs data with a known noise std "
                    "(data.kind regression)"
                )
            self.true_std = truth.noise_std
        d = dim - 1
        self.coef = np.zeros((replicates, d))
        self.sigma2 = np.ones(replicates)
        self.design = np.zeros((replicates, 1, d))
        zero = np.zeros(replicates)
        self.stats: RegressionStats = (zero, np.zeros((replicates, d, d)), self.coef, zero)

    def fit(
        self, x: np.ndarray, weights: np.ndarray | None, generation: int, warm: bool
    ) -> dict[str, np.ndarray]:
        """Refit on rows x; generation 0 (the real set) also fixes the design samples label."""
        if generation == 0:
            self.design = np.array(x[..., :-1])
        self._set(regression_stats(x, weights))
        return {}

    def fit_more(self, x: np.ndarray, weights: np.ndarray | None) -> dict[str, np.ndarray]:
        """Refit on the last training set plus x from the added statistics (`accumulate`)."""
        self._set(add_stats(self.stats, regression_stats(x, weights)))
        return {}

    def _set(self, stats: RegressionStats) -> None:
        self.coef, self.sigma2 = ridge_fit(stats, self.ridge)
        self.stats = stats

    def sample(self, n: int, rng: np.random.Generator, generation: int) -> np.ndarray:
        """Rows (R, n, d + 1): design row i mod T labelled x . w_hat + psi * std * eps."""
        r, t, _ = self.design.shape
        x = self.design[:, np.arange(n) % t]
        std = np.sqrt(self.sigma2) if self.true_std is None else np.full(r, self.true_std)
        eps = rng.standard_normal((r, n))
        y = np.einsum("rnd,rd->rn", x, self.coef) + (self.psi * std)[:, None] * eps
        return np.concatenate([x, y[..., None]], axis=-1)

    def state_dict(self) -> dict[str, Any]:
        count, gram, xty, yty = self.stats
        return {
            "coef": self.coef,
            "sigma2": self.sigma2,
            "design": self.design,
            "count": count,
            "gram": gram,
            "xty": xty,
            "yty": yty,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.coef, self.sigma2 = np.asarray(state["coef"]), np.asarray(state["sigma2"])
        self.design = np.asarray(state["design"])
        self.stats = tuple(np.asarray(state[k]) for k in ("count", "gram", "xty", "yty"))  # type: ignore[assignment]
