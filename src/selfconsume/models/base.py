"""The model-family protocol and its registry.

A family holds the parameters of all replicates at once and fits / samples them together:
inputs and outputs are arrays of shape (replicates, n, dim). `weights`, when given, has shape
(replicates, n) and is non-negative (0 drops a sample; filters that keep a varying number per
replicate use it).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import Field

from selfconsume.kinds import MODEL_KINDS
from selfconsume.memory import Dim, Term
from selfconsume.registry import Need, Params, Registry
from selfconsume.seeding import Streams


class SamplingParams(Params):
    """Base of every family's params: the sampling bias psi (Alemohammad et al., ICLR 2024).

    psi < 1 samples a shrunk (truncated / lower-temperature) version of the fitted model, psi = 1
    the model itself; fitting never sees psi. Each family says what it scales. At psi = 1 it is
    left out of a run's identity (`Params.LATER`): runs recorded before psi existed keep their
    ids and random streams."""

    psi: float = Field(default=1.0, gt=0)
    LATER: ClassVar[dict[str, Any]] = {"psi": 1.0}


def tempered(weights: np.ndarray, psi: float) -> np.ndarray:
    """Weights (R, K) raised to 1/psi and renormalised per row, in log space (a 0 stays 0); psi = 1
    returns `weights` itself, so unbiased sampling draws exactly what it drew before psi existed."""
    if psi == 1.0:
        return weights
    with np.errstate(divide="ignore"):
        logw = np.log(weights) / psi
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


@runtime_checkable
class Model(Protocol):
    """One generative family for `replicates` independent chains.

    Built as `cls(params, dim=..., replicates=..., streams=...)`. `fit` trains generation t: from the
    current parameters when `warm` is true (fine-tuning), from a fresh initialisation otherwise.
    `state_dict` / `load_state_dict` round-trip everything needed to resume (optimiser and EMA too).
    """

    def fit(
        self, x: np.ndarray, weights: np.ndarray | None, generation: int, warm: bool
    ) -> dict[str, np.ndarray]:
        """Fit on x; return training diagnostics per replicate (for example {"loss": (R,)})."""
        ...

    def sample(self, n: int, rng: np.random.Generator, generation: int) -> np.ndarray:
        """Draw n samples per replicate: shape (replicates, n, dim)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class HasLogProb(Protocol):
    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log density of each replicate's model at x of shape (replicates, m, dim) -> (replicates, m)."""
        ...


@runtime_checkable
class HasMoments(Protocol):
    """A family whose replicates are Gaussians: mean (R, d) and covariance (R, d, d)."""

    mean: np.ndarray
    cov: np.ndarray


@runtime_checkable
class HasProbs(Protocol):
    """A categorical family: probabilities (R, S) of each state."""

    probs: np.ndarray


@runtime_checkable
class FitsIncrementally(Protocol):
    """A family fitted from sufficient statistics: `accumulate` adds each batch to them."""

    def fit_more(self, x: np.ndarray, weights: np.ndarray | None) -> dict[str, np.ndarray]:
        """Refit on the previous training set plus x (R, m, d); return diagnostics as `fit`."""
        ...


class PopulationCuration(Protocol):
    """What an exact update asks of the curation (`selfconsume.loop.selection.ExactCuration`)."""

    kind: str

    def kept(self, p: np.ndarray, states: np.ndarray) -> np.ndarray:
        """Unnormalised law (..., S) of the kept samples when p_t puts mass p (..., S) on the
        states (S, d)."""
        ...


@runtime_checkable
class HasPopulation(Protocol):
    """Families with an exact infinite-sample update (`model.population: true`)."""

    population_schemes: frozenset[str]
    population_curation: bool
    """Whether the exact update also covers curation (else curation is rejected in population mode)."""

    def population_start(self, real: np.ndarray, source: Any) -> None:
        """Set p_0: p_data, the source's exact distribution (params `population_target: exact`)
        or the real set's (`empirical`)."""
        ...

    def population_step(
        self, real: np.ndarray, lam: float | None, curation: PopulationCuration | None, source: Any
    ) -> None:
        """Replace p_t by the exact maximiser of E_data[log p] + lam * E_{p_t (curated)}[log p].

        `lam` None means fully synthetic (no data term)."""
        ...


class ImageModel:
    """Declares a family that fits image data (rows of C * H * W pixels); plan-time checks refuse
    image data for any other family. Subclass it to declare the capability."""


class ShapedImageModel(ImageModel):
    """An image family built with `image_shape=(C, H, W)` as well (a convolutional network)."""


class NetworkModel:
    """Declares a torch family: its replicates' network weights (`net.params`) and their EMA
    copy (`net.ema`) are lists of tensors (what Neon's weight extrapolation moves). A marker
    here, so that checking it imports no torch."""


class ReadsTruth:
    """Declares a family built with `truth=` the data source (a regression family sampling
    labels with the data's true noise)."""


@runtime_checkable
class Conditional(Protocol):
    """A family that can train on labels and sample for prompts: `fit(..., labels=(R, n))`,
    `sample(..., labels=(R, n))`; `conditional` says whether this instance does (its params),
    `prompts` draws labels from p_user. Found once, at plan time (`Plan.conditional`)."""

    conditional: bool

    def prompts(self, n: int, rng: Any) -> np.ndarray:
        """n prompts per replicate from p_user: (R, n) labels."""
        ...


@runtime_checkable
class ChecksData(Protocol):
    """Family params that ask something of the data (labels for a conditional network, images
    for a U-Net): `check_data` raises a ConfigError naming the key, at plan time."""

    def check_data(self, source: Any) -> None: ...


@runtime_checkable
class ChecksFitSize(Protocol):
    """Family params that need a least number of samples to fit (one per mixture component):
    `check_fit_size(n, key)` raises a ConfigError naming the key, at plan time."""

    def check_fit_size(self, n: int, key: str) -> None: ...


@runtime_checkable
class PopulationOnlyParams(Protocol):
    """Family params with keys read only in population mode (`population_only`): set away from
    their defaults in a sampled run they would change nothing, so plan time refuses them."""

    population_only: tuple[str, ...]


@runtime_checkable
class DeclaresMemory(Protocol):
    """A family that declares the arrays its replicates hold (`selfconsume.limits` adds them to
    the loop's own and refuses, before any row is written, a run that cannot fit)."""

    @classmethod
    def memory_terms(cls, params: Any, replicates: float, dim: Dim) -> list[Term]:
        """The family's parameters for all replicates (covariances, stacked networks and their
        training activations), from its resolved params and the sample dimension."""
        ...


MODELS: Registry[type] = Registry("model", MODEL_KINDS)


def model_is(protocol: type, what: str) -> Need:
    """The need for a model family implementing `protocol` (checked on a one-replicate probe)."""
    return Need(what, lambda source, model: isinstance(model, protocol))


__all__ = [
    "MODELS",
    "ChecksData",
    "Conditional",
    "DeclaresMemory",
    "FitsIncrementally",
    "HasLogProb",
    "HasMoments",
    "HasPopulation",
    "HasProbs",
    "ImageModel",
    "NetworkModel",
    "ReadsTruth",
    "Model",
    "Params",
    "PopulationCuration",
    "PopulationOnlyParams",
    "SamplingParams",
    "ShapedImageModel",
    "Streams",
    "model_is",
    "tempered",
]
