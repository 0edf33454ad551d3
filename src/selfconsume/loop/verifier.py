"""A verifier of known accuracy (Feng et al. 2024, "Beyond Model Collapse: Scaling Up with
Synthesized Data Requires Verification"; Yi et al., "Escaping Model Collapse via Synthetic Data
Verification"): a reward-free curation kind that keeps a good sample with probability a
(`accept_good`) and a bad one with probability 1 - b (`reject_bad`).

"Good" is defined by the data's truth, within `radius` of it:
- regression rows (x, y): |y - x . w*| <= radius * sigma (the label is right to within the noise);
- a mixture with point modes (8 Gaussians, ...): distance to the nearest mode <= radius * mode std;
- a Gaussian N(mu, Sigma): Mahalanobis distance to mu <= radius;
- labelled images (digits, mnist): the data's classifier (the strong CNN of the `fd` metric and the
  `classifier_confidence` reward) gives its most likely class probability >= `confidence`.

Its score is +1 for an accepted sample and -1 for a rejected one, drawn per sample from the
curation's per-replicate stream, so it keeps samples by `params.select: {kind: threshold}` at 0
(its default rule):
with probability a p + (1 - b)(1 - p) a sample of p_t is kept, where p = P_{p_t}(good), and a kept
one is good with probability a p / (a p + (1 - b)(1 - p)). a = 1 - b is a verifier that knows
nothing (it keeps a random share a); a = b = 1 is a perfect one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from selfconsume.data.base import GaussianTruth, HasLabels, HasModes, Images
from selfconsume.data.regression import RegressionTruth
from selfconsume.loop.selection import SELECTIONS, RewardFree, RewardFreeParams, RuleConfig
from selfconsume.registry import Example, Need
from selfconsume.rewards.base import Reward
from selfconsume.seeding import ReplicateRandom

KNOWS_TRUTH = Need(
    "data with a known truth (regression, a mixture with point modes, a Gaussian, or labelled "
    "images and their classifier)",
    lambda source, model: (
        isinstance(source, RegressionTruth | HasModes | GaussianTruth)
        or (isinstance(source, Images) and isinstance(source, HasLabels))
    ),
)


class VerifierParams(RewardFreeParams):
    select: RuleConfig = Field(default_factory=lambda: {"kind": "threshold"}, validate_default=True)
    """The rule that keeps samples by the score: threshold at 0 keeps the accepted ones."""
    accept_good: float = Field(default=1.0, ge=0, le=1)
    """a: the probability that a good sample is kept."""
    reject_bad: float = Field(default=1.0, ge=0, le=1)
    """b: the probability that a bad sample is dropped."""
    radius: float = Field(default=2.0, gt=0, le=1e100)
    """How far from the truth a sample is still good, in units of the truth's noise."""
    confidence: float = Field(default=0.9, gt=0, lt=1)
    """Labelled images: a sample is good when the data's classifier gives its most likely class
    at least this probability."""


def is_good(source: Any, x: np.ndarray, radius: float, confidence: float = 0.9) -> np.ndarray:
    """Whether each sample of x (..., d) is good by the truth (the module doc)."""
    if isinstance(source, Images):
        from selfconsume.rewards.image_classifier import data_classifier

        return data_classifier(source).proba(x).max(-1) >= confidence
    if isinstance(source, RegressionTruth):
        residual = x[..., -1] - x[..., :-1] @ source.w_star
        return np.abs(residual) <= radius * source.noise_std
    if isinstance(source, HasModes):
        dist = np.linalg.norm(x[..., None, :] - source.modes, axis=-1).min(-1)
        return dist <= radius * source.mode_std
    diff = np.linalg.solve(np.linalg.cholesky(source.cov), (x - source.mean)[..., None])[..., 0]
    return np.linalg.norm(diff, axis=-1) <= radius


@SELECTIONS.register(
    "verifier",
    VerifierParams,
    needs=[KNOWS_TRUTH],
    example=Example(params={"accept_good": 0.9, "reject_bad": 0.8}),
)
class Verifier(RewardFree):
    """Keeps a sample that is good by the data's truth with probability accept_good and a bad one
    with probability 1 - reject_bad (score +1 kept, -1 dropped; select: threshold)."""

    def __init__(self, params: VerifierParams, source: Any) -> None:
        super().__init__(params, source)
        self.p, self.source = params, source

    def scorer(self, real: np.ndarray, rng: ReplicateRandom) -> Reward:
        def score(x: np.ndarray) -> np.ndarray:
            good = is_good(self.source, x, self.p.radius, self.p.confidence)
            keep = np.where(good, self.p.accept_good, 1.0 - self.p.reject_bad)
            return np.where(rng.random(good.shape) < keep, 1.0, -1.0)

        return score
