"""Cures: interventions on the loop, each a kind with a neutral value that is bit-identical to none.

The config's `cures:` block maps a kind to its params (`cures: {real_weight: {real_weight: 0.6}}`);
the loop calls each cure at its hook, whatever order the block lists them in:

- `neon` (`after_first`): right after generation 0, a copy of p_0 is fine-tuned on its own samples
  (theta_s) and p_0 becomes theta_0 + w (theta_0 - theta_s) (Alemohammad et al. 2025, "Neon").
- `self_correction` (`correct`): every synthetic sample moves toward an exact expert,
  x <- x + gamma (c(x) - x) (Gillman et al. 2024), before it enters the training set.
- `real_weight` (`weigh`): the training set's real rows carry the share `real_weight` of its total
  weight, the synthetic rows the rest (He, Xu & Cheng 2025).

At its neutral value (w = 0, gamma = 0, real_weight = the real rows' share by count) a cure returns
what it was given, untouched: a run with it draws and fits exactly what a run without it does
(given the same streams: `common_random_numbers: true`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from selfconsume.config import Config
from selfconsume.errors import ConfigError
from selfconsume.kinds import CURE_KINDS
from selfconsume.registry import Example, Need, Params, Registry
from selfconsume.seeding import Streams

NEUTRAL_RTOL = 1e-12
"""Relative tolerance within which real_weight's per-row factors count as 1 (the neutral value)."""


class Cure:
    """Base of the cure kinds: every hook leaves the loop as it is."""

    schemes: ClassVar[frozenset[str] | None] = None
    """The schemes the cure is defined for (None: every scheme)."""
    needs: ClassVar[tuple[Need, ...]] = ()

    def __init__(self, params: Any, source: Any) -> None:
        self.params, self.source = params, source

    def after_first(self, model: Any, n: int, streams: Streams) -> None:
        """Change p_0 after it is fitted on the n rows of the real set."""

    def correct(self, x: np.ndarray, generation: int) -> np.ndarray:
        """p_t's synthetic samples (R, m, d) as they enter the training set."""
        return x

    def weigh(self, x: np.ndarray, weights: np.ndarray | None, n_real: int) -> np.ndarray | None:
        """The weights (R, N) of a training set x (R, N, d) whose first n_real rows are real."""
        return weights


CURES: Registry[type[Cure]] = Registry("cures", CURE_KINDS)
"""Cure kinds by name; each class is built as `cls(params, source)`."""


class RealWeightParams(Params):
    real_weight: float = Field(ge=0, le=1)
    """The share of the training set's total weight on the real rows (the rest on synthetic)."""


@CURES.register(
    "real_weight",
    RealWeightParams,
    example=Example({"real_weight": 0.8}, config={"scheme": {"kind": "mix", "lam": 0.5}}),
)
class RealWeight(Cure):
    """Real rows carry the share real_weight of the training set's weight, synthetic rows the rest
    (mix and fresh); neutral at the real rows' share by count, n_real / (n_real + n_synthetic)."""

    schemes = frozenset({"mix", "fresh"})

    def weigh(self, x: np.ndarray, weights: np.ndarray | None, n_real: int) -> np.ndarray | None:
        """Scale the real rows by a and the synthetic rows by b per replicate, so that the total
        weight stays what it was and the real rows hold real_weight of it."""
        base = np.ones(x.shape[:2]) if weights is None else weights
        real, synthetic = base[:, :n_real].sum(1), base[:, n_real:].sum(1)
        total, share = real + synthetic, self.params.real_weight
        kept = synthetic > 0  # a replicate whose selection kept no sample trains on its real rows
        a = np.where(kept, share * total / np.maximum(real, 1e-300), 1.0)
        b = np.divide((1 - share) * total, synthetic, out=np.zeros_like(total), where=kept)
        if np.allclose(a, 1, rtol=NEUTRAL_RTOL, atol=0) and np.allclose(
            b[kept], 1, rtol=NEUTRAL_RTOL, atol=0
        ):
            return weights
        out = base.copy()
        out[:, :n_real] *= a[:, None]
        out[:, n_real:] *= b[:, None]
        return out


def resolve_cures(cures: dict[str, Any]) -> dict[str, Params]:
    """Each cure's params typed by its kind (errors name cures.<kind>.<key>)."""
    if not isinstance(cures, dict):
        raise ConfigError("cures: expected a mapping of kind: params")
    return {
        kind: CURES.parse_params(kind, params, f"cures.{kind}") for kind, params in cures.items()
    }


def check_cures(cfg: Config, source: Any, probe: Any) -> None:
    """Every cure finds its scheme, data and model (a one-replicate probe), and runs by sampling."""
    for kind in cfg.cures:
        cls = CURES.get(kind).obj
        if cfg.model.population:
            raise ConfigError(f"cures.{kind}: cures have no exact infinite-sample update")
        if cls.schemes is not None and cfg.scheme.kind not in cls.schemes:
            supported = ", ".join(sorted(cls.schemes))
            raise ConfigError(
                f"cures.{kind}: defined for scheme {supported}, not {cfg.scheme.kind!r}"
            )
        for need in cls.needs:
            if not need.check(source, probe):
                raise ConfigError(
                    f"cures.{kind} needs {need.what} (data.kind {cfg.data.kind!r}, "
                    f"model.kind {cfg.model.kind!r})"
                )


def build_cures(cfg: Config, source: Any) -> list[Cure]:
    """The run's cures, one object per configured kind."""
    return [CURES.get(kind).obj(params, source) for kind, params in cfg.cures.items()]
