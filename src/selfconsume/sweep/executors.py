"""Executors for a sweep's runs: in-process, local worker processes, or a Dask cluster.

One writer: only the process that ran the sweep opens the store. Workers compute; each finished
generation travels back as a record (`sweep.wire`) and the `Writer` commits it, so a cluster needs
no shared file system. Each worker uses one torch/BLAS thread (two single-threaded processes beat
one two-threaded process on a small CPU). One process owns a GPU: when runs may work on one
(`device: auto | cuda`) and torch sees CUDA devices, `--workers N` starts at most one worker per
GPU, each seeing only its own (CUDA_VISIBLE_DEVICES), and says so in a log line.

Failures stay with their run: whatever a run raises (sys.exit included) is recorded as that run's
failure (with the worker's traceback) and its siblings go on. A worker that dies mid-run costs only
the generations it had not sent: its run resumes from the last committed generation on a fresh
worker (locally once: a run whose worker dies twice is failed with the reason). Stopping is clean:
SIGTERM becomes `Terminated` (a KeyboardInterrupt, `sweep.interrupts`), so Ctrl-C and SIGTERM alike
cancel pending runs, end the workers, mark this sweep's unfinished runs `interrupted` and propagate;
any other error that stops the sweep (a full disk, a lost cluster) does the same within seconds,
with the error as the runs' reason.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

from selfconsume.config import Config
from selfconsume.errors import ConfigError, RunBusy, interrupt_behind
from selfconsume.loop.run import RunOutcome, run_config, run_generations
from selfconsume.plan import build, from_json
from selfconsume.store.sqlite import Store
from selfconsume.sweep.interrupts import interrupts_raise, raise_pending
from selfconsume.sweep.pool import LocalPool, WorkerDied
from selfconsume.sweep.wire import SendingSink, decode_resume
from selfconsume.sweep.writer import Result, Writer

Poll = Callable[[], None]
Submit = Callable[[Config, bytes], Any]
Receive = Callable[[float], list[bytes]]
POLL_SECONDS = 0.5
SETTLE_SECONDS = 60.0
"""How long a finished task's records may take to arrive before the run is resubmitted."""
CONNECT_SECONDS = 5.0
WAIT_WORKERS = 60.0
"""Default: how long a scheduler may have no workers (at the start or later) before we give up."""
FREE_PORT = "127.0.0.1:0"
"""A local cluster's HTTP address: a free port (None would still bind the scheduler's routes to
8787, which two sweeps or a parallel test session cannot share)."""
log = logging.getLogger(__name__)


class ClusterError(RuntimeError):
    """The cluster cannot run the sweep (no workers): one line naming the scheduler."""


