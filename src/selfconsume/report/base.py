"""What figures read: an experiment (all runs sharing a name) loaded from the store, and the
registry of figure makers. A maker returns the figures it applies to, or none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from selfconsume.store.sqlite import RunRecord, Store


@dataclass
class RunData:
    """One run's resolved config, status and metric arrays: metrics[name] has shape (G, R)."""

    record: RunRecord
    metrics: dict[str, np.ndarray]
    label: str
    store: Store

    @property
    def config(self) -> dict[str, Any]:
        return self.record.config

    def samples(self) -> dict[int, np.ndarray]:
        """Stored sample snapshots by generation, each (replicates_kept, n, dim)."""
        return self.store.samples(self.record.run_id)


@dataclass
class Experiment:
    """All runs of one experiment name; labels name what differs between them (the sweep)."""

    name: str
    runs: list[RunData] = field(default_factory=list)

    @cached_property
    def metric_names(self) -> set[str]:
        return {m for r in self.runs for m in r.metrics}


@dataclass(frozen=True)
class Figure:
    path: Path
    title: str
    caption: str


FigureMaker = Callable[[Experiment, Path], list[Figure]]
FIGURES: list[FigureMaker] = []


def figure_maker(fn: FigureMaker) -> FigureMaker:
    """Register a figure maker; it is called for every experiment and returns [] if it does not apply."""
    FIGURES.append(fn)
    return fn


def save(fig: Any, path: Path, title: str, caption: str) -> Figure:
    """Save a matplotlib figure as PNG, close it, and describe it for the page."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Figure(path, title, caption)
