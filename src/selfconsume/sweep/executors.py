"""Executors for a sweep's runs: in-process, local worker processes, or a Dask cluster.

Every worker opens the one store itself and commits generation by generation; the parent only
watches the store for progress. Each worker uses one torch/BLAS thread (two single-threaded
processes beat one two-threaded process on a small CPU).

Failures stay with their run: whatever a run raises is recorded as that run's failure and its
siblings go on. Stopping is clean: SIGTERM becomes `Terminated` (a KeyboardInterrupt), so Ctrl-C
and SIGTERM alike cancel pending runs, terminate the workers, mark this sweep's unfinished runs
`interrupted` and propagate to the caller.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, suppress
from multiprocessing import get_context
from pathlib import Path

from selfconsume.config import Config
from selfconsume.errors import ConfigError, RunBusy
from selfconsume.loop.run import RunOutcome, run_config
from selfconsume.plan import from_json
from selfconsume.store.sqlite import Store

Poll = Callable[[], None]
POLL_SECONDS = 0.5
STOP_SECONDS = 5.0
"""How long a terminated worker may take to record its run as interrupted before it is killed."""
EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process was so that it unwinds like Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Inside, SIGTERM raises Terminated (only the main thread can own signals; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def single_thread() -> None:
    """Pin this process to one BLAS/torch thread."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:  # otherwise torch reads OMP_NUM_THREADS when first imported
        sys.modules["torch"].set_num_threads(1)


def _init_worker() -> None:
    """A pool worker: one thread, and Ctrl-C is the parent's to handle (it stops us by SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    single_thread()


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def run_guarded(
    cfg: Config, store: Store, on_generation: Callable[[int], None] | None = None
) -> RunOutcome:
    """Run one config; bad input and anything run_config could not record become an outcome."""
    try:
        return run_config(cfg, store, on_generation)
    except ConfigError as exc:
        return RunOutcome(cfg.run_id, "bad_input", str(exc))
    except Exception as exc:  # the store itself failed, so the failure could not be recorded
        return RunOutcome(cfg.run_id, "failed", _one_line(exc))


def run_one(config_json: str, store_path: str) -> RunOutcome:
    """Worker entry point: run one config into the store. SIGTERM (from the parent stopping the
    pool) marks the run interrupted, then ends this process."""
    single_thread()
    cfg = from_json(config_json)
    try:
        with sigterm_raises():
            store = Store(store_path)
            try:
                return run_guarded(cfg, store)
            finally:
                store.close()
    except Terminated:
        os._exit(EXIT_SIGTERM)


def run_local(
    cfgs: Sequence[Config], store_path: Path, workers: int, poll: Poll
) -> list[RunOutcome]:
    """Run configs in this process (workers=1) or in a pool of worker processes."""
    if workers <= 1 or len(cfgs) == 1:
        return _run_here(cfgs, store_path, poll)
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_init_worker
    )
    try:
        with sigterm_raises():
            futures = [pool.submit(run_one, c.model_dump_json(), str(store_path)) for c in cfgs]
            _wait_all(futures, poll)
    except KeyboardInterrupt:
        _stop_pool(pool)
        mark_interrupted(cfgs, store_path)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return _outcomes(cfgs, futures, store_path)


def _run_here(cfgs: Sequence[Config], store_path: Path, poll: Poll) -> list[RunOutcome]:
    single_thread()
    store = Store(store_path)
    try:
        with sigterm_raises():
            outcomes = []
            for cfg in cfgs:
                outcomes.append(run_guarded(cfg, store, on_generation=lambda _t: poll()))
                poll()
            return outcomes
    except KeyboardInterrupt:  # run_config marked its run; this covers a signal between two steps
        mark_interrupted(cfgs, store_path)
        raise
    finally:
        store.close()


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the workers (SIGTERM, then SIGKILL if slow)."""
    processes = list((pool._processes or {}).values())  # Python 3.14 has pool.terminate_workers()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        with suppress(OSError, ValueError):
            p.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def run_dask(
    cfgs: Sequence[Config], store_path: Path, workers: int, scheduler: str | None, poll: Poll
) -> list[RunOutcome]:
    """Run configs on Dask: an existing scheduler, or a local cluster bound to 127.0.0.1.

    Workers write to `store_path`, so on a cluster it must be on a shared file system. On an
    interrupt a local cluster is closed (its workers end); an external scheduler's workers finish
    the task they hold, which cannot be cancelled once started."""
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
    futures: list = []
    interrupted = False
    try:
        with sigterm_raises():
            for c in cfgs:
                futures.append(
                    client.submit(run_one, c.model_dump_json(), str(store_path), pure=False)
                )
            _wait_all(futures, poll)
        return _outcomes(cfgs, futures, store_path)
    except KeyboardInterrupt:
        interrupted = True
        logging.getLogger("distributed").setLevel(logging.ERROR)  # cancelled tasks are expected
        client.cancel(futures)
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        if interrupted:
            mark_interrupted(cfgs, store_path)


def _wait_all(futures: list, poll: Poll) -> None:
    pending = set(futures)
    while pending:
        if isinstance(futures[0], Future):
            _, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
        else:
            time.sleep(POLL_SECONDS)
            pending = {f for f in pending if not f.done()}
        poll()


def _outcomes(cfgs: Sequence[Config], futures: list, store_path: Path) -> list[RunOutcome]:
    """Each future's outcome; a worker that died (or any error outside run_config) fails its run."""
    outcomes, lost = [], []
    for cfg, future in zip(cfgs, futures, strict=True):
        try:
            outcomes.append(future.result())
        except Exception as exc:
            outcomes.append(RunOutcome(cfg.run_id, "failed", _one_line(exc)))
            lost.append(outcomes[-1])
    if lost:
        _mark_running(store_path, {o.run_id: o.error for o in lost}, "failed")
    return outcomes


def mark_interrupted(cfgs: Sequence[Config], store_path: Path) -> None:
    """Mark this sweep's runs still `running` as `interrupted` (no live process holds them now)."""
    _mark_running(store_path, dict.fromkeys((c.run_id for c in cfgs), "interrupted"), "interrupted")


def _mark_running(store_path: Path, reasons: dict[str, str | None], status: str) -> None:
    store = Store(store_path)
    try:
        progress = store.progress()
        for run_id, reason in reasons.items():
            if progress.get(run_id, (0, ""))[1] == "running":
                with suppress(RunBusy):  # a live process (another command) holds it
                    store.finish_run(run_id, status, reason)
    finally:
        store.close()