def single_thread() -> None:
    """Pin this process to one BLAS/torch thread."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:  # otherwise torch reads OMP_NUM_THREADS when first imported
        sys.modules["torch"].set_num_threads(1)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


# --- the worker side ---------------------------------------------------------------------------


def compute(
    run_id: str, config_json: str, resume: bytes, send: Callable[[bytes], object]
) -> Result:
    """One task on a worker: run the config's generations from `resume`, sending each back.

    Never touches a store. Whatever the run raises comes back as the result (with its traceback),
    SystemExit included (a user callable calling sys.exit fails its run, not the worker); only an
    interrupt (the worker being stopped) propagates."""
    sink = SendingSink(send)
    try:
        cfg = from_json(config_json)
        run_generations(build(cfg), sink, run_id, decode_resume(resume))
    except ConfigError as exc:
        return Result(run_id, "bad_input", sink.last, str(exc), sent_bytes=sink.sent_bytes)
    except (Exception, SystemExit) as exc:
        stop = interrupt_behind(exc)
        if isinstance(stop, KeyboardInterrupt):
            raise stop from None
        text = "".join(traceback.format_exception(exc))
        return Result(run_id, "failed", sink.last, _one_line(exc), text, sink.sent_bytes)
    return Result(run_id, "done", sink.last, sent_bytes=sink.sent_bytes)


def run_on_worker(run_id: str, config_json: str, resume: bytes, start: int, channel: str) -> Result:
    """Dask worker entry point: records go to the sweep's queue on the scheduler. A task that
    starts behind what the writer has committed (the scheduler reran it after its worker died)
    returns `stale` at once, and the writer resubmits it from the store."""
    from distributed import Queue, Variable, get_client

    client = get_client()
    committed = Variable(f"{channel}-committed", client=client).get(timeout=CONNECT_SECONDS)
    if committed.get(run_id, start) > start:
        return Result(run_id, "stale")
    single_thread()
    return compute(run_id, config_json, resume, Queue(channel, client=client).put)


# --- the writer side ---------------------------------------------------------------------------


def run_local(
    cfgs: Sequence[Config], store_path: Path, workers: int, poll: Poll
) -> list[RunOutcome]:
    """Run configs in this process (workers=1) or on local worker processes (`sweep.pool`), at
    most one per GPU when the runs may work on one (`device_workers`).

    Whatever stops the sweep (an interrupt, a full disk, a bug) first ends the workers, then marks
    the unfinished runs interrupted with that reason, then propagates."""
    workers = min(workers, len(cfgs))
    gpus = cuda_devices() if workers > 1 and any(map(wants_gpu, cfgs)) else 0
    capped = device_workers(workers, gpus)
    if capped < workers:
        log.warning(
            "%d worker processes asked, %d started: one process per GPU (%d CUDA device%s), "
            "so runs on a GPU do not fight over it",
            workers,
            capped,
            gpus,
            "" if gpus == 1 else "s",
        )
    if capped <= 1:
        return _run_here(cfgs, store_path, poll)
    with ExitStack() as stack:
        store = Store(store_path)
        stack.callback(store.close)
        writer = Writer(store)
        stack.callback(writer.close)
        envs = gpu_envs(capped, os.environ.get("CUDA_VISIBLE_DEVICES")) if gpus else []
        pool = LocalPool(capped, compute, single_thread, envs)
        stack.callback(pool.stop)

        def submit(cfg: Config, resume: bytes) -> Any:
            return pool.submit(cfg.run_id, cfg.model_dump_json(), resume)

        try:
            with interrupts_raise():
                return drive(cfgs, writer, submit, pool.receive, poll)
        except BaseException as exc:
            pool.stop()
            writer.stop(exc)
            raise


def wants_gpu(cfg: Config) -> bool:
    """Whether a run works on a GPU when one is present: its torch family's `device` or its
    feature network's (`data.params.features`) is `auto` or `cuda`."""
    features = getattr(cfg.data.params, "features", None)
    devices = (getattr(cfg.model.params, "device", "cpu"), getattr(features, "device", "cpu"))
    return any(d in ("auto", "cuda") for d in devices)


def cuda_devices() -> int:
    """How many CUDA devices torch sees (0 without CUDA; this does not start CUDA here)."""
    import torch

    return torch.cuda.device_count()


def device_workers(workers: int, gpus: int) -> int:
    """Local worker processes for runs that work on a GPU when present: one per GPU (N processes
    on one GPU fight over its memory and run their small kernels in turn, none faster); without
    a GPU (gpus = 0) `workers`, as on a CPU."""
    return min(workers, gpus) if gpus > 0 else workers


def gpu_envs(workers: int, visible: str | None) -> list[dict[str, str]]:
    """Worker i's environment: the i-th GPU of CUDA_VISIBLE_DEVICES (`visible`, else 0, 1, ...)
    as its only visible one, so each process owns one GPU."""
    ids = visible.split(",") if visible else [str(i) for i in range(workers)]
    return [{"CUDA_VISIBLE_DEVICES": ids[i].strip()} for i in range(workers)]


def _run_here(cfgs: Sequence[Config], store_path: Path, poll: Poll) -> list[RunOutcome]:
    single_thread()
    store = Store(store_path)
    try:
        with interrupts_raise():
            outcomes = []
            for cfg in cfgs:
                outcomes.append(_run_guarded(cfg, store, lambda _t: _poll(poll)))
                _poll(poll)
            return outcomes
    except KeyboardInterrupt:  # run_config marked its run; this covers a signal between two steps
        _mark_interrupted(cfgs, store)
        raise
    finally:
        store.close()


def _poll(poll: Poll) -> None:
    """Between two steps of a sweep: an interrupt a finaliser dropped, then the caller's poll."""
    raise_pending()
    poll()


