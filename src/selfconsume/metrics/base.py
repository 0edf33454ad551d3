"""The metric registry and the context every metric reads.

A metric group (the names listed under `metrics:` in a config) is a function of a `MetricContext`
returning named arrays of shape (replicates,): one stored value per (replicate, generation, name).
Each group declares the names it outputs when it registers (`outputs=`): plain snake_case names,
or an indexed series such as `mass_{i}` (mass_0, mass_1, ...). `presets --kinds`, the report and
the contract suite read these declarations; a group may leave out a name it cannot compute for a
run (`std` in more than one dimension), never output one it did not declare. A group registered
with `reference=True` also reads p_0, the generation-0 model, frozen (`MetricContext.reference`):
the loop keeps a copy of it only for runs that ask for such a group.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from selfconsume.kinds import METRIC_KINDS
from selfconsume.registry import Example, Need, Params, Registry
from selfconsume.seeding import Streams

MetricValues = dict[str, np.ndarray]


@dataclass
class MetricContext:
    """What a metric may look at for generation t: the model, the truth and the real/test sets."""

    model: Any
    source: Any
    real: np.ndarray
    test: np.ndarray
    generation: int
    streams: Streams
    reward: Callable[[np.ndarray], np.ndarray] | None = None
    beta: float = 1.0
    population: bool = False
    reference: Any = None
    """p_0, the generation-0 model, frozen (a group registered with `reference=True`; else None)."""

    @cached_property
    def samples(self) -> np.ndarray:
        """n_test fresh samples of p_t per replicate, drawn once and shared by all metrics."""
        n = self.test.shape[1]
        return self.model.sample(
            n, self.streams.per_replicate("eval", self.generation), self.generation
        )


Metric = Callable[[MetricContext], MetricValues]
OUTPUT = re.compile(r"[a-z][a-z0-9_]*(\{[a-z]+\}[a-z0-9_]*)?\Z")
"""A declared output: snake_case, with at most one index placeholder (`mass_{i}`)."""


def output_pattern(output: str) -> re.Pattern[str]:
    """The stored names a declared output stands for: itself, or its series (`mass_{i}` ->
    mass_0, mass_1, ...)."""
    return re.compile(re.sub(r"\\\{[a-z]+\\\}", r"\\d+", re.escape(output)) + r"\Z")


def is_series(output: str) -> bool:
    """Whether a declared output is an indexed series (`mass_{i}`), not one name."""
    return "{" in output


class MetricRegistry(Registry[Metric]):
    """The metric registry: every metric group registers with the value names it outputs."""

    def register(
        self,
        kind: str,
        params: type[Params] = Params,
        needs: Sequence[Need] = (),
        example: Example | None = None,
        outputs: Sequence[str] = (),
        reference: bool = False,
    ) -> Callable[[Metric], Metric]:
        """Register a metric group as `kind`, declaring the names it outputs (required) and
        whether it reads the frozen generation-0 model (`reference`)."""
        bad = [o for o in outputs if not OUTPUT.match(o)]
        if not outputs or bad:
            raise ValueError(f"metric {kind!r} must declare snake_case outputs (got {outputs!r})")
        wrap = super().register(kind, params, needs, example, outputs)

        def wrap_reference(obj: Metric) -> Metric:
            wrap(obj)
            self._entries[kind] = replace(self._entries[kind], reference=reference)
            return obj

        return wrap_reference

    def declared(self, kind: str, name: str) -> str | None:
        """The declared output of group `kind` that a stored `name` is (None: undeclared)."""
        return next((o for o in self.get(kind).outputs if output_pattern(o).match(name)), None)


METRICS = MetricRegistry("metrics", METRIC_KINDS)
