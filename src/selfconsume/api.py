"""The Python API: run an experiment into a store; read its values and their summary back."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from selfconsume.config import Config
from selfconsume.errors import ConfigError
from selfconsume.limits import memory_warning
from selfconsume.loop.run import RunOutcome
from selfconsume.plan import load
from selfconsume.store.sqlite import Store
from selfconsume.sweep.executor import Dask, Executor, executor_named
from selfconsume.sweep.executors import WAIT_WORKERS, check_scheduler
from selfconsume.sweep.progress import SweepProgress

WAIT_POLL_SECONDS = 0.5
"""How often a `wait`ing sweep asks the store whether a busy run's holder has let go."""
log = logging.getLogger(__name__)

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
    wait: bool = False,
) -> list[RunOutcome]:
    """Run a config file or preset (all runs of its sweep), resuming what the store already has.

    This process is the store's only writer, whatever the executor. On Dask, an unreachable
    `scheduler` is a ConfigError and one with no workers for `wait_workers` seconds a ClusterError.
    Trained data classifiers (image rewards and features) are cached in `cache/` beside the store
    unless SELFCONSUME_CACHE names another folder (set here, so worker processes inherit it).
    `executor` is a name (`local`, `dask`, with `workers` and `scheduler`) or any `Executor`."""
    cfgs = load(str(config), list(overrides), quick=quick)
    return run_configs(cfgs, store, executor, workers, scheduler, wait_workers, wait)


def run_configs(
    cfgs: Sequence[Config],
    store: str | Path = "runs/store.sqlite",
    executor: str | Executor = "local",
    workers: int = 1,
    scheduler: str | None = None,
    wait_workers: float = WAIT_WORKERS,
    wait: bool = False,
) -> list[RunOutcome]:
    """Run resolved configs (of one experiment or several) as one sweep, in the given order: what
    `run_experiment` does once its config is loaded. A store path that cannot be a store file, or
    an unreachable scheduler, is a ConfigError raised before the store is created.

    A run another live process holds is `busy`; with `wait`, each busy run is waited for until
    its holder lets go. A run the holder finished is reported as it ended (done, or failed with
    its reason); one it left unfinished (interrupted, or the holder died) is resumed here."""
    store_path = Path(store)
    _check_store_path(store_path)
    if isinstance(executor, str):
        executor = executor_named(executor, workers, scheduler, wait_workers)
    if isinstance(executor, Dask) and executor.scheduler is not None:
        check_scheduler(executor.scheduler)

    def sweep(some: Sequence[Config]) -> list[RunOutcome]:
        return _sweep(some, store_path, executor)

    outcomes = sweep(cfgs)
    busy = {o.run_id for o in outcomes if o.status == "busy"}
    while wait and busy:
        ended = _wait_for_holders(store_path, busy)
        again = {o.run_id: o for o in sweep([c for c in cfgs if c.run_id in busy - set(ended)])}
        outcomes = [ended.get(o.run_id) or again.get(o.run_id, o) for o in outcomes]
        busy = {o.run_id for o in outcomes if o.status == "busy"}
    return outcomes


def _sweep(cfgs: Sequence[Config], store_path: Path, executor: Executor) -> list[RunOutcome]:
    os.environ.setdefault("SELFCONSUME_CACHE", str(store_path.parent / "cache"))
    watcher = Store(store_path)
    try:
        warning = memory_warning(cfgs)
        if warning:
            log.warning(warning)
        with SweepProgress(cfgs, watcher) as progress:
            return executor.run(cfgs, store_path, progress.poll)
    finally:
        watcher.close()


def _wait_for_holders(store_path: Path, run_ids: set[str]) -> dict[str, RunOutcome]:
    """Block until no other live process holds any of the runs (the store is polled: SQLite has
    no notifications); return the outcomes of those the holders finished (done or failed)."""
    store = Store(store_path)
    ended = {}
    try:
        for run_id in sorted(run_ids):
            holder = store.holder(run_id)
            if holder is not None:
                log.warning(
                    "run %s is being computed by %s: waiting for it (--wait)", run_id, holder
                )
            while store.holder(run_id) is not None:
                time.sleep(WAIT_POLL_SECONDS)
            record = store.run(run_id)
            if record.status in ("done", "failed"):
                ended[run_id] = RunOutcome(run_id, record.status, record.error)
    finally:
        store.close()
    return ended


def _check_store_path(path: Path) -> None:
    """A store is a file: refuse an empty path, a folder, a non-regular file or a parent that is
    not a folder, before anything is created."""
    if str(path) in ("", ".") or path.name in ("", ".", ".."):
        raise ConfigError(f"--store {str(path)!r}: expected a store file path (runs/store.sqlite)")
    if path.exists() and not path.is_file():
        raise ConfigError(f"--store {path}: exists and is not a regular file")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"--store {path}: {parent} is not a folder")


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
