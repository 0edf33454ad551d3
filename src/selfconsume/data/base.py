"""The data-source protocol and its registry.

A data source draws real data for all replicates at once: arrays of shape (replicates, n, dim).
Sources with a known density expose `log_prob` (for likelihood metrics) and, for mixtures, `modes`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from selfconsume.kinds import DATA_KINDS
from selfconsume.registry import Need, Params, Registry


@runtime_checkable
class DataSource(Protocol):
    """Real data for a run. `dim` is the sample dimension; `discrete` sources return int64 arrays."""

    dim: int

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw an array of shape (replicates, n, dim)."""
        ...


@runtime_checkable
class HasDensity(Protocol):
    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log density of the truth at x of shape (..., dim); returns shape (...)."""
        ...


@runtime_checkable
class GaussianTruth(Protocol):
    """A Gaussian truth N(mean (dim,), cov (dim, dim)) (closed-form W2 to a Gaussian fit)."""

    mean: np.ndarray
    cov: np.ndarray


@runtime_checkable
class KnownMoments(Protocol):
    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The truth's exact mean (dim,) and covariance (dim, dim) (population mode's target)."""
        ...


@runtime_checkable
class HasModes(Protocol):
    """A mixture with point modes (M, dim), their common std and their weights (M,)."""

    modes: np.ndarray
    mode_std: float
    mode_weights: np.ndarray


@runtime_checkable
class Categorical(Protocol):
    """A discrete truth over states 0..n_states-1 with known probabilities."""

    n_states: int
    probs: np.ndarray


@runtime_checkable
class Labelled(Protocol):
    def labelled(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n real samples (n, dim) with their labels (n,)."""
        ...


DATA: Registry[type] = Registry("data", DATA_KINDS)
"""Data sources by kind; each class is built as `cls(params)`."""


def data_is(protocol: type, what: str) -> Need:
    """The need for a data source implementing `protocol`."""
    return Need(what, lambda source, model: isinstance(source, protocol))


__all__ = [
    "DATA",
    "Categorical",
    "DataSource",
    "HasDensity",
    "GaussianTruth",
    "HasModes",
    "KnownMoments",
    "Labelled",
    "Params",
    "data_is",
]
