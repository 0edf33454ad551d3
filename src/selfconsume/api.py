"""The Python API: run an experiment into a store and read its results back as a DataFrame."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from selfconsume.config import Config
from selfconsume.loop.run import RunOutcome
from selfconsume.plan import load
from selfconsume.store.sqlite import Store
from selfconsume.sweep.executors import run_dask, run_local
from selfconsume.sweep.progress import SweepProgress

if TYPE_CHECKING:
    import pandas as pd


def run_experiment(
    config: str | Path,
    overrides: Sequence[str] = (),
    store: str | Path = "runs/store.sqlite",
    executor: str = "local",
    workers: int = 1,
    scheduler: str | None = None,
    quick: bool = False,
) -> list[RunOutcome]:
    """Run a config file or preset (all runs of its sweep), resuming what the store already has."""
    cfgs: list[Config] = load(str(config), list(overrides), quick=quick)
    store_path = Path(store)
    watcher = Store(store_path)
    try:
        with SweepProgress(cfgs, watcher) as progress:
            if executor == "dask":
                return run_dask(cfgs, store_path, workers, scheduler, progress.poll)
            return run_local(cfgs, store_path, workers, progress.poll)
    finally:
        watcher.close()


def results(store: str | Path = "runs/store.sqlite", name: str | None = None) -> pd.DataFrame:
    """Metric values in long format: run_id, name, replicate, generation, metric, value."""
    from selfconsume.store.export import long_frame

    return long_frame(Store(store), name)
