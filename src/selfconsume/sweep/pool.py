"""Local worker processes for a sweep: one spawned process per slot, each with its own pipe.

A task goes to an idle worker; the worker sends back each finished generation's record, then the
task's result, in order on its pipe. Workers share nothing (no queue, no lock), so a worker that
dies, even mid-message, costs only the task it held: the pool keeps what arrived whole, fails that
task's future with `WorkerDied` and starts a fresh worker in its place; the other workers never
notice. A worker ends when the pool stops it (SIGTERM), and when its parent dies, even by SIGKILL
(PR_SET_PDEATHSIG on Linux, a watcher thread elsewhere), so none outlives the sweep.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from selfconsume.sweep.interrupts import Terminated, interrupts_raise

STOP_SECONDS = 5.0
"""How long a terminated worker may take to end before it is killed."""
EXIT_SIGTERM = 128 + signal.SIGTERM
PR_SET_PDEATHSIG = 1
PARENT_POLL_SECONDS = 0.5

Target = Callable[..., Any]
"""A task: target(*args, send) -> result, where send(bytes) ships one record to the parent."""


class WorkerDied(RuntimeError):
    """A task's worker process ended before returning (a signal, os._exit, the OOM killer)."""


@dataclass
class _Slot:
    process: BaseProcess
    conn: Connection
    future: Future | None = None


class LocalPool:
    """`workers` spawned processes running `target` tasks; records come back through `receive`.
    Slot i's process (and whichever replaces it) starts with envs[i] in its environment, if given
    (a GPU of its own: `executors.gpu_envs`)."""

    def __init__(
        self,
        workers: int,
        target: Target,
        initializer: Callable[[], None],
        envs: Sequence[dict[str, str]] = (),
    ) -> None:
        self._ctx = get_context("spawn")
        self._target, self._initializer = target, initializer
        self._envs = list(envs) or [{}] * workers
        self._waiting: deque[tuple[Future, tuple]] = deque()
        self._slots = [self._start(i) for i in range(workers)]

    def _start(self, i: int) -> _Slot:
        ours, theirs = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_serve,
            args=(theirs, os.getpid(), self._target, self._initializer, self._envs[i]),
            daemon=True,
        )
        process.start()
        theirs.close()
        return _Slot(process, ours)

    def submit(self, *args: Any) -> Future:
        """Queue a task for the next idle worker; its future holds the result or `WorkerDied`."""
        future: Future = Future()
        self._waiting.append((future, args))
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        for slot in self._slots:
            if slot.future is None and self._waiting:
                future, args = self._waiting.popleft()
                slot.future = future
                future.set_running_or_notify_cancel()
                with suppress(OSError):  # a dead worker: `receive` fails the task and replaces it
                    slot.conn.send(args)

    def receive(self, timeout: float) -> list[bytes]:
        """The records the workers sent, waiting up to `timeout` for the first; results and
        deaths are settled on the tasks' futures meanwhile."""
        wait([s.conn for s in self._slots] + [s.process.sentinel for s in self._slots], timeout)
        records: list[bytes] = []
        for i, slot in enumerate(self._slots):
            dead = slot.process.exitcode is not None  # before reading: all it sent is in the pipe
            try:
                while slot.conn.poll():
                    kind, payload = slot.conn.recv()
                    if kind == "record":
                        records.append(payload)
                    else:
                        slot.future.set_result(payload)
                        slot.future = None
            except (EOFError, OSError):  # it died, perhaps mid-message
                dead = True
            if dead:
                self._slots[i] = self._replace(slot, i)
        self._dispatch()
        return records

    def _replace(self, slot: _Slot, i: int) -> _Slot:
        """A fresh worker for a dead one; the task the dead one held fails with WorkerDied."""
        slot.process.kill()  # in case only its pipe broke
        slot.process.join()
        slot.conn.close()
        if slot.future is not None:
            how = describe_exit(slot.process.exitcode)
            slot.future.set_exception(WorkerDied(f"worker process {slot.process.pid} {how}"))
        return self._start(i)

    def stop(self) -> None:
        """End every worker (SIGTERM, then SIGKILL if slow); tasks not done are abandoned."""
        for slot in self._slots:
            with suppress(OSError, ValueError):
                slot.process.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for slot in self._slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.conn.close()
        self._slots = []


def describe_exit(code: int | None) -> str:
    """How a process ended, from its exit code: 'was killed by SIGKILL', 'exited with code 3'."""
    if code is not None and code < 0:
        with suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


# --- the worker side ---------------------------------------------------------------------------


def _serve(
    conn: Connection,
    parent: int,
    target: Target,
    initializer: Callable[[], None],
    env: dict[str, str],
) -> None:
    """A worker process: run each task that arrives, sending its records and then its result.
    Ctrl-C is the parent's to handle (it stops us by SIGTERM)."""
    _end_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(env)  # before CUDA starts: it reads CUDA_VISIBLE_DEVICES then
    initializer()

    def send(data: bytes) -> None:
        conn.send(("record", data))

    try:
        with interrupts_raise():
            while True:
                args = conn.recv()
                conn.send(("result", target(*args, send)))
    except Terminated:
        os._exit(EXIT_SIGTERM)  # skip the interpreter's clean-up: nothing here needs it


def _end_with_parent(parent: int) -> None:
    """Die with the sweep's process, even when it is SIGKILLed (no orphans)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # it died before the prctl
            os._exit(1)
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
