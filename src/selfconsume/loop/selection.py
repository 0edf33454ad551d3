"""Selection: the optional rule between sampling p_t and training p_{t+1} (the `curation:` block).

One registry, `SELECTIONS`, holds every kind, each with typed params and `select`:
- rules that keep samples by a reward (`selfconsume.loop.curation`: bradley_terry, top_fraction,
  threshold), which also give the law of the kept samples exactly (`population`, `ExactSelection`);
- reward-free kinds (`selfconsume.loop.filters`: discriminator, likelihood), which score samples
  themselves from the real set (`RewardFree.scorer`) and keep them by one of those rules
  (`params.select`).

A new kind is one module registering a `Selection` subclass here plus its line in `kinds.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import Field, model_validator

from selfconsume.errors import ConfigError
from selfconsume.kinds import SELECTION_KINDS
from selfconsume.registry import Params, Registry
from selfconsume.rewards.base import Reward
from selfconsume.seeding import ReplicateRandom

Rng = np.random.Generator | ReplicateRandom


@dataclass(frozen=True)
class Candidates:
    """How a selection draws from p_t: `sample(m, labels (R, m) or None) -> (R, m, d)`, with the
    prompts of a conditional family drawn by `prompts(m) -> (R, m)` (None: unconditional)."""

    sample: Callable[[int, np.ndarray | None], np.ndarray]
    prompts: Callable[[int], np.ndarray] | None = None

    def labels(self, m: int) -> np.ndarray | None:
        """m prompts per replicate (None when unconditional)."""
        return None if self.prompts is None else self.prompts(m)

    def draw(self, m: int) -> tuple[np.ndarray, np.ndarray | None]:
        """m candidates per replicate, each with its own prompt, and the prompts."""
        y = self.labels(m)
        return self.sample(m, y), y


@dataclass(frozen=True)
class Kept:
    """What a selection keeps: samples (R, n', d), optional 0/1 weights (R, n') and the kept
    samples' prompts (R, n') (None when unconditional)."""

    x: np.ndarray
    w: np.ndarray | None = None
    y: np.ndarray | None = None


class Selection(ABC):
    """A selection rule, built once per run from its typed params and the data source."""

    rewarded: ClassVar[bool] = True
    """Whether the rule keeps samples by the config's reward (`curation.reward`, required);
    else it is reward-free and refuses one."""

    def __init__(self, params: Any, source: object = None) -> None:
        self.params = params

    @property
    def beta(self) -> float:
        """β of the reward tilt e^{β r} whose statistics the `reward` metric reports."""
        return 1.0

    @classmethod
    def draws(cls, params: Any, where: str) -> tuple[dict[str, float], frozenset[str]]:
        """Candidates drawn per kept sample as factors keyed by the params (below `where`) that
        set them (none: one candidate), and the keys whose factor is 1 / value."""
        return {}, frozenset()

    @classmethod
    def check(cls, params: Any, population: bool, where: str) -> None:
        """Refuse (ConfigError naming the key below `where`) params this mode does not define."""
        return None

    @abstractmethod
    def select(self, candidates: Candidates, n: int, score: Reward, rng: Rng) -> Kept:
        """Keep n samples per replicate (or n with 0/1 weights) of p_t by `score` (R, ...)."""


@runtime_checkable
class ExactSelection(Protocol):
    """A rule whose kept samples have a law computed exactly on a finite set of states."""

    def population(self, p: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        """Unnormalised law (..., S) of the kept samples when p_t = p (..., S), rewards (S,)."""
        ...


class RewardFree(Selection):
    """A kind that scores samples without a reward and keeps them by its `params.select` rule."""

    rewarded = False

    def __init__(self, params: Any, source: object = None) -> None:
        super().__init__(params, source)
        self.rule = build_selection(params.select.kind, params.select.params, source)

    @property
    def beta(self) -> float:
        return self.rule.beta

    @classmethod
    def draws(cls, params: Any, where: str) -> tuple[dict[str, float], frozenset[str]]:
        rule = SELECTIONS.get(params.select.kind).obj
        return rule.draws(params.select.params, f"{where}.select.params")

    @classmethod
    def check(cls, params: Any, population: bool, where: str) -> None:
        rule = SELECTIONS.get(params.select.kind).obj
        rule.check(params.select.params, population, f"{where}.select.params")

    @abstractmethod
    def scorer(self, real: np.ndarray, rng: ReplicateRandom) -> Reward:
        """The score (R, ..., d) -> (R, ...) of this generation's samples given the real sets
        (R, n, d), randomness from rng (per replicate)."""

    def select(self, candidates: Candidates, n: int, score: Reward, rng: Rng) -> Kept:
        return self.rule.select(candidates, n, score, rng)


SELECTIONS: Registry[type[Selection]] = Registry("curation", SELECTION_KINDS)
"""Every selection kind (`curation.kind`): a `Selection` subclass built as `cls(params, source)`."""


class RuleConfig(Params):
    """A reward-free kind's rule (`params.select`): `{kind, params}` of a rule with a reward."""

    kind: str = "top_fraction"
    params: Any = Field(default_factory=dict)

    @model_validator(mode="after")
    def _typed(self) -> RuleConfig:
        if not SELECTIONS.get(self.kind).obj.rewarded:
            raise ConfigError(f"curation.params.select.kind: {self.kind} is not a rule of a score")
        params = SELECTIONS.parse_params(self.kind, self.params, "curation.params.select.params")
        return self.model_copy(update={"params": params})


class RewardFreeParams(Params):
    """Base of a reward-free kind's params: the rule that keeps samples by the score."""

    select: RuleConfig = Field(default_factory=dict, validate_default=True)


def build_selection(kind: str, params: Any, source: object = None) -> Selection:
    """The selection of a resolved curation (its params typed, or a mapping to validate)."""
    return SELECTIONS.get(kind).obj(
        SELECTIONS.parse_params(kind, params, "curation.params"), source
    )


def curate(
    candidates: Candidates, n: int, selection: Selection | None, score: Reward | None, rng: Rng
) -> Kept:
    """n kept synthetic samples per replicate of p_t: all n drawn when there is no selection."""
    if selection is None or n == 0:
        x, y = candidates.draw(n)
        return Kept(x, None, y)
    return selection.select(candidates, n, score, rng)


@dataclass(frozen=True)
class ExactCuration:
    """A curation in population mode: the rule's exact law with the reward of each state."""

    kind: str
    rule: ExactSelection
    reward: Reward

    def kept(self, p: np.ndarray, states: np.ndarray) -> np.ndarray:
        """Unnormalised law (..., S) of the kept samples when p_t puts mass p on states (S, d)."""
        return self.rule.population(p, self.reward(states))
