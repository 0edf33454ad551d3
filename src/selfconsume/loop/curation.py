"""The selection rules that keep p_t's samples by a reward (or a reward-free kind's score):

- `bradley_terry`: for each kept sample draw K candidates and keep candidate k with probability
  exp(beta r(x_k)) / sum_j exp(beta r(x_j)) (Luce choice), sampled exactly by Gumbel-max; beta = inf
  keeps the best candidate, ties split uniformly (the limit).
- `top_fraction`: draw n / fraction candidates, keep the n with the highest reward.
- `threshold`: draw n candidates, keep those with reward >= threshold (as 0/1 weights).

Each also gives the law of its kept samples exactly on a finite set of states (`population`,
`selfconsume.theory.curation`). A conditional model is curated with the talk's prompt model: a
prompt y ~ p_user per kept sample, its K candidates drawn from p_t(x | y), the Bradley-Terry choice
among them; the kept samples keep their prompts as labels.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field, field_validator

from selfconsume.errors import ConfigError, RunFailed, replicate_list
from selfconsume.loop.selection import SELECTIONS, Candidates, Kept, Rng, Selection
from selfconsume.registry import Example, Params
from selfconsume.rewards.base import Reward
from selfconsume.seeding import ReplicateRandom
from selfconsume.theory import curation as theory

SAFE_SCALE = 1e300
"""Largest |beta r| added to the Gumbel noise as it is (beyond, rewards are shifted first)."""


class BradleyTerryParams(Params):
    k: float = Field(default=4.0, ge=1, allow_inf_nan=True)
    """Candidates per kept sample, an integer or .inf (population mode only)."""
    beta: float = Field(default=1.0, ge=0, allow_inf_nan=True)
    """Inverse temperature of the choice; .inf keeps the best candidate."""

    @field_validator("k")
    @classmethod
    def _k_integer_or_inf(cls, k: float) -> float:
        if not (math.isinf(k) or float(k).is_integer()):
            raise ValueError("k must be an integer >= 1 or .inf")
        return k


class TopFractionParams(Params):
    fraction: float = Field(default=0.5, gt=0, le=1)
    """Share of the candidates kept (n / fraction are drawn)."""


class ThresholdParams(Params):
    threshold: float = 0.0
    """Candidates with a reward >= threshold are kept (weight 1), the others weighted 0."""


def choose_bradley_terry(
    rewards: np.ndarray, beta: float, rng: np.random.Generator | ReplicateRandom
) -> np.ndarray:
    """Index in [0, K) of the chosen candidate for each row of rewards (..., K), vectorised.

    argmax_k (beta r_k + G_k) with G_k i.i.d. Gumbel(0, 1) is distributed as softmax(beta r).
    Where beta r could overflow, rewards are shifted by their row maximum (beta (r - max r) <= 0);
    beta = inf lets the Gumbel noise choose among the best candidates only."""
    gumbel = rng.gumbel(size=rewards.shape)
    if math.isinf(beta):
        best = rewards == rewards.max(axis=-1, keepdims=True)
        return np.argmax(np.where(best, gumbel, -np.inf), axis=-1)
    if beta != 0 and beta * max(abs(rewards.max()), abs(rewards.min())) < SAFE_SCALE:
        gumbel += beta * rewards  # the common case: one pass, no shift needed
    elif beta != 0:
        gumbel += beta * (rewards - rewards.max(axis=-1, keepdims=True))
    return np.argmax(gumbel, axis=-1)


REWARD_EXAMPLE = {"curation": {"reward": {"kind": "distance", "params": {"point": [0.0, 0.0]}}}}
"""The run the contract suite checks a rule in: a reward of the suite's 2-D data."""


@SELECTIONS.register(
    "bradley_terry", BradleyTerryParams, example=Example({"k": 4, "beta": 1.0}, REWARD_EXAMPLE)
)
class BradleyTerry(Selection):
    """Keep one of K candidates with probability ∝ exp(β r); β = .inf: the best."""

    params: BradleyTerryParams

    @property
    def beta(self) -> float:
        return self.params.beta

    @classmethod
    def draws(
        cls, params: BradleyTerryParams, where: str
    ) -> tuple[dict[str, float], frozenset[str]]:
        return {f"{where}.k": float(params.k)}, frozenset()

    @classmethod
    def check(cls, params: BradleyTerryParams, population: bool, where: str) -> None:
        if math.isinf(params.k) and not population:
            raise ConfigError(f"{where}.k: k = .inf is only defined in population mode")

    def select(self, candidates: Candidates, n: int, score: Reward, rng: Rng) -> Kept:
        k = int(self.params.k)
        y = candidates.labels(n)
        cand = candidates.sample(n * k, None if y is None else np.repeat(y, k, axis=1))
        r, _, d = cand.shape
        cand = cand.reshape(r, n, k, d)
        pick = choose_bradley_terry(score(cand), self.params.beta, rng)
        return Kept(np.take_along_axis(cand, pick[:, :, None, None], axis=2)[:, :, 0], None, y)

    def population(self, p: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        return theory.curated(p, rewards, self.params.k, self.params.beta)


@SELECTIONS.register(
    "top_fraction", TopFractionParams, example=Example({"fraction": 0.5}, REWARD_EXAMPLE)
)
class TopFraction(Selection):
    """Keep the best `fraction` of the candidates."""

    params: TopFractionParams

    @classmethod
    def draws(
        cls, params: TopFractionParams, where: str
    ) -> tuple[dict[str, float], frozenset[str]]:
        return {f"{where}.fraction": 1.0 / params.fraction}, frozenset({f"{where}.fraction"})

    def select(self, candidates: Candidates, n: int, score: Reward, rng: Rng) -> Kept:
        cand, y = candidates.draw(math.ceil(n / self.params.fraction))
        idx = np.argpartition(-score(cand), n - 1, axis=1)[:, :n]
        kept_y = None if y is None else np.take_along_axis(y, idx, axis=1)
        return Kept(np.take_along_axis(cand, idx[..., None], axis=1), None, kept_y)

    def population(self, p: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        return theory.top_fraction(p, rewards, self.params.fraction)


@SELECTIONS.register(
    "threshold", ThresholdParams, example=Example({"threshold": -2.0}, REWARD_EXAMPLE)
)
class Threshold(Selection):
    """Keep the candidates whose reward is >= threshold."""

    params: ThresholdParams

    def select(self, candidates: Candidates, n: int, score: Reward, rng: Rng) -> Kept:
        cand, y = candidates.draw(n)
        return Kept(cand, (score(cand) >= self.params.threshold).astype(float), y)

    def population(self, p: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        return theory.thresholded(p, rewards, self.params.threshold)


def empty_replicates(weights: np.ndarray | None) -> np.ndarray:
    """Indices of the replicates whose curation kept no sample (every weight 0), ascending."""
    if weights is None:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(~np.any(weights > 0, axis=1))


def require_kept(weights: np.ndarray | None, kind: str, generation: int) -> None:
    """Fail the run when a replicate kept no sample and has nothing else to train on (`replace`).

    Under the other schemes such a replicate trains on its real set (and pool): its synthetic rows
    have weight 0, which every family honours."""
    empty = empty_replicates(weights)
    if empty.size:
        raise RunFailed(
            f"generation {generation}: curation {kind} kept no sample of "
            f"replicate(s) {replicate_list(empty)}"
        )
