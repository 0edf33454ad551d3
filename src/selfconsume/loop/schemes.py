"""Schemes: the rule that builds generation t+1's training set from the real set and p_t's samples.

Each scheme is a kind (registry `SCHEMES`, a `Scheme` subclass) with typed params, and declares
what the rest of the code asks of it: its synthetic count (`n_synthetic`), its label in the
talk's words (`label`) and the λ of its exact population update (`population_lam`). Resolution
(`Scheme.resolve`) fills what is derived, so the resolved config says exactly what ran: for the
schemes with real data `n_synthetic` = round-half-up(lam * n_real) (the effective lam is
n_synthetic / n_real; given alone, n_synthetic sets lam = n_synthetic / n_real; given both, they
must agree).

- `replace`: n_synthetic (default n_real) fresh samples of p_t only (fully synthetic).
- `mix`: the real set plus n_synthetic samples of p_t; lam is required (lam = 0 is real data only).
- `accumulate`: the real set plus every synthetic batch so far (lam default 1).
- `accumulate_subsample`: the same pool (real set included), subsampled without replacement to
  `size` points (default n_real, as Kazdan et al., "Collapse or Thrive?").
- `fresh`: a new real sample of n_real every generation plus n_synthetic samples of p_t.

A new scheme is one module registering a `Scheme` subclass here plus its line in `kinds.py`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from selfconsume.config import SchemeConfig
from selfconsume.errors import ConfigError
from selfconsume.kinds import SCHEME_KINDS
from selfconsume.registry import Example, Params, Registry

MAX_SYNTHETIC = 10**9
"""Synthetic samples per replicate above which a scheme is refused as bad input (lam overflow)."""


class ReplaceParams(Params):
    n_synthetic: int | None = Field(default=None, ge=1)
    """Samples of p_t per replicate (default n_real)."""


class MixParams(Params):
    lam: float | None = Field(default=None, ge=0)
    """Synthetic samples per real one, any lam >= 0 (required unless n_synthetic is given)."""
    n_synthetic: int | None = Field(default=None, ge=0)
    """Samples of p_t per replicate: round-half-up(lam * n_real), or given instead of lam."""


class AccumulateParams(MixParams):
    lam: float | None = Field(default=1.0, ge=0)


class SubsampleParams(AccumulateParams):
    size: int | None = Field(default=None, ge=1)
    """Training-set size after subsampling the pool (default n_real)."""


def half_up(x: float) -> int:
    """round(x) with halves rounded up (Python's round() sends 2.5 to 2)."""
    return math.floor(x + 0.5)


class Scheme(ABC):
    """Base of the schemes: the resolved params and the real-set size."""

    fresh_real: ClassVar[bool] = False
    """Whether the scheme draws a new real set every generation."""
    accumulates: ClassVar[bool] = False
    """Whether the synthetic batches are kept in a growing pool."""
    incremental: ClassVar[bool] = False
    """Whether the training set is the previous one plus the new batch (so a family with
    sufficient statistics can add the batch instead of refitting on the pool)."""
    synthetic_only: ClassVar[bool] = False
    """Whether the training set holds synthetic samples only (so a replicate whose curation kept
    none has nothing to train on)."""

    def __init__(self, params: Any, n_real: int) -> None:
        self.params, self.n_real = params, n_real

    @classmethod
    def resolve(cls, params: Any, n_real: int) -> Any:
        """The params with what is derived filled in (what the resolved config records)."""
        return params

    @property
    def n_synthetic(self) -> int:
        """Samples of p_t kept per replicate each generation."""
        return self.n_real

    @classmethod
    def synthetic_count(cls, params: Any, n_real: int) -> tuple[str, float]:
        """`n_synthetic` of params resolved or not (limits.py sizes a run before resolving it),
        and the config key that sets it."""
        return "scheme.params.n_synthetic", float(cls(params, n_real).n_synthetic)

    def population_lam(self) -> float | None:
        """lam of the exact update E_real[log p] + lam E_{p_t}[log p]; None is fully synthetic.
        (Only the schemes a family lists in `population_schemes` run in population mode.)"""
        return None

    @abstractmethod
    def label(self, curated: bool) -> str:
        """The training-set rule in the talk's words, for figures (curated: the run curates)."""

    @abstractmethod
    def build(
        self,
        real: np.ndarray,
        synthetic: np.ndarray,
        weights: np.ndarray | None,
        pool: Pool,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Training set (R, m, d) and optional weights (R, m) for the next generation."""


SCHEMES: Registry[type[Scheme]] = Registry("scheme", SCHEME_KINDS)


def scheme_of(block: SchemeConfig, n_real: int) -> Scheme:
    """The scheme of a `scheme:` block, as written or read back from a store (resolved here)."""
    cls = SCHEMES.get(block.kind).obj
    params = SCHEMES.parse_params(block.kind, block.params, "scheme.params")
    return cls(cls.resolve(params, n_real), n_real)


def lam_text(lam: float) -> str:
    return f"λ = {lam:g}"


@SCHEMES.register("replace", ReplaceParams)
class Replace(Scheme):
    """Fully synthetic: n_synthetic (default n_real) fresh samples of p_t only."""

    synthetic_only = True
    params: ReplaceParams

    @classmethod
    def resolve(cls, params: ReplaceParams, n_real: int) -> ReplaceParams:
        return params.model_copy(update={"n_synthetic": params.n_synthetic or n_real})

    @property
    def n_synthetic(self) -> int:
        return self.params.n_synthetic or self.n_real

    @classmethod
    def synthetic_count(cls, params: ReplaceParams, n_real: int) -> tuple[str, float]:
        if params.n_synthetic is None:
            return "data.n_real", float(n_real)
        return "scheme.params.n_synthetic", float(params.n_synthetic)

    def label(self, curated: bool) -> str:
        return "only curated synthetic" if curated else "fully synthetic"

    def build(self, real, synthetic, weights, pool, rng):
        return synthetic, weights


class WithReal(Scheme):
    """A scheme training on the real set plus lam * n_real synthetic samples per generation."""

    params: MixParams

    @classmethod
    def resolve(cls, params: MixParams, n_real: int) -> MixParams:
        lam, given = params.lam, params.n_synthetic
        if given is not None and "lam" not in params.model_fields_set:
            lam = given / n_real
        if lam is None:
            raise ConfigError("scheme.params.lam: required (or scheme.params.n_synthetic)")
        wanted = lam * n_real
        if not wanted < MAX_SYNTHETIC:
            raise ConfigError(
                f"scheme.params.lam: lam * n_real = {wanted:.3g} synthetic samples per replicate "
                f"(at most {MAX_SYNTHETIC:.0e})"
            )
        count = half_up(wanted)
        if given is not None and given != count:
            raise ConfigError(
                f"scheme.params.n_synthetic: {given} disagrees with round(lam * n_real) = "
                f"{count}; give one of them"
            )
        return params.model_copy(update={"lam": lam, "n_synthetic": count})

    @property
    def n_synthetic(self) -> int:
        return self.params.n_synthetic

    @classmethod
    def synthetic_count(cls, params: MixParams, n_real: int) -> tuple[str, float]:
        if params.n_synthetic is not None:
            return "scheme.params.n_synthetic", float(params.n_synthetic)
        return "scheme.params.lam", (1.0 if params.lam is None else params.lam) * n_real

    def population_lam(self) -> float | None:
        return self.params.lam


@SCHEMES.register("mix", MixParams, example=Example({"lam": 0.5}))
class Mix(WithReal):
    """The real set plus round-half-up(lam * n_real) samples of p_t (lam required, any lam >= 0)."""

    def label(self, curated: bool) -> str:
        if self.params.lam == 0:
            return "λ = 0 (real only)"
        lam = lam_text(self.params.lam)
        return f"real & curated synthetic ({lam})" if curated else lam

    def build(self, real, synthetic, weights, pool, rng):
        if synthetic.shape[1] == 0:
            return real, None
        return concat([real, synthetic]), concat_weights([real, synthetic], [None, weights])


@SCHEMES.register("fresh", MixParams, example=Example({"lam": 0.5}))
class Fresh(Mix):
    """A new real sample of n_real every generation plus round-half-up(lam * n_real) of p_t."""

    fresh_real = True

    def label(self, curated: bool) -> str:
        words = "curated fresh real & synthetic" if curated else "fresh real & synthetic"
        return f"{words} ({lam_text(self.params.lam)})"


@SCHEMES.register("accumulate", AccumulateParams)
class Accumulate(WithReal):
    """The real set plus every synthetic batch so far (each of round-half-up(lam * n_real))."""

    accumulates = True
    incremental = True
    words = "accumulated synthetic"

    def label(self, curated: bool) -> str:
        words = f"curated {self.words}" if curated else self.words
        return f"{words} ({lam_text(self.params.lam)})"

    def build(self, real, synthetic, weights, pool, rng):
        return concat([real, pool.x]), concat_weights([real, pool.x], [None, pool.w])


@SCHEMES.register("accumulate_subsample", SubsampleParams)
class AccumulateSubsample(Accumulate):
    """The accumulated pool (real set included) subsampled without replacement to `size` points
    (default n_real)."""

    incremental = False
    words = "accumulated synthetic, subsampled"
    params: SubsampleParams

    def build(self, real, synthetic, weights, pool, rng):
        x, w = super().build(real, synthetic, weights, pool, rng)
        size = min(self.params.size or self.n_real, x.shape[1])
        idx = np.argpartition(rng.random(x.shape[:2]), size - 1, axis=1)[:, :size]
        x_sub = np.take_along_axis(x, idx[..., None], axis=1)
        return x_sub, None if w is None else np.take_along_axis(w, idx, axis=1)


def resolve_scheme(block: SchemeConfig, n_real: int) -> SchemeConfig:
    """Validate the scheme block against its kind and fill what is derived (see the module doc)."""
    params = SCHEMES.parse_params(block.kind, block.params, "scheme.params")
    return SchemeConfig(kind=block.kind, params=SCHEMES.get(block.kind).obj.resolve(params, n_real))


class Pool:
    """The accumulated synthetic batches (R, m_total, d) with optional weights; appends are
    amortised O(batch) (capacity doubles), so a long run does not copy its pool every generation."""

    def __init__(self) -> None:
        self._x: np.ndarray | None = None
        self._w: np.ndarray | None = None
        self.size = 0

    @property
    def x(self) -> np.ndarray | None:
        return None if self._x is None else self._x[:, : self.size]

    @property
    def w(self) -> np.ndarray | None:
        return None if self._w is None else self._w[:, : self.size]

    def append(self, x: np.ndarray, w: np.ndarray | None) -> None:
        m = x.shape[1]
        if self._x is None or self.size + m > self._x.shape[1]:
            capacity = max(2 * (self._x.shape[1] if self._x is not None else 0), self.size + m)
            grown = np.empty((x.shape[0], capacity, *x.shape[2:]), dtype=x.dtype)
            if self._x is not None:
                grown[:, : self.size] = self.x
            self._x = grown
            if self._w is not None:
                self._w = _grow(self._w, self.size, capacity)
        if w is not None and self._w is None:
            self._w = np.ones((x.shape[0], self._x.shape[1]))
        self._x[:, self.size : self.size + m] = x
        if self._w is not None:
            self._w[:, self.size : self.size + m] = 1.0 if w is None else w
        self.size += m


def _grow(w: np.ndarray, size: int, capacity: int) -> np.ndarray:
    out = np.ones((w.shape[0], capacity))
    out[:, :size] = w[:, :size]
    return out


def concat(parts: list[np.ndarray | None]) -> np.ndarray:
    return np.concatenate([p for p in parts if p is not None], axis=1)


def concat_weights(
    arrays: list[np.ndarray | None], weights: list[np.ndarray | None]
) -> np.ndarray | None:
    """Weights of the concatenation of `arrays` (None when none of them is weighted)."""
    pairs = [(a, w) for a, w in zip(arrays, weights, strict=True) if a is not None]
    if all(w is None for _, w in pairs):
        return None
    return np.concatenate([np.ones(a.shape[:2]) if w is None else w for a, w in pairs], axis=1)