def _run_guarded(cfg: Config, store: Store, on_generation: Callable[[int], None]) -> RunOutcome:
    """Run one config; bad input and anything run_config could not record become an outcome."""
    try:
        return run_config(cfg, store, on_generation)
    except ConfigError as exc:
        return RunOutcome(cfg.run_id, "bad_input", str(exc))
    except Exception as exc:  # the store itself failed, so the failure could not be recorded
        return RunOutcome(cfg.run_id, "failed", _one_line(exc))


def drive(
    cfgs: Sequence[Config],
    writer: Writer,
    submit: Submit,
    receive: Receive,
    poll: Poll,
    check: Poll | None = None,
) -> list[RunOutcome]:
    """Submit every run that has work left, commit the records as they arrive, and end each run
    once its task has returned and everything it sent is committed. A stale task, or one whose
    records do not arrive, is resubmitted from what is committed; so is a task whose worker died
    (`WorkerDied`), once: a run whose worker dies twice is failed."""
    unique = {c.run_id: c for c in cfgs}
    outcomes: dict[str, RunOutcome] = {}
    tasks: dict[str, Any] = {}
    deaths: dict[str, list[str]] = {}
    for run_id, cfg in unique.items():
        begun = writer.begin(cfg)
        if isinstance(begun, RunOutcome):
            outcomes[run_id] = begun
        else:
            tasks[run_id] = submit(cfg, begun)
    returned: dict[str, tuple[Result, float]] = {}
    while tasks or returned:
        for data in receive(POLL_SECONDS):
            writer.commit(data)
        for run_id, future in list(tasks.items()):
            if not future.done():
                continue
            del tasks[run_id]
            try:
                result = future.result()
            except WorkerDied as exc:  # what it sent before dying is committed already
                at = writer.next.get(run_id, "?")
                deaths.setdefault(run_id, []).append(f"{exc} (run at generation {at})")
                if len(deaths[run_id]) == 1 and run_id not in writer.busy:
                    log.warning(
                        "run %s: its %s; resuming it from generation %d on a fresh worker",
                        run_id,
                        exc,
                        writer.committed(run_id),
                    )
                    tasks[run_id] = submit(unique[run_id], writer.resume(run_id))
                else:
                    outcomes[run_id] = writer.lost(
                        run_id,
                        f"WorkerDied: twice; the last time its {exc}",
                        _deaths(deaths[run_id]),
                    )
                continue
            except Exception as exc:  # the worker or the cluster lost it: commit what did arrive
                for data in receive(0):
                    writer.commit(data)
                outcomes[run_id] = writer.lost(run_id, _one_line(exc))
                continue
            if result.status == "stale" and run_id not in writer.busy:
                resume = writer.resume(run_id)
                log.warning(
                    "run %s: its worker was lost; resuming it from generation %d",
                    run_id,
                    writer.committed(run_id),
                )
                tasks[run_id] = submit(unique[run_id], resume)
            else:
                returned[run_id] = (result, time.monotonic() + SETTLE_SECONDS)
        for run_id, (result, deadline) in list(returned.items()):
            if writer.settled(result):
                outcomes[run_id] = writer.finish(result)
            elif time.monotonic() > deadline:
                tasks[run_id] = submit(unique[run_id], writer.resume(run_id))
            else:
                continue
            del returned[run_id]
        writer.heartbeat()
        if check is not None:
            check()
        _poll(poll)
    return [outcomes[c.run_id] for c in cfgs]


def _deaths(deaths: list[str]) -> str:
    """The stored 'traceback' of a run whose worker died twice: a killed process has none."""
    lines = "\n".join(f"  {d}" for d in deaths)
    return (
        f"The run's worker process died twice, leaving no Python traceback:\n{lines}\n"
        "A signal or os._exit inside a user callable, or the kernel's OOM killer, ends a worker so."
    )


