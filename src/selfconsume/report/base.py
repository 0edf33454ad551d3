"""What figures and tables read: an experiment (all runs sharing a name) loaded read-only from the
store, and the registries of figure makers and theory-table makers. A maker returns what it applies
to, or nothing. File names come from `Experiment.slug`, never from the raw name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from selfconsume.config import Config
from selfconsume.errors import ConfigError
from selfconsume.store.reads import StoreReads
from selfconsume.store.records import RunRecord

SLUG_LENGTH = 40


@dataclass
class RunData:
    """One run's resolved config, status and metric arrays: metrics[name] has shape (G, R)."""

    record: RunRecord
    metrics: dict[str, np.ndarray]
    label: str
    store: StoreReads
    problems: list[str] | None = None
    """Where a damaged sample snapshot is reported (one line) instead of raised, if given."""

    @property
    def config(self) -> Config:
        return self.record.config

    def samples(self) -> dict[int, np.ndarray]:
        """Stored sample snapshots by generation, each (replicates_kept, n, dim); none if one is
        damaged and `problems` takes the line that says so."""
        try:
            return self.store.samples(self.record.run_id)
        except ConfigError as exc:
            if self.problems is None:
                raise
            self.problems.append(str(exc))
            return {}


def slug(name: str) -> str:
    """A file-name-safe stem for an experiment name: letters, digits, '-', '_' only, at most
    SLUG_LENGTH of them, plus a hash of the name whenever anything had to change (no collisions)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:SLUG_LENGTH]
    if safe == name:
        return safe
    return f"{safe or 'experiment'}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


@dataclass
class Experiment:
    """All runs of one experiment name; labels name what differs between them (the sweep)."""

    name: str
    runs: list[RunData] = field(default_factory=list)

    @cached_property
    def metric_names(self) -> set[str]:
        return {m for r in self.runs for m in r.metrics}

    @property
    def slug(self) -> str:
        return slug(self.name)

    def path(self, out: Path, suffix: str) -> Path:
        """Where a figure of this experiment goes: out/<slug>-<suffix>.png (always inside out)."""
        return out / f"{self.slug}-{suffix}.png"


@dataclass(frozen=True)
class Figure:
    """A saved figure: the PNG shown on the page and its SVG for papers."""

    path: Path
    title: str
    caption: str

    @property
    def svg(self) -> Path:
        return self.path.with_suffix(".svg")


@dataclass(frozen=True)
class TheoryRow:
    """A closed form against the simulation at one generation: mean over replicates and its SE."""

    run: str
    quantity: str
    generation: int
    theory: float
    mean: float
    se: float

    @property
    def z(self) -> float:
        return (self.mean - self.theory) / self.se if self.se > 0 else float("nan")


FigureMaker = Callable[[Experiment, Path], list[Figure]]
TableMaker = Callable[[Experiment], list[TheoryRow]]
FIGURES: list[FigureMaker] = []
TABLES: list[TableMaker] = []


def figure_maker(fn: FigureMaker) -> FigureMaker:
    """Register a figure maker; it is called for every experiment and returns [] if it does not apply."""
    FIGURES.append(fn)
    return fn


def table_maker(fn: TableMaker) -> TableMaker:
    """Register a theory-table maker: rows wherever a closed form for a stored metric exists."""
    TABLES.append(fn)
    return fn


def save(
    fig: Any, path: Path, title: str, caption: str, rect: tuple[float, ...] | None = None
) -> Figure:
    """Save a matplotlib figure as PNG (for the page) and SVG (for papers), close it, describe it."""
    import matplotlib.pyplot as plt

    if rect is None:
        fig.tight_layout()
    else:
        fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)
    return Figure(path, title, caption)


def mean_se(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over replicates and its standard error, per generation (values (G, R), NaN ignored)."""
    count = np.sum(np.isfinite(values), axis=1)
    mean = np.nanmean(values, axis=1)
    if values.shape[1] < 2:
        return mean, np.zeros_like(mean)
    return mean, np.nanstd(values, axis=1, ddof=1) / np.sqrt(np.maximum(count, 1))


def t_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over replicates and the half-width of its 95% Student t-interval, per generation
    (values (G, R); zero width with one replicate): with 3 to 5 replicates a normal interval
    would be 1.4 to 2.2 times too narrow."""
    from scipy import stats

    mean, se = mean_se(values)
    dof = max(values.shape[1] - 1, 1)
    return mean, stats.t.ppf(0.975, dof) * se


def curve(ax: Any, label: str, values: np.ndarray, law: Any = None, alpha: float = 0.2) -> Any:
    """A run's mean over replicates per generation with its 95% t-interval band (values (G, R))
    and, where given, its closed form `law` (G,) dashed; returns the curve's colour (for the
    run's other panels)."""
    mean, half = t_interval(values)
    gens = np.arange(len(mean))
    (line,) = ax.plot(gens, mean, label=label)
    ax.fill_between(gens, mean - half, mean + half, color=line.get_color(), alpha=alpha)
    if law is not None:
        ax.plot(gens, law, ls="--", color="k", lw=0.8)
    return line.get_color()


def theory_rows(label: str, quantity: str, values: np.ndarray, law: np.ndarray) -> list[TheoryRow]:
    """The simulated `values` (G, R) against the closed form `law` (G,) at generation 1, the
    middle one and the last."""
    mean, se = mean_se(values)
    last = len(values) - 1
    shown = sorted({1, last // 2, last} & set(range(last + 1)))
    return [
        TheoryRow(label, quantity, g, float(law[g]), float(mean[g]), float(se[g])) for g in shown
    ]
