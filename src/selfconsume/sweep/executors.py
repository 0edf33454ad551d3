"""Executors for a sweep's runs: in-process, local worker processes, or a Dask cluster.

Every worker opens the one store itself and commits generation by generation; the parent only
watches the store for progress. Each worker uses one torch/BLAS thread (two single-threaded
processes beat one two-threaded process on a small CPU).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from selfconsume.config import Config
from selfconsume.errors import ConfigError
from selfconsume.loop.run import RunOutcome, run_config
from selfconsume.plan import from_json
from selfconsume.store.sqlite import Store

Poll = Callable[[], None]
POLL_SECONDS = 0.5


def single_thread() -> None:
    """Pin this process to one BLAS/torch thread."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:  # else torch reads OMP_NUM_THREADS when a torch family imports it
        sys.modules["torch"].set_num_threads(1)


def run_one(config_json: str, store_path: str) -> RunOutcome:
    """Worker entry point: run one config into the store; bad input comes back as an outcome."""
    single_thread()
    cfg = from_json(config_json)
    store = Store(store_path)
    try:
        return run_config(cfg, store)
    except ConfigError as exc:
        return RunOutcome(cfg.run_id, "bad_input", str(exc))
    finally:
        store.close()


def run_local(
    cfgs: Sequence[Config], store_path: Path, workers: int, poll: Poll
) -> list[RunOutcome]:
    """Run configs in this process (workers=1) or in a pool of worker processes."""
    if workers <= 1 or len(cfgs) == 1:
        single_thread()
        store = Store(store_path)
        try:
            outcomes = []
            for cfg in cfgs:
                try:
                    outcomes.append(run_config(cfg, store, on_generation=lambda _t: poll()))
                except ConfigError as exc:
                    outcomes.append(RunOutcome(cfg.run_id, "bad_input", str(exc)))
                poll()
            return outcomes
        finally:
            store.close()
    ctx = get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=single_thread
    ) as pool:
        futures = [pool.submit(run_one, c.model_dump_json(), str(store_path)) for c in cfgs]
        return _gather(futures, poll)


def run_dask(
    cfgs: Sequence[Config], store_path: Path, workers: int, scheduler: str | None, poll: Poll
) -> list[RunOutcome]:
    """Run configs on Dask: an existing scheduler, or a local cluster bound to 127.0.0.1.

    Workers write to `store_path`, so on a cluster it must be on a shared file system."""
    from dask.distributed import Client, LocalCluster

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=max(workers, 1),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    client = Client(scheduler or cluster)
    try:
        futures = [
            client.submit(run_one, c.model_dump_json(), str(store_path), pure=False) for c in cfgs
        ]
        return _gather(futures, poll)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _gather(futures: list, poll: Poll) -> list[RunOutcome]:
    pending = set(futures)
    while pending:
        if isinstance(futures[0], Future):
            _, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
        else:
            time.sleep(POLL_SECONDS)
            pending = {f for f in pending if not f.done()}
        poll()
    return [f.result() for f in futures]