def run_dask(
    cfgs: Sequence[Config],
    store_path: Path,
    workers: int,
    scheduler: str | None,
    poll: Poll,
    wait_workers: float = WAIT_WORKERS,
) -> list[RunOutcome]:
    """Run configs on Dask: an existing scheduler, or a local cluster bound to 127.0.0.1.

    Records travel through a queue on the scheduler; the workers never see the store. An
    unreachable scheduler is bad input (ConfigError); one without workers for `wait_workers`
    seconds is a ClusterError. On an interrupt a local cluster is closed (its workers end); an
    external scheduler's workers finish the task they hold, which cannot be cancelled once started
    (its records are dropped)."""
    from dask.distributed import LocalCluster

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=max(workers, 1),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=FREE_PORT,
        )
    try:
        client = _connect(scheduler or cluster)
        try:
            return _on_client(client, cfgs, store_path, poll, wait_workers)
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _on_client(
    client: Any, cfgs: Sequence[Config], store_path: Path, poll: Poll, wait_workers: float
) -> list[RunOutcome]:
    from dask.distributed import Queue, Variable

    address = client.scheduler.address
    _wait_for_workers(client, address, wait_workers)
    channel = f"selfconsume-{uuid.uuid4().hex}"
    records = Queue(channel, client=client)
    committed = Variable(f"{channel}-committed", client=client)
    committed.set({})
    store = Store(store_path)
    writer = Writer(store)
    futures: dict[str, Any] = {}
    published: dict[str, int] = {}

    def publish() -> None:
        """Tell the workers how far each run is committed (a rerun task compares its start)."""
        if published != writer.next:
            published.clear()
            published.update(writer.next)
            committed.set(dict(published))

    def submit(cfg: Config, resume: bytes) -> Any:
        if cfg.run_id in futures:  # a resubmission: its start may lie below what was published
            publish()
        futures[cfg.run_id] = client.submit(
            run_on_worker,
            cfg.run_id,
            cfg.model_dump_json(),
            resume,
            writer.committed(cfg.run_id),
            channel,
            pure=False,
        )
        return futures[cfg.run_id]

    def receive(timeout: float) -> list[bytes]:
        """What the queue holds, asking every 50 ms until `timeout` (a blocking get that times
        out is logged as an error by the scheduler)."""
        deadline = time.monotonic() + timeout
        while True:
            items = records.get(batch=True)
            if items or time.monotonic() >= deadline:
                return items
            time.sleep(0.05)

    watchdog = _Watchdog(client, address, wait_workers)

    def check() -> None:
        watchdog.check()
        publish()

    try:
        with interrupts_raise():
            return drive(cfgs, writer, submit, receive, poll, check)
    except BaseException as exc:
        logging.getLogger("distributed").setLevel(logging.ERROR)  # cancelled tasks are expected
        with suppress(Exception):
            client.cancel(list(futures.values()))
        writer.stop(exc)
        raise
    finally:
        writer.close()
        store.close()


def _connect(address: Any) -> Any:
    """A client of the scheduler; ConfigError naming the address if it cannot be reached."""
    from dask.distributed import Client

    try:
        return Client(address, timeout=CONNECT_SECONDS)
    except (OSError, ValueError, TimeoutError) as exc:
        raise ConfigError(f"--scheduler {address}: cannot connect ({_one_line(exc)})") from None


def check_scheduler(address: str) -> None:
    """ConfigError naming the address unless a scheduler answers there: checked before the store
    is created, so an unreachable scheduler writes nothing."""
    _connect(address).close()


def _wait_for_workers(client: Any, address: str, seconds: float) -> None:
    try:
        client.wait_for_workers(1, timeout=seconds)
    except TimeoutError:
        raise ClusterError(f"scheduler {address} has had no workers for {seconds:g} s") from None


class _Watchdog:
    """Gives up (ClusterError) when the scheduler has had no workers for `seconds`."""

    def __init__(self, client: Any, address: str, seconds: float) -> None:
        self.client, self.address, self.seconds = client, address, seconds
        self.seen = self.asked = time.monotonic()

    def check(self) -> None:
        now = time.monotonic()
        if now - self.asked < 1.0:
            return
        self.asked = now
        if self.client.nthreads():
            self.seen = now
        elif now - self.seen > self.seconds:
            raise ClusterError(
                f"scheduler {self.address} has had no workers for {self.seconds:g} s"
            )


def _mark_interrupted(cfgs: Sequence[Config], store: Store) -> None:
    """Mark this sweep's runs still `running` as `interrupted` (no live process holds them now)."""
    progress = store.progress()
    for cfg in cfgs:
        if progress.get(cfg.run_id, (0, ""))[1] == "running":
            with suppress(RunBusy):  # another live process holds it
                store.finish_run(cfg.run_id, "interrupted", "interrupted")
