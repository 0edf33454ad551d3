"""Schemes: the rule that builds generation t+1's training set from the real set and p_t's samples.

Each scheme is a kind (registry `SCHEMES`, one class here) taking some of the flat keys of the
`scheme:` block (`lam`, `n_synthetic`, `size`). Resolution fills what is derived, so the resolved
config says exactly what ran: `n_synthetic` = round-half-up(lam * n_real) for the schemes with real
data (the effective lam is n_synthetic / n_real; given alone, n_synthetic sets lam = n_synthetic /
n_real; given both, they must agree).

- `replace`: n_synthetic (default n_real) fresh samples of p_t only (fully synthetic).
- `mix`: the real set plus n_synthetic samples of p_t; lam is required (lam = 0 is real data only).
- `accumulate`: the real set plus every synthetic batch so far (lam default 1).
- `accumulate_subsample`: the same pool (real set included), subsampled without replacement to
  `size` points (default n_real, as Kazdan et al., "Collapse or Thrive?").
- `fresh`: a new real sample of n_real every generation plus n_synthetic samples of p_t.
"""

from __future__ import annotations

import math

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


class MixParams(Params):
    lam: float = Field(ge=0)
    n_synthetic: int | None = Field(default=None, ge=0)


class AccumulateParams(Params):
    lam: float = Field(default=1.0, ge=0)
    n_synthetic: int | None = Field(default=None, ge=0)


class SubsampleParams(AccumulateParams):
    size: int | None = Field(default=None, ge=1)


def half_up(x: float) -> int:
    """round(x) with halves rounded up (Python's round() sends 2.5 to 2)."""
    return math.floor(x + 0.5)


class Scheme:
    """Base of the schemes: the resolved `scheme:` block and the real-set size."""

    fresh_real = False
    """Whether the scheme draws a new real set every generation."""
    accumulates = False
    """Whether the synthetic batches are kept in a growing pool."""
    incremental = False
    """Whether the training set is the previous one plus the new batch (so a family with
    sufficient statistics can add the batch instead of refitting on the pool)."""

    def __init__(self, cfg: SchemeConfig, n_real: int) -> None:
        self.cfg, self.n_real = cfg, n_real

    @property
    def n_synthetic(self) -> int:
        return self.cfg.n_synthetic if self.cfg.n_synthetic is not None else self.n_real

    def population_lam(self) -> float | None:
        """lam of the exact update E_real[log p] + lam E_{p_t}[log p]; None is fully synthetic."""
        return self.cfg.lam

    def build(
        self,
        real: np.ndarray,
        synthetic: np.ndarray,
        weights: np.ndarray | None,
        pool: Pool,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Training set (R, m, d) and optional weights (R, m) for the next generation."""
        raise NotImplementedError


SCHEMES: Registry[type[Scheme]] = Registry("scheme", SCHEME_KINDS)


@SCHEMES.register("replace", ReplaceParams)
class Replace(Scheme):
    """Fully synthetic: n_synthetic (default n_real) fresh samples of p_t only."""

    def population_lam(self) -> float | None:
        return None

    def build(self, real, synthetic, weights, pool, rng):
        return synthetic, weights


@SCHEMES.register("mix", MixParams, example=Example({"lam": 0.5}))
class Mix(Scheme):
    """The real set plus round-half-up(lam * n_real) samples of p_t (lam required, any lam >= 0)."""

    def build(self, real, synthetic, weights, pool, rng):
        if synthetic.shape[1] == 0:
            return real, None
        return concat([real, synthetic]), concat_weights([real, synthetic], [None, weights])


@SCHEMES.register("fresh", MixParams, example=Example({"lam": 0.5}))
class Fresh(Mix):
    """A new real sample of n_real every generation plus round-half-up(lam * n_real) of p_t."""

    fresh_real = True


@SCHEMES.register("accumulate", AccumulateParams)
class Accumulate(Scheme):
    """The real set plus every synthetic batch so far (each of round-half-up(lam * n_real))."""

    accumulates = True
    incremental = True

    def build(self, real, synthetic, weights, pool, rng):
        return concat([real, pool.x]), concat_weights([real, pool.x], [None, pool.w])


@SCHEMES.register("accumulate_subsample", SubsampleParams)
class AccumulateSubsample(Accumulate):
    """The accumulated pool (real set included) subsampled without replacement to `size` points
    (default n_real)."""

    incremental = False

    def build(self, real, synthetic, weights, pool, rng):
        x, w = super().build(real, synthetic, weights, pool, rng)
        size = min(self.cfg.size or self.n_real, x.shape[1])
        idx = np.argpartition(rng.random(x.shape[:2]), size - 1, axis=1)[:, :size]
        x_sub = np.take_along_axis(x, idx[..., None], axis=1)
        return x_sub, None if w is None else np.take_along_axis(w, idx, axis=1)


def resolve_scheme(cfg: SchemeConfig, n_real: int) -> SchemeConfig:
    """Validate the scheme block against its kind and fill what is derived (see the module doc)."""
    given = {k: v for k, v in cfg.model_dump(exclude={"kind"}).items() if v is not None}
    entry = SCHEMES.get(cfg.kind)
    if "lam" in entry.params.model_fields and "lam" not in given and "n_synthetic" in given:
        given["lam"] = given["n_synthetic"] / n_real
    params = SCHEMES.parse_params(cfg.kind, given, "scheme")
    values = params.model_dump()
    lam = values.get("lam")
    if lam is not None:
        wanted = lam * n_real
        if not wanted < MAX_SYNTHETIC:
            raise ConfigError(
                f"scheme.lam: lam * n_real = {wanted:.3g} synthetic samples per replicate "
                f"(at most {MAX_SYNTHETIC:.0e})"
            )
        count = half_up(wanted)
        if given.get("n_synthetic", count) != count:
            raise ConfigError(
                f"scheme.n_synthetic: {given['n_synthetic']} disagrees with round(lam * n_real) = "
                f"{count}; give one of them"
            )
        values["n_synthetic"] = count
    elif values.get("n_synthetic") is None:
        values["n_synthetic"] = n_real
    return SchemeConfig(kind=cfg.kind, **values)


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
