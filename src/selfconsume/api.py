"""The Python API: run an experiment into a store; read its values and their summary back."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from selfconsume.config import Config
from selfconsume.loop.run import RunOutcome
from selfconsume.plan import load
from selfconsume.store.sqlite import Store
from selfconsume.sweep.executor import Executor, executor_named
from selfconsume.sweep.executors import WAIT_WORKERS
from selfconsume.sweep.progress import SweepProgress

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr


def run_experiment(
    config: str | Path,
    overrides: Sequence[str] = (),
    store: str | Path = "runs/store.sqlite",
    executor: str | Executor = "local",
    workers: int = 1,
    scheduler: str | None = None,
    quick: bool = False,
    wait_workers: float = WAIT_WORKERS,
) -> list[RunOutcome]:
    """Run a config file or preset (all runs of its sweep), resuming what the store already has.

    This process is the store's only writer, whatever the executor. On Dask, an unreachable
    `scheduler` is a ConfigError and one with no workers for `wait_workers` seconds a ClusterError.
    Trained data classifiers (image rewards and features) are cached in `cache/` beside the store
    unless SELFCONSUME_CACHE names another folder (set here, so worker processes inherit it).
    `executor` is a name (`local`, `dask`, with `workers` and `scheduler`) or any `Executor`."""
    cfgs = load(str(config), list(overrides), quick=quick)
    return run_configs(cfgs, store, executor, workers, scheduler, wait_workers)


def run_configs(
    cfgs: Sequence[Config],
    store: str | Path = "runs/store.sqlite",
    executor: str | Executor = "local",
    workers: int = 1,
    scheduler: str | None = None,
    wait_workers: float = WAIT_WORKERS,
) -> list[RunOutcome]:
    """Run resolved configs (of one experiment or several) as one sweep, in the given order: what
    `run_experiment` does once its config is loaded."""
    store_path = Path(store)
    if isinstance(executor, str):
        executor = executor_named(executor, workers, scheduler, wait_workers)
    os.environ.setdefault("SELFCONSUME_CACHE", str(store_path.parent / "cache"))
    watcher = Store(store_path)
    try:
        with SweepProgress(cfgs, watcher) as progress:
            return executor.run(cfgs, store_path, progress.poll)
    finally:
        watcher.close()


def results(
    store: str | Path = "runs/store.sqlite", name: str | None = None, xarray: bool = False
) -> pd.DataFrame | xr.Dataset:
    """Every metric value, read-only, in long format: run_id, name, replicate, generation, metric,
    value, then one column per swept key. A compact frame (categoricals for the ids, names, metrics
    and swept keys; int32 replicate and generation; float64 values); with xarray=True, a Dataset with
    dims run x replicate x generation and one variable per metric. A missing store is a ConfigError."""
    from selfconsume.store.export import long_frame, xarray_dataset
    from selfconsume.store.reader import StoreReader

    with StoreReader(store) as reader:
        return xarray_dataset(reader, name) if xarray else long_frame(reader, name)


def summary(store: str | Path = "runs/store.sqlite", name: str | None = None) -> pd.DataFrame:
    """Per (run, generation, metric): n, mean, sd, standard error and the 95% t interval of the
    mean over replicates (ci_low, ci_high), then one column per swept key."""
    from selfconsume.store.export import summary_frame
    from selfconsume.store.reader import StoreReader

    with StoreReader(store) as reader:
        return summary_frame(reader, name)
