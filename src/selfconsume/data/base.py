"""The data-source protocol and its registry.

A data source draws real data for all replicates at once: arrays of shape (replicates, n, dim).
Sources with a known density expose `log_prob` (for likelihood metrics) and, for mixtures, `modes`.
Finite sources (files, images) are `HeldOut`: their test sets come from rows no real set uses.
Images are flattened to dim = C*H*W (channel, row, column order) and say their `image_shape`.
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


@runtime_checkable
class HeldOut(Protocol):
    """A finite source split once into disjoint parts: real sets come from one part (`sample`), test
    sets from another (`sample_test`), so no test row is ever in a real set."""

    def sample_test(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw test sets of shape (replicates, n, dim) from the held-out part."""
        ...

    def check_sizes(self, n_real: int, n_test: int) -> None:
        """Raise a ConfigError naming data.n_real or data.n_test when a part is too small."""
        ...


@runtime_checkable
class Images(Protocol):
    """Images flattened to dim = C*H*W; `image_shape` = (C, H, W) reshapes them (x.reshape(-1, C,
    H, W)). Pixel values lie in [-1, 1]."""

    image_shape: tuple[int, int, int]


@runtime_checkable
class HasLabels(Protocol):
    """A source whose real rows carry class labels 0..n_classes-1 (for class-conditional families,
    prompts and the data's classifier)."""

    n_classes: int

    def sample_labelled(
        self, replicates: int, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Real sets with their labels, (replicates, n, dim) and (replicates, n): the same rows as
        `sample(replicates, n, rng)` with an identical stream."""
        ...


def draw_test_set(
    source: DataSource, replicates: int, n: int, rng: np.random.Generator
) -> np.ndarray:
    """A run's test sets (replicates, n, dim): the held-out part of a finite source, otherwise fresh
    draws of the source."""
    if isinstance(source, HeldOut):
        return source.sample_test(replicates, n, rng)
    return source.sample(replicates, n, rng)


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
    "HasLabels",
    "HeldOut",
    "Images",
    "GaussianTruth",
    "HasModes",
    "KnownMoments",
    "Labelled",
    "Params",
    "data_is",
    "draw_test_set",
]
