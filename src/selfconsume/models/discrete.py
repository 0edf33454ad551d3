"""Discrete family: one categorical distribution over states 0..S-1 per replicate.

Fit = (weighted) empirical frequencies, sample = multinomial counts in random order from the
tempered probabilities p^(1/psi) (sampling bias psi, renormalised); the population update is exact
(of the tempered p_t) (selfconsume.theory.curation), curation included, K = inf and beta = inf too.
Population mode starts from and mixes with the source's exact probabilities (`population_target:
exact`, the infinite-sample limit) or each replicate's real frequencies (`empirical`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from selfconsume.data.base import Categorical
from selfconsume.errors import ConfigError, RunFailed, replicate_list
from selfconsume.models.base import MODELS, PopulationCuration, SamplingParams, Streams, tempered
from selfconsume.registry import Example
from selfconsume.theory import curation as theory


class DiscreteModelParams(SamplingParams):
    states: int | None = Field(default=None, ge=2)
    population_target: Literal["exact", "empirical"] = "exact"
    """What population mode takes as p_data: the source's `probs`, or the real set's frequencies."""


def frequencies(x: np.ndarray, weights: np.ndarray | None, states: int) -> np.ndarray:
    """Weighted empirical frequencies (R, S) of int states x (R, n, 1), one bincount for all."""
    r, n = x.shape[:2]
    flat = (np.arange(r)[:, None] * states + x[..., 0]).ravel()
    w = None if weights is None else np.asarray(weights, dtype=float).ravel()
    counts = np.bincount(flat, weights=w, minlength=r * states).reshape(r, states)
    total = counts.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise FloatingPointError("a replicate kept no sample to fit its frequencies")
    return counts / total


@MODELS.register(
    "discrete",
    DiscreteModelParams,
    example=Example(
        config={"data": {"kind": "discrete", "params": {"probs": [0.4, 0.3, 0.2, 0.1]}}}
    ),
)
class DiscreteModel:
    """Categorical p_r over states; params: states (default: largest state seen at fit + 1),
    population_target (exact | empirical), psi (samples p^(1/psi), renormalised)."""

    population_schemes = frozenset({"replace", "mix"})
    population_curation = True

    def __init__(
        self, params: DiscreteModelParams, dim: int, replicates: int, streams: Streams
    ) -> None:
        if dim != 1:
            raise ConfigError("model.kind: the discrete family needs discrete data (dim 1)")
        self.states = params.states or 0
        self.target = params.population_target
        self.psi = params.psi
        self.probs = np.zeros((replicates, self.states))

    def _grow(self, x: np.ndarray) -> None:
        if x.dtype.kind not in "iu" or (x.size and x.min() < 0):
            raise ConfigError("model.kind: the discrete family needs non-negative integer states")
        self._grow_to(int(x.max()) + 1 if x.size else 0)

    def _grow_to(self, states: int) -> None:
        if states > self.states:
            self.probs = np.pad(self.probs, ((0, 0), (0, states - self.states)))
            self.states = states

    @staticmethod
    def exact_target(source: Any) -> np.ndarray | None:
        """The source's exact probabilities (S,), or None when it has none (no `probs`)."""
        return np.asarray(source.probs, dtype=float) if isinstance(source, Categorical) else None

    def _p_data(self, real: np.ndarray, source: Any) -> np.ndarray:
        """p_data (R, S) of population mode: exact (from the source) or the real frequencies."""
        self._grow(real)
        if self.target == "empirical":
            return frequencies(real, None, self.states)
        exact = self.exact_target(source)
        if exact is None:
            raise ConfigError(
                "model.params.population_target: the data source has no exact probabilities "
                "(use empirical)"
            )
        self._grow_to(exact.size)
        exact = np.pad(exact, (0, self.states - exact.size))
        return np.broadcast_to(exact, self.probs.shape).copy()

    def fit(
        self, x: np.ndarray, weights: np.ndarray | None, generation: int, warm: bool
    ) -> dict[str, np.ndarray]:
        self._grow(x)
        self.probs = frequencies(x, weights, self.states)
        return {}

    def sample(self, n: int, rng: np.random.Generator, generation: int) -> np.ndarray:
        r, s = self.probs.shape
        probs = tempered(self.probs, self.psi)
        counts = rng.multinomial(n, probs / probs.sum(axis=1, keepdims=True))
        states = np.repeat(np.tile(np.arange(s, dtype=np.int64), r), counts.ravel())
        return rng.permuted(states.reshape(r, n), axis=1)[..., None]

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(np.take_along_axis(self.probs, x[..., 0], axis=1))

    def population_start(self, real: np.ndarray, source: Any) -> None:
        """p_0 of population mode: p_data itself."""
        self.probs = self._p_data(real, source)

    def population_step(
        self, real: np.ndarray, lam: float | None, curation: PopulationCuration | None, source: Any
    ) -> None:
        """Exact update: curate the sampled p_t^(1/psi) (renormalised), then replace or mix with
        p_data (exact or empirical)."""
        p_data = self._p_data(real, source)
        sampled = tempered(self.probs, self.psi)
        if curation is None:
            self.probs = theory.mixed(p_data, sampled, lam)
            return
        states = np.arange(self.states, dtype=np.int64)[:, None]
        probs = theory.mixed(p_data, curation.kept(sampled, states), lam)
        empty = np.flatnonzero(~np.all(np.isfinite(probs), axis=1))
        if empty.size:  # NaN: `replace` after a filter that keeps no mass
            raise RunFailed(
                f"curation {curation.kind} kept no mass of replicate(s) {replicate_list(empty)} "
                "(population update)"
            )
        self.probs = probs

    def state_dict(self) -> dict[str, Any]:
        return {"probs": self.probs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.probs = np.asarray(state["probs"])
        self.states = self.probs.shape[1]
