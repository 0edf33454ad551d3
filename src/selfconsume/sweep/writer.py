"""The one writer of a pooled or Dask sweep: the process that ran `selfconsume run`.

It takes each run's lease, reads what the run resumes from, commits the generations its workers
send back (in order, each in the store's one transaction; a generation sent twice by a retried task
is committed once) and records how each run ended. Workers never open the store.

While it writes, it holds RESERVE_BYTES of disk in a file beside the store (`<store>-reserve`). When
the disk fills, the sweep stops and frees that space first, so that SQLite can still record every
unfinished run as interrupted (with the error as its reason) instead of leaving it `running`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from selfconsume.config import Config
from selfconsume.errors import RunBusy
from selfconsume.loop.run import RunOutcome, read_resume
from selfconsume.store.sqlite import Store
from selfconsume.sweep.wire import decode_record, encode_resume

log = logging.getLogger(__name__)
RESERVE_BYTES = 1 << 20
"""Disk space held during a sweep and freed when the sweep stops, so its runs' fate can be written."""


@dataclass(frozen=True)
class Result:
    """What a worker returns for one task: how the run ended there and the last generation it sent.

    status: done | failed | bad_input | stale (the task started behind what is committed, as a
    task the scheduler reran after its worker died does; the writer resubmits it)."""

    run_id: str
    status: str
    last: int = -1
    error: str | None = None
    traceback: str | None = None
    sent_bytes: int = 0


class Writer:
    """Leases, resume states, ordered commits and run endings for the runs of one sweep."""

    def __init__(self, store: Store, heartbeat_seconds: float | None = None) -> None:
        self.store = store
        self.next: dict[str, int] = {}  # per active run: the next generation to commit
        self.busy: dict[str, str] = {}  # runs whose lease another live process took over
        self.sent_bytes = 0  # bytes of records received
        self.heartbeat_seconds = heartbeat_seconds or store.lease_timeout / 4
        self._beat_at = time.monotonic()
        self.reserve = store.path.with_name(store.path.name + "-reserve")
        try:  # random bytes: no file system can store them compressed or sparse
            self.reserve.write_bytes(os.urandom(RESERVE_BYTES))
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        """Give the reserved disk space back."""
        self.reserve.unlink(missing_ok=True)

    def begin(self, cfg: Config) -> RunOutcome | bytes:
        """Take the run's lease: its resume state to ship, or its outcome if there is nothing to
        do (done already, or another live process holds it)."""
        try:
            record = self.store.begin_run(cfg)
        except RunBusy as exc:
            return RunOutcome(cfg.run_id, "busy", str(exc))
        if record.status == "done":
            return RunOutcome(cfg.run_id, "done")
        return self.resume(cfg.run_id)

    def resume(self, run_id: str) -> bytes:
        """The run's resume state from what is committed now (for a first or a repeated task)."""
        resume = read_resume(self.store, run_id)
        self.next[run_id] = resume.start
        return encode_resume(resume)

    def commit(self, data: bytes) -> None:
        """Commit one generation record if it is the run's next one; a repeat is dropped."""
        self.sent_bytes += len(data)
        record = decode_record(data)
        expected = self.next.get(record.run_id)
        if record.generation != expected:
            if expected is not None and record.generation > expected:  # cannot happen: log it
                log.warning(
                    "run %s: generation %d arrived before %d; dropped",
                    record.run_id,
                    record.generation,
                    expected,
                )
            return
        try:
            self.store.commit_generation(
                record.run_id,
                record.generation,
                record.metrics,
                record.checkpoint,
                record.samples,
                record.pool_batch,
            )
        except RunBusy as exc:
            self._lost_lease(record.run_id, exc)
            return
        self.next[record.run_id] = expected + 1

    def _lost_lease(self, run_id: str, exc: RunBusy) -> None:
        """Another live process took the run over: it computes and records it; we stop."""
        self.busy[run_id] = str(exc)
        self.next.pop(run_id, None)

    def committed(self, run_id: str) -> int:
        """How many generations of an active run are committed (its next generation)."""
        return self.next[run_id]

    def settled(self, result: Result) -> bool:
        """Whether every generation the task sent is committed (or will never be, by us)."""
        return result.run_id in self.busy or self.next.get(result.run_id, 0) > result.last

    def finish(self, result: Result) -> RunOutcome:
        """Record how a run ended on its worker; its lease is released."""
        try:
            return self._finish(result)
        except RunBusy as exc:
            self.busy[result.run_id] = str(exc)
        return RunOutcome(result.run_id, "busy", self.busy[result.run_id])

    def _finish(self, result: Result) -> RunOutcome:
        run_id = result.run_id
        self.next.pop(run_id, None)
        if run_id in self.busy:
            raise RunBusy(self.busy[run_id])
        if result.status == "done":
            self.store.finish_run(run_id, "done")
            return RunOutcome(run_id, "done")
        if result.status == "bad_input":
            self.store.finish_run(run_id, "failed", f"bad input: {result.error}")
            return RunOutcome(run_id, "bad_input", result.error)
        self.store.finish_run(run_id, "failed", result.error, traceback=result.traceback)
        return RunOutcome(run_id, "failed", result.error)

    def lost(self, run_id: str, reason: str, traceback: str | None = None) -> RunOutcome:
        """A task that ended without a result (its worker died, the cluster lost it): failed."""
        return self.finish(Result(run_id, "failed", error=reason, traceback=traceback))

    def heartbeat(self) -> None:
        """Refresh the leases of the active runs now and then (queued runs send nothing)."""
        if time.monotonic() - self._beat_at < self.heartbeat_seconds:
            return
        self._beat_at = time.monotonic()
        for run_id in list(self.next):
            try:
                self.store.heartbeat(run_id)
            except RunBusy as exc:
                self._lost_lease(run_id, exc)

    def stop(self, cause: BaseException) -> None:
        """The sweep stops (an interrupt, or an error such as a full disk): give the reserve back,
        then mark every active run interrupted with the cause (a rerun resumes it). The cause
        propagates, so a failure to record is only logged."""
        self.close()
        reason = (
            "interrupted"
            if isinstance(cause, KeyboardInterrupt)
            else f"stopped: {_one_line(cause)}"
        )
        for run_id in list(self.next):
            try:
                self.store.finish_run(run_id, "interrupted", reason)
            except RunBusy:
                pass
            except Exception as exc:  # its lease dies with this process: a rerun resumes it
                log.warning("run %s: could not be marked interrupted (%s)", run_id, _one_line(exc))
        self.next.clear()


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
