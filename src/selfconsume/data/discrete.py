"""A categorical distribution over the states 0..S-1: the simplest source to curate and collapse."""

from __future__ import annotations

import numpy as np
from pydantic import field_validator

from selfconsume.data.base import DATA, Params
from selfconsume.registry import Example


class DiscreteParams(Params):
    probs: list[float]

    @field_validator("probs")
    @classmethod
    def _check(cls, probs: list[float]) -> list[float]:
        p = np.asarray(probs, dtype=float)
        if p.size < 2 or np.any(~np.isfinite(p)) or np.any(p < 0):
            raise ValueError("probs must be at least 2 non-negative numbers")
        if abs(p.sum() - 1.0) > 1e-6:
            raise ValueError(f"probs must sum to 1 (they sum to {p.sum():g})")
        return probs


@DATA.register("discrete", DiscreteParams, example=Example({"probs": [0.4, 0.3, 0.2, 0.1]}))
class DiscreteSource:
    """States 0..S-1 drawn with probabilities `probs`; samples are int64 arrays (R, n, 1).

    `probs` is the exact distribution that population mode starts from and mixes with."""

    dim = 1
    discrete = True

    def __init__(self, params: DiscreteParams) -> None:
        p = np.asarray(params.probs, dtype=float)
        self.probs = p / p.sum()

    @property
    def n_states(self) -> int:
        return self.probs.size

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(self.n_states, size=(replicates, n, 1), p=self.probs).astype(np.int64)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.probs)[x[..., 0]]
