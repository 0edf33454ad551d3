"""Reward-free selection kinds: scores of p_t's samples that need no human feedback (the talk's open
question), each built from the real set and used by the rule of its `params.select` (one of
`loop.curation`'s) in place of a reward.

Both score in a feature space (`FeatureMap`): the samples themselves for vectors; for labelled
images (digits, mnist, image_file with y) the 128-d penultimate features of the data's classifier
(rewards.image_classifier, the network of the `fd` / `feature_prd` metrics), and for token windows
(text) each window's token frequencies (V-d), both projected on the top `components` principal
components of the real set's features (token ids are labels, not coordinates). The projection is what makes a
density or a classifier of 500 images well posed: about half of the ReLU units are dead (constant
0) on digits, so the feature covariance is singular, and its top 10 directions (about the 9 that
separate 10 class means) hold 98% of the variance. Directions with no variance on the real set are
never kept, so nothing downstream divides by a zero variance.

- `discriminator`: each generation, a classifier real-vs-synthetic is trained on the real set
  (label 1) against the candidates drawn from p_t (label 0), classes weighted equally; the score
  is its logit, which estimates log p_data(x) / p_t(x) (Bayes' rule with equal priors). The
  classifier is an L2-regularised logistic regression on quadratic and random Fourier features
  (Rahimi & Recht, 2007) of the standardised features, fitted by Newton's method for all
  replicates at once. Kept by `select: bradley_terry` with beta = 1, a candidate is chosen with
  probability proportional to p_data / p_t: as K grows the kept samples tend to p_data
  (importance resampling), whereas a top fraction keeps only where the ratio is largest.
- `likelihood`: the log density of a reference fitted once on the real set's features (a Gaussian
  KDE, the `kde` family), as in Feature-Likelihood-style scores: samples where the data is dense
  rank first. A KDE rather than one Gaussian with a ridge: digits' features form a cluster per
  class, and a single Gaussian would rank an ambiguous image between the class means above a
  clean one at the edge of its class (and its ridge would be one more arbitrary scale); with
  Scott's rule the kernel follows the real features' covariance, so only the subspace matters.
  Selected on it every generation, p_t is tilted by the reference again and again (p_t ∝ p_0 q^t
  for Bradley-Terry with large K): it piles mass on the reference's densest modes.

Neither takes discrete states (nor images without labels: no classifier, no features).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveFloat
from scipy.special import expit

from selfconsume.data.base import Categorical, HasLabels, Images
from selfconsume.data.text import Tokens
from selfconsume.loop.selection import SELECTIONS, RewardFree, RewardFreeParams
from selfconsume.models.kde import KDE, KDEParams
from selfconsume.registry import Need
from selfconsume.rewards.base import Reward
from selfconsume.seeding import ReplicateRandom, Streams

STD_FLOOR = 1e-12
"""Smallest per-coordinate std of a real set by which samples are standardised."""
FEATURE_SEED = 0
"""Seed of the image classifier whose features are scored (the metrics' and the reward's)."""
VARIANCE_FLOOR = 1e-8
"""A principal direction of the real features is kept only when its variance exceeds this share
of the largest one (dead units and a real set smaller than the feature dimension leave zeros)."""
COMPONENTS = 10
"""Default number of principal components of image features (about n_classes - 1 separate
10 classes; see the module docstring)."""

SCOREABLE = Need(
    "continuous vectors, token windows or labelled images (digits, mnist, image_file with y), "
    "not discrete states",
    lambda source, model: (
        not isinstance(source, Categorical)
        and (not isinstance(source, Images) or isinstance(source, HasLabels))
    ),
)


class FilterParams(RewardFreeParams):
    components: int = Field(default=COMPONENTS, ge=1, le=128)
    """Images: principal components of the classifier features kept (vectors are used whole).
    Left out of a run's identity at its default (runs recorded before it keep their ids)."""
    LATER: ClassVar[dict[str, Any]] = {"components": COMPONENTS}


class DiscriminatorParams(FilterParams):
    features: int = Field(default=64, ge=1, le=4096)
    """Random Fourier features of the classifier."""
    bandwidth: PositiveFloat = 0.3
    """Kernel length scale, in units of the real set's per-coordinate std."""
    l2: PositiveFloat = 1e-3
    """Ridge penalty on the feature weights (the intercept is not penalised)."""
    steps: int = Field(default=8, ge=1, le=100)
    """Newton steps (the regularised loss is strictly convex)."""


class LikelihoodParams(FilterParams):
    bandwidth: Literal["scott", "silverman"] | PositiveFloat = "scott"
    """The reference KDE's bandwidth (as the `kde` family's), in feature units."""


