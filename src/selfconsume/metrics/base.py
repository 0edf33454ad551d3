"""The metric registry and the context every metric reads.

A metric group (the names listed under `metrics:` in a config) is a function of a `MetricContext`
returning named arrays of shape (replicates,): one stored value per (replicate, generation, name).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from selfconsume.kinds import METRIC_KINDS
from selfconsume.registry import Registry
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

    @cached_property
    def samples(self) -> np.ndarray:
        """n_test fresh samples of p_t per replicate, drawn once and shared by all metrics."""
        n = self.test.shape[1]
        return self.model.sample(
            n, self.streams.per_replicate("eval", self.generation), self.generation
        )


METRICS: Registry[Callable[[MetricContext], MetricValues]] = Registry("metrics", METRIC_KINDS)
