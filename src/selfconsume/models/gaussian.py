"""Gaussian family: full-covariance Gaussians in any dimension, all replicates as array operations.

The fit is closed form (weighted mean and covariance), with the `unbiased` (1/(n-1)) or `mle` (1/n)
estimator of the talk's warm-up; sampling draws from N(mean, psi^2 cov) (sampling bias psi). The population update is the exact maximiser of
E_data[log p] + lam * E_{p_t}[log p]: the moments of the mixture (p_data + lam p_t) / (1 + lam),
with p_data the source's exact distribution (`population_target: exact`, the infinite-sample limit:
only its mean and covariance matter) or the real set (`population_target: empirical`), and p_t the
distribution sampled, N(mean, psi^2 cov): `replace` gives sigma_{t+1} = psi sigma_t exactly.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from selfconsume.data.base import KnownMoments
from selfconsume.errors import ConfigError
from selfconsume.memory import COPIES, FLOAT64, Dim, Term
from selfconsume.models.base import MODELS, PopulationCuration, SamplingParams, Streams
from selfconsume.registry import Example


class GaussianModelParams(SamplingParams):
    population_only: ClassVar[tuple[str, ...]] = ("start_shift", "start_scale")
    """Params that only population mode reads (set elsewhere, they are refused as bad input)."""
    LATER: ClassVar[dict[str, Any]] = {
        **SamplingParams.LATER,
        "start_shift": 0.0,
        "start_scale": 1.0,
    }

    estimator: Literal["unbiased", "mle"] = "unbiased"
    population_target: Literal["exact", "empirical"] = "exact"
    """What population mode takes as p_data: the source's `moments()`, or the real set's."""
    start_shift: float = 0.0
    """Population mode: p_0's mean moved by this much along every axis (a misspecified start)."""
    start_scale: float = Field(default=1.0, gt=0)
    """Population mode: p_0's covariance times start_scale² (a misspecified start)."""