class FeatureMap:
    """Where a filter scores samples (R, ..., d): the samples themselves for vectors; for labelled
    images the data classifier's features, for token windows their token frequencies, projected
    on the top principal components of the real set's features (`fit` once per real set)."""

    def __init__(self, source: object, components: int) -> None:
        self.components = components
        self.embed: Callable[[np.ndarray], np.ndarray] | None = None
        self.basis: np.ndarray | None = None
        if isinstance(source, Images):
            from selfconsume.rewards.image_classifier import data_classifier

            self.embed = data_classifier(source, FEATURE_SEED).features
        elif isinstance(source, Tokens):
            vocab = source.vocab_size
            self.embed = lambda x: token_frequencies(x, vocab)

    def fit(self, real: np.ndarray) -> np.ndarray:
        """Fix the projection on real sets (R, n, d); returns their features (R, n, k)."""
        if self.embed is None:
            return real
        feats = self.embed(real)
        centred = feats - feats.mean(1, keepdims=True)
        var, vecs = np.linalg.eigh(np.matmul(centred.transpose(0, 2, 1), centred))
        live = (var > VARIANCE_FLOOR * var[:, -1:]).sum(-1).min()
        k = max(1, min(self.components, int(live)))
        self.basis = vecs[..., ::-1][..., :k]  # (R, f, k), largest variance first
        return self(real)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Features (R, m, k) of samples (R, m, d)."""
        if self.embed is None:
            return x
        return np.matmul(self.embed(x), self.basis)


def token_frequencies(x: np.ndarray, vocab: int) -> np.ndarray:
    """Each window's token frequencies (R, m, V) of token windows x (R, m, L)."""
    r, m, length = x.shape
    flat = np.arange(r * m)[:, None] * vocab + x.reshape(r * m, length).astype(np.int64)
    counts = np.bincount(flat.ravel(), minlength=r * m * vocab)
    return counts.reshape(r, m, vocab) / length


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


@SELECTIONS.register("discriminator", DiscriminatorParams, needs=[SCOREABLE])
class Discriminator(RewardFree):
    """The logit of a classifier real-vs-synthetic trained each generation on the real set
    against the candidates (logistic regression on quadratic and random Fourier features of
    the standardised samples, or image features)."""

    def __init__(self, params: DiscriminatorParams, source: object) -> None:
        super().__init__(params, source)
        self.p = params
        self.map = FeatureMap(source, params.components)

    def scorer(self, real: np.ndarray, rng: ReplicateRandom) -> Reward:
        real_f = self.map.fit(real)
        r, n, k = real_f.shape
        omega = rng.standard_normal((r, k, self.p.features)) / self.p.bandwidth
        phase = 2 * np.pi * rng.random((r, self.p.features))

        def score(x: np.ndarray) -> np.ndarray:
            cand = self.map(x.reshape(r, -1, x.shape[-1]))
            real_z, cand_z = standardise(real_f, cand)
            m = cand.shape[1]
            phi = features(np.concatenate([real_z, cand_z], axis=1), omega, phase)
            y = np.concatenate([np.ones((r, n)), np.zeros((r, m))], axis=1)
            weight = np.concatenate([np.full((r, n), 0.5 / n), np.full((r, m), 0.5 / m)], axis=1)
            coef = fit_logistic(phi, y, weight, self.p.l2, self.p.steps)
            logit = np.einsum("rnf,rf->rn", phi[:, n:], coef)
            return logit.reshape(x.shape[:-1])

        return score


@SELECTIONS.register("likelihood", LikelihoodParams, needs=[SCOREABLE])
class Likelihood(RewardFree):
    """The log density of a Gaussian KDE fitted once on the real set (its image features)."""

    def __init__(self, params: LikelihoodParams, source: object) -> None:
        super().__init__(params, source)
        self.p = params
        self.map = FeatureMap(source, params.components)
        self.reference: KDE | None = None

    def scorer(self, real: np.ndarray, rng: ReplicateRandom) -> Reward:
        if self.reference is None:
            real_f = self.map.fit(real)
            r, _, k = real_f.shape
            # a KDE draws nothing when fitted: its streams are never used
            self.reference = KDE(KDEParams(bandwidth=self.p.bandwidth), k, r, Streams(0))
            self.reference.fit(real_f, None, 0, False)
        reference, feature_map = self.reference, self.map

        def score(x: np.ndarray) -> np.ndarray:
            r = x.shape[0]
            feats = feature_map(x.reshape(r, -1, x.shape[-1]))
            return reference.log_prob(feats).reshape(x.shape[:-1])

        return score
