"""Reward-free curation: scores of p_t's samples that need no human feedback (the talk's open
question), each built from the real set and used by the selection rules of `loop.curation` in
place of a reward.

- `discriminator`: each generation, a classifier real-vs-synthetic is trained on the real set
  (label 1) against the candidates drawn from p_t (label 0), classes weighted equally; the score
  is its logit, which estimates log p_data(x) / p_t(x) (Bayes' rule with equal priors). The
  classifier is an L2-regularised logistic regression on quadratic and random Fourier features
  (Rahimi & Recht, 2007) of the standardised samples, fitted by Newton's method for all
  replicates at once. Kept by `select: bradley_terry` with beta = 1, a candidate is chosen with
  probability proportional to p_data / p_t: as K grows the kept samples tend to p_data
  (importance resampling), whereas a top fraction keeps only where the ratio is largest.
- `likelihood`: the log density of a reference fitted once on the real set (a Gaussian KDE, the
  `kde` family), as in Feature-Likelihood-style scores: samples where the data is dense rank first.
  Selected on it every generation, p_t is tilted by the reference again and again (p_t ∝ p_0 q^t
  for Bradley-Terry with large K): it piles mass on the reference's densest modes.

Both need continuous vectors (not discrete states, not images).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import numpy as np
from pydantic import Field, PositiveFloat
from scipy.special import expit

from selfconsume.data.base import Categorical, Images
from selfconsume.kinds import FILTER_KINDS
from selfconsume.models.kde import KDE, KDEParams
from selfconsume.registry import Need, Params, Registry
from selfconsume.rewards.base import Reward
from selfconsume.seeding import ReplicateRandom, Streams

STD_FLOOR = 1e-12
"""Smallest per-coordinate std of a real set by which samples are standardised."""

VECTORS = Need(
    "continuous vector data (not discrete states or images)",
    lambda source, model: not isinstance(source, (Categorical, Images)),
)


class Filter(Protocol):
    """A reward-free score, built once per run from its params and data source."""

    def scorer(self, real: np.ndarray, rng: ReplicateRandom) -> Reward:
        """The score (R, ..., d) -> (R, ...) of this generation's samples given the real sets
        (R, n, d), randomness from rng (per replicate)."""
        ...


FILTERS: Registry[Callable[..., Filter]] = Registry("curation", FILTER_KINDS)
"""Reward-free curation kinds: `factory(params, source) -> Filter`."""


class DiscriminatorParams(Params):
    features: int = Field(default=64, ge=1, le=4096)
    """Random Fourier features of the classifier."""
    bandwidth: PositiveFloat = 0.3
    """Kernel length scale, in units of the real set's per-coordinate std."""
    l2: PositiveFloat = 1e-3
    """Ridge penalty on the feature weights (the intercept is not penalised)."""
    steps: int = Field(default=8, ge=1, le=100)
    """Newton steps (the regularised loss is strictly convex)."""


class LikelihoodParams(Params):
    bandwidth: Literal["scott", "silverman"] | PositiveFloat = "scott"
    """The reference KDE's bandwidth (as the `kde` family's)."""


def standardise(real: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """real (R, n, d) and x (R, m, d) centred and scaled by the real set's mean and std."""
    mean = real.mean(1, keepdims=True)
    std = np.maximum(real.std(1, keepdims=True), STD_FLOOR)
    return (real - mean) / std, (x - mean) / std


def features(x: np.ndarray, omega: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """The classifier's inputs of standardised x (R, m, d): x, x^2 (a quadratic logit, which
    extrapolates to far-away points), sqrt(2 / F) cos(x omega + phase) (F random Fourier features,
    local detail) and an intercept column last: (R, m, 2d + F + 1)."""
    f = omega.shape[-1]
    rff = np.sqrt(2.0 / f) * np.cos(np.matmul(x, omega) + phase[:, None, :])
    return np.concatenate([x, x * x, rff, np.ones((*x.shape[:2], 1))], axis=-1)


def fit_logistic(
    phi: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float, steps: int
) -> np.ndarray:
    """Coefficients (R, F) minimising sum_i weight_i logloss(y_i, phi_i . w) + l2/2 |w_{:-1}|^2
    for every replicate of phi (R, N, F) at once, by Newton's method from w = 0."""
    r, _, f = phi.shape
    ridge = np.full(f, l2)
    ridge[-1] = 0.0  # the intercept (last column) is free
    w = np.zeros((r, f))
    for _ in range(steps):
        p = expit(np.einsum("rnf,rf->rn", phi, w))
        grad = np.einsum("rnf,rn->rf", phi, weight * (p - y)) + ridge * w
        curv = weight * p * (1 - p)
        hess = np.matmul(phi.transpose(0, 2, 1), phi * curv[..., None]) + np.diag(ridge + 1e-12)
        w = w - np.linalg.solve(hess, grad[..., None])[..., 0]
    return w


@FILTERS.register("discriminator", DiscriminatorParams, needs=[VECTORS])
class Discriminator:
    """The logit of a classifier real-vs-synthetic trained each generation on the real set
    against the candidates (logistic regression on quadratic and random Fourier features)."""

    def __init__(self, params: DiscriminatorParams, source: object) -> None:
        self.p = params

    def scorer(self, real: np.ndarray, rng: ReplicateRandom) -> Reward:
        r, n, d = real.shape
        omega = rng.standard_normal((r, d, self.p.features)) / self.p.bandwidth
        phase = 2 * np.pi * rng.random((r, self.p.features))

        def score(x: np.ndarray) -> np.ndarray:
            cand = x.reshape(r, -1, d)
            real_z, cand_z = standardise(real, cand)
            m = cand.shape[1]
            phi = features(np.concatenate([real_z, cand_z], axis=1), omega, phase)
            y = np.concatenate([np.ones((r, n)), np.zeros((r, m))], axis=1)
            weight = np.concatenate([np.full((r, n), 0.5 / n), np.full((r, m), 0.5 / m)], axis=1)
            coef = fit_logistic(phi, y, weight, self.p.l2, self.p.steps)
            logit = np.einsum("rnf,rf->rn", phi[:, n:], coef)
            return logit.reshape(x.shape[:-1])

        return score


@FILTERS.register("likelihood", LikelihoodParams, needs=[VECTORS])
class Likelihood:
    """The log density of a Gaussian KDE fitted once on the real set."""

    def __init__(self, params: LikelihoodParams, source: object) -> None:
        self.p = params
        self.reference: KDE | None = None

    def scorer(self, real: np.ndarray, rng: ReplicateRandom) -> Reward:
        if self.reference is None:
            r, _, d = real.shape
            # a KDE draws nothing when fitted: its streams are never used
            self.reference = KDE(KDEParams(bandwidth=self.p.bandwidth), d, r, Streams(0))
            self.reference.fit(real, None, 0, False)
        reference = self.reference

        def score(x: np.ndarray) -> np.ndarray:
            r, d = x.shape[0], x.shape[-1]
            return reference.log_prob(x.reshape(r, -1, d)).reshape(x.shape[:-1])

        return score


def build_filter(kind: str, params: Params, source: object) -> Filter:
    """The reward-free score of a resolved curation (its params already typed)."""
    return FILTERS.get(kind).obj(params, source)
