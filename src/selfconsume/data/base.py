"""The data-source protocol and its registry.

A data source draws real data for all replicates at once: arrays of shape (replicates, n, dim).
Sources with a known density expose `log_prob` (for likelihood metrics) and, for mixtures, `modes`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from selfconsume.registry import Params, Registry


@runtime_checkable
class DataSource(Protocol):
    """Real data for a run. `dim` is the sample dimension; `discrete` sources return int64 arrays."""

    dim: int

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw an array of shape (replicates, n, dim)."""
        ...


class HasDensity(Protocol):
    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log density of the truth at x of shape (..., dim); returns shape (...)."""
        ...


DATA: Registry[type] = Registry("data")
"""Data sources by kind; each class is built as `cls(params)`."""

__all__ = ["DATA", "DataSource", "HasDensity", "Params"]
