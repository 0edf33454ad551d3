"""The executor protocol: what runs a sweep's resolved configs into a store. `selfconsume run
--executor NAME` picks one from `EXECUTORS`; the Python API also takes any object that has `run`.

Whatever the executor, the process that calls `run` is the store's only writer (DESIGN: workers
compute, the sweep's process writes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from selfconsume.config import Config
from selfconsume.errors import ConfigError
from selfconsume.loop.run import RunOutcome
from selfconsume.sweep.executors import WAIT_WORKERS, run_dask, run_local

Poll = Callable[[], None]


@runtime_checkable
class Executor(Protocol):
    """Runs configs (resuming what the store has) and returns one outcome per config, in order;
    `poll` is called between events (the progress line)."""

    def run(self, cfgs: Sequence[Config], store_path: Path, poll: Poll) -> list[RunOutcome]: ...


@dataclass(frozen=True)
class Local:
    """In this process (workers = 1) or in a pool of local worker processes."""

    workers: int = 1

    def run(self, cfgs: Sequence[Config], store_path: Path, poll: Poll) -> list[RunOutcome]:
        return run_local(cfgs, store_path, self.workers, poll)


@dataclass(frozen=True)
class Dask:
    """On a Dask scheduler (its address), or a local cluster of `workers` bound to 127.0.0.1."""

    workers: int = 1
    scheduler: str | None = None
    wait_workers: float = WAIT_WORKERS

    def run(self, cfgs: Sequence[Config], store_path: Path, poll: Poll) -> list[RunOutcome]:
        return run_dask(cfgs, store_path, self.workers, self.scheduler, poll, self.wait_workers)


EXECUTORS: dict[str, Callable[..., Executor]] = {
    "local": lambda workers, scheduler, wait_workers: Local(workers),
    "dask": Dask,
}
"""`--executor` names: `factory(workers, scheduler, wait_workers) -> Executor`."""


def executor_named(
    name: str, workers: int = 1, scheduler: str | None = None, wait_workers: float = WAIT_WORKERS
) -> Executor:
    """The executor `--executor NAME` means, with the CLI's worker options."""
    if name not in EXECUTORS:
        raise ConfigError(f"executor: unknown executor {name!r} (known: {', '.join(EXECUTORS)})")
    return EXECUTORS[name](workers, scheduler, wait_workers)