MomentStats = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Total weight (R,), mean (R, d) and centred scatter (R, d, d): what a Gaussian fit needs of a set."""


def moment_stats(x: np.ndarray, weights: np.ndarray | None) -> MomentStats:
    """The (weighted) total, mean and centred scatter of x (R, n, d); 0/1-style weights drop
    samples."""
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
        return count, mean, scatter
    count = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # a replicate of weight 0: mean NaN
        mean = np.einsum("rn,rnd->rd", weights, x) / count[:, None]
    xc = x - mean[:, None, :]
    return count, mean, np.matmul(xc.transpose(0, 2, 1), xc * weights[..., None])


def merge_stats(a: MomentStats, b: MomentStats) -> MomentStats:
    """The stats of the union of two sets (Chan, Golub & LeVeque's pairwise update): the scatters
    add, plus the between-means term n_a n_b / n (m_b - m_a)(m_b - m_a)^T."""
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    share = np.divide(nb, n, out=np.zeros_like(n), where=n > 0)
    delta = np.where(nb[:, None] > 0, mb - ma, 0.0)
    between = (na * share)[:, None, None] * delta[:, :, None] * delta[:, None, :]
    return n, ma + share[:, None] * delta, sa + np.where(nb[:, None, None] > 0, sb, 0.0) + between


def gaussian_from_stats(stats: MomentStats, unbiased: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance from the stats: scatter / (total - 1) (unbiased) or / total (MLE)."""
    count, mean, scatter = stats
    if np.any(count <= int(unbiased)):
        raise FloatingPointError("a replicate kept too few samples to fit a Gaussian")
    return mean, scatter / (count - float(unbiased))[:, None, None]


def weighted_moments(
    x: np.ndarray, weights: np.ndarray | None, unbiased: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Mean (R, d) and covariance (R, d, d) of x (R, n, d); 0/1-style weights drop samples.

    With weights w the unbiased estimator divides the weighted scatter by sum(w) - 1."""
    return gaussian_from_stats(moment_stats(x, weights), unbiased)


@MODELS.register(
    "gaussian",
    GaussianModelParams,
    example=Example(config={"data": {"kind": "gaussian", "params": {"dim": 2}}}),
)
class GaussianModel:
    """One Gaussian N(mean_r, cov_r) per replicate r; params: estimator = unbiased | mle,
    population_target = exact | empirical, psi (samples mean + psi * the std noise),
    start_shift and start_scale (population p_0)."""

    population_schemes = frozenset({"replace", "mix"})
    population_curation = False

    @classmethod
    def memory_terms(cls, params: GaussianModelParams, replicates: float, dim: Dim) -> list[Term]:
        """Each replicate's covariance (d, d) and its factorisation."""
        key, d = dim
        return [Term("covariances", {"replicates": replicates, key: d * d}, FLOAT64 * COPIES)]

    def __init__(
        self, params: GaussianModelParams, dim: int, replicates: int, streams: Streams
    ) -> None:
        self.unbiased = params.estimator == "unbiased"
        self.target = params.population_target
        self.psi = params.psi
        self.start_shift, self.start_scale = params.start_shift, params.start_scale
        self.dim = dim
        self.mean = np.zeros((replicates, dim))
        self.cov = np.broadcast_to(np.eye(dim), (replicates, dim, dim)).copy()
        self.stats: MomentStats = (np.zeros(replicates), self.mean, np.zeros_like(self.cov))
        """The moment stats of the last training set (what `fit_more` adds a batch to)."""

    def fit(
        self, x: np.ndarray, weights: np.ndarray | None, generation: int, warm: bool
    ) -> dict[str, np.ndarray]:
        self._set(moment_stats(x, weights))
        return {}

    def fit_more(self, x: np.ndarray, weights: np.ndarray | None) -> dict[str, np.ndarray]:
        """Refit on the last training set plus x from the running moment stats: what
        `accumulate` asks, in O(batch) instead of O(pool); `fit` on the whole pool to rounding."""
        if x.shape[1]:
            self._set(merge_stats(self.stats, moment_stats(x, weights)))
        return {}

    def _set(self, stats: MomentStats) -> None:
        self.mean, self.cov = gaussian_from_stats(stats, self.unbiased)
        self.stats = stats

    def sample(self, n: int, rng: np.random.Generator, generation: int) -> np.ndarray:
        """mean + psi L z with L L^T = cov and z standard normal (psi = 1: the fitted model)."""
        r, d = self.mean.shape
        z = rng.standard_normal((r, n, d))
        if d == 1:
            z *= (self.psi * np.sqrt(self.cov[:, :, 0]))[:, None, :]
        else:
            z = np.matmul(z, self.psi * np.linalg.cholesky(self.cov).transpose(0, 2, 1))
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
        return source.moments() if isinstance(source, KnownMoments) else None

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
        """p_0 of population mode: the exact p_data, or (empirical) the fit of the real set, with
        its mean moved by start_shift and its covariance scaled by start_scale²."""
        if self.target == "empirical":
            self.fit(real, None, 0, False)
        else:
            self.mean, self.cov = self._data_moments(real, source)
        self.mean = self.mean + self.start_shift
        self.cov = self.cov * self.start_scale**2

    def population_step(
        self, real: np.ndarray, lam: float | None, curation: PopulationCuration | None, source: Any
    ) -> None:
        """Exact update: p_{t+1} has the mean and covariance of (p_data + lam q_t) / (1 + lam), q_t
        = N(mean_t, psi^2 cov_t) the distribution sampled.

        `replace` (lam None) gives q_t itself: p_t unchanged at psi = 1."""
        cov = self.psi**2 * self.cov
        if lam is None:
            self.cov = cov
            return
        data_mean, data_cov = self._data_moments(real, source)
        mean = (data_mean + lam * self.mean) / (1 + lam)
        second = (
            data_cov
            + data_mean[:, :, None] * data_mean[:, None, :]
            + lam * (cov + self.mean[:, :, None] * self.mean[:, None, :])
        ) / (1 + lam)
        self.mean, self.cov = mean, second - mean[:, :, None] * mean[:, None, :]

    def state_dict(self) -> dict[str, Any]:
        count, _, scatter = self.stats
        return {"mean": self.mean, "cov": self.cov, "count": count, "scatter": scatter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.cov = np.asarray(state["mean"]), np.asarray(state["cov"])
        self.stats = (np.asarray(state["count"]), self.mean, np.asarray(state["scatter"]))
