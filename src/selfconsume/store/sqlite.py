"""The embedded store: one SQLite file plus an artifact folder beside it.

Tables: `runs` (one row per run, keyed by the hash of its resolved config, with its lease),
`metrics` (one row per (run, generation, metric) holding a float64 array over replicates) and
`artifacts` (checkpoint, sample and pool files by run and generation, with their SHA-256). A
generation commits in one transaction, after its files are in place, so a killed run resumes after
its last committed generation.

Nothing in a store executes: checkpoints use `store.checkpoint` (no pickle), and an artifact path
that resolves outside the artifact folder is refused. The last KEEP_CHECKPOINTS checkpoints of a
run are kept, so a damaged newest one costs one generation; pool batches are never deleted.

A run being computed holds a lease (owner `host:pid:token`, heartbeat in Unix seconds). It expires
when the owner's process is gone (same host) or its heartbeat is older than `lease_timeout`; a
loop whose generations take longer should call `heartbeat` inside them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from selfconsume.cache import write_atomic
from selfconsume.config import Config
from selfconsume.errors import ConfigError, RunBusy
from selfconsume.store.checkpoint import CheckpointError, from_bytes, to_bytes
from selfconsume.store.reads import StoreReads, refuse_linked_folder
from selfconsume.store.records import RunStatus, stored_json

SCHEMA_VERSION = 1
"""0: the unversioned store before leases (migrated by adding columns); 1: leases, tracebacks,
checksums, npz checkpoints and pool batches."""
KEEP_CHECKPOINTS = 2
LEASE_TIMEOUT = 600.0
FINAL_STATUSES = ("done", "failed", "interrupted")
HOST = socket.gethostname()

TABLES = {
    "runs": """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        config_json TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        generations_done INTEGER NOT NULL DEFAULT 0,
        replicates INTEGER NOT NULL,
        owner TEXT,
        heartbeat REAL,
        traceback TEXT)""",
    "metrics": """CREATE TABLE metrics (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        generation INTEGER NOT NULL,
        metric TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (run_id, generation, metric))""",
    "artifacts": """CREATE TABLE artifacts (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        generation INTEGER NOT NULL,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT,
        PRIMARY KEY (run_id, generation, kind))""",
}
ADDED_COLUMNS = {
    "runs": ("owner TEXT", "heartbeat REAL", "traceback TEXT"),
    "artifacts": ("sha256 TEXT",),
}
"""Columns that version 1 added to a version-0 store (the whole migration)."""

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store(StoreReads):
    """Read and write runs, metric arrays and artifacts. Safe for several processes (WAL, leases).

    `Store(path)` creates the store if needed; `Store(path, create=False)` raises ConfigError when
    there is none at `path` (a reader that must not write uses `StoreReader`). Any unusable path (a directory, a read-only or
    corrupt file, another program's database, a newer schema, a symlinked artifact folder) is a
    one-line ConfigError naming it."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        lease_timeout: float = LEASE_TIMEOUT,
    ) -> None:
        self.path = Path(path)
        self.artifacts = self.path.with_name(self.path.stem + "_artifacts")
        refuse_linked_folder(self.artifacts)
        self.lease_timeout = lease_timeout
        self._token = secrets.token_hex(8)
        self._leased = False  # whether close() has leases to release
        self._db, self._readonly = self._connect(create)
        try:
            self._prepare(create)
        except BaseException:
            self._db.close()
            raise

    @property
    def owner(self) -> str:
        """This Store's lease identity, `host:pid:token` (the pid is read now, so forks differ)."""
        return f"{HOST}:{os.getpid()}:{self._token}"

    def close(self) -> None:
        """Release the leases this Store holds (their runs stay resumable) and close the file."""
        if self._leased:
            with contextlib.suppress(sqlite3.Error):  # a damaged file: nothing left to release
                self._db.execute(
                    "UPDATE runs SET owner=NULL, heartbeat=NULL WHERE owner=?", (self.owner,)
                )
        self._db.close()

    # --- opening ---------------------------------------------------------------------------

    def _connect(self, create: bool) -> tuple[sqlite3.Connection, bool]:
        path = self.path
        if path.is_dir():
            raise ConfigError(f"{path}: is a directory, not a store file")
        if not create and not path.exists():
            raise ConfigError(f"{path}: no such store")
        writable = not path.exists() or os.access(path, os.W_OK)
        if create and not writable:
            raise ConfigError(f"{path}: the store file is read-only; a run needs to write to it")
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            mode = "rwc" if create else ("rw" if writable else "ro")
            uri = f"{path.resolve().as_uri()}?mode={mode}"
            db = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{path}: cannot open the store ({exc})") from None
        return db, mode == "ro"

    def _prepare(self, create: bool) -> None:
        """Check the schema version: create a new store, migrate an old one, refuse a newer one.

        Nothing is written before the file is known to be a store (or empty)."""
        version, tables = self._version(), self._tables()
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path}: store schema version {version}, this selfconsume reads"
                f" {SCHEMA_VERSION}; upgrade selfconsume to open it"
            )
        if (version or tables) and not set(TABLES) <= tables:
            raise ConfigError(f"{self.path}: an SQLite file but not a selfconsume store")
        if not (create or tables):
            raise ConfigError(f"{self.path}: no such store (the file is empty)")
        if version < SCHEMA_VERSION and self._readonly:
            raise ConfigError(
                f"{self.path}: store schema version {version}, this selfconsume reads"
                f" {SCHEMA_VERSION}; the file is read-only, so it cannot be migrated"
            )
        if self._readonly:
            return
        self._exec("PRAGMA journal_mode=WAL")
        self._exec("PRAGMA synchronous=NORMAL")
        if version < SCHEMA_VERSION:
            with self._transaction():
                if self._version() == version:  # another process may have migrated it meanwhile
                    self._migrate(bool(tables))

    def _version(self) -> int:
        return self._exec("PRAGMA user_version").fetchone()[0]

    def _tables(self) -> set[str]:
        return {r for (r,) in self._exec("SELECT name FROM sqlite_master WHERE type='table'")}

    def _migrate(self, existing: bool) -> None:
        """Create the tables of a new store, or add to a version-0 store the columns it lacks."""
        if not existing:
            for create in TABLES.values():
                self._exec(create)
        for table, columns in ADDED_COLUMNS.items():
            have = {row[1] for row in self._exec(f"PRAGMA table_info({table})")}
            for column in columns:
                if column.split()[0] not in have:
                    self._exec(f"ALTER TABLE {table} ADD COLUMN {column}")
        self._exec(f"PRAGMA user_version={SCHEMA_VERSION}")

    # --- leases ----------------------------------------------------------------------------

    def begin_run(self, cfg: Config) -> RunStatus:
        """Register a run (or find it again) and take its lease unless it is done.

        A failed or interrupted run is set back to running. RunBusy if another live process holds
        the lease; a dead holder's lease is taken over."""
        run_id = cfg.run_id
        config_json = json.dumps(stored_json(cfg))
        with self._transaction():
            self._exec(
                "INSERT OR IGNORE INTO runs (run_id, name, config_json, status, created_at,"
                " replicates) VALUES (?, ?, ?, 'running', ?, ?)",
                (run_id, cfg.name, config_json, _now(), cfg.replicates),
            )
            status, owner, beat = self._exec(
                "SELECT status, owner, heartbeat FROM runs WHERE run_id=?", (run_id,)
            ).fetchone()
            if status != "done":
                self._check_lease(run_id, owner, beat)
                self._exec(
                    "UPDATE runs SET status='running', error=NULL, traceback=NULL,"
                    " finished_at=NULL, owner=?, heartbeat=? WHERE run_id=?",
                    (self.owner, time.time(), run_id),
                )
                self._leased = True
        return self.status(run_id)

    def heartbeat(self, run_id: str) -> None:
        """Refresh this Store's lease on a run; RunBusy if another process has taken it over."""
        with self._transaction():
            self._owned(run_id)

    def finish_run(
        self, run_id: str, status: str, error: str | None = None, traceback: str | None = None
    ) -> None:
        """Record a run's end (done, failed or interrupted, with a reason) and release its lease."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"finish_run: status {status!r} is not one of {FINAL_STATUSES}")
        with self._transaction():
            self._owned(run_id)
            self._exec(
                "UPDATE runs SET status=?, error=?, traceback=?, finished_at=?, owner=NULL,"
                " heartbeat=NULL WHERE run_id=?",
                (status, error, traceback, _now(), run_id),
            )

    def holder(self, run_id: str) -> str | None:
        """The other live process holding the run's lease (`host:pid:token`), or None when the
        lease is free, ours or its holder is gone (what `begin_run` would take over)."""
        row = self._exec("SELECT owner, heartbeat FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None or row[0] in (None, self.owner) or not self._alive(*row):
            return None
        return row[0]

    def _check_lease(self, run_id: str, owner: str | None, beat: float | None) -> None:
        if owner is None or owner == self.owner or not self._alive(owner, beat):
            return
        age = time.time() - (beat or 0.0)
        raise RunBusy(f"run {run_id} is being computed by {owner} (heartbeat {age:.0f} s ago)")

    def _alive(self, owner: str, beat: float | None) -> bool:
        """A lease is live while its holder's heartbeat is recent and, on this host, its pid runs."""
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if host == HOST and not (pid.isdigit() and _pid_alive(int(pid))):
            return False
        return beat is not None and time.time() - beat < self.lease_timeout

    def _owned(self, run_id: str) -> None:
        """Inside a transaction: RunBusy unless the lease is ours, free or its holder's dead;
        refresh ours."""
        row = self._exec("SELECT owner, heartbeat FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        if row[0] not in (None, self.owner) and self._alive(row[0], row[1]):
            raise RunBusy(f"run {run_id}: lease lost to {row[0]}; this process stops writing it")
        self._exec(
            "UPDATE runs SET heartbeat=? WHERE run_id=? AND owner=?",
            (time.time(), run_id, self.owner),
        )

    # --- writing ---------------------------------------------------------------------------

    def commit_generation(
        self,
        run_id: str,
        generation: int,
        metrics: dict[str, np.ndarray],
        checkpoint: dict[str, Any] | bytes,
        samples: np.ndarray | None = None,
        pool_batch: dict[str, np.ndarray] | bytes | None = None,
    ) -> None:
        """Write a generation's files, then its metrics, artifacts and progress in one transaction.

        `pool_batch` is this generation's addition to an accumulating scheme's synthetic pool
        (e.g. {"x": (R, m, d), "w": (R, m)}), written once and never pruned (`load_pool`). A scheme
        with a pool commits a batch at every generation from its first one on. The checkpoint and
        pool batch may come already encoded (`checkpoint.to_bytes`), as a worker ships them."""
        folder = self._run_folder(run_id)
        files = {
            "checkpoint": _write(folder / f"checkpoint_{generation:05d}.npz", _npz(checkpoint))
        }
        if samples is not None:
            files["samples"] = _write(folder / f"samples_{generation:05d}.npy", _npy_bytes(samples))
        if pool_batch is not None:
            files["pool"] = _write(folder / f"pool_{generation:05d}.npz", _npz(pool_batch))
        rows = [
            (run_id, generation, name, np.ascontiguousarray(v, dtype=np.float64).tobytes())
            for name, v in metrics.items()
        ]
        with self._transaction():
            self._owned(run_id)
            self._executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?)", rows)
            self._executemany(
                "INSERT OR REPLACE INTO artifacts (run_id, generation, kind, path, sha256)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (run_id, generation, kind, str(path.relative_to(self.artifacts)), digest)
                    for kind, (path, digest) in files.items()
                ],
            )
            self._exec(
                "UPDATE runs SET generations_done=? WHERE run_id=?", (generation + 1, run_id)
            )
            stale = self._drop_artifacts(
                "run_id=? AND kind='checkpoint' AND generation<=?",
                (run_id, generation - KEEP_CHECKPOINTS),
            )
        self._unlink(stale)

    def _run_folder(self, run_id: str) -> Path:
        """The run's artifact folder, created if needed; refused (ConfigError) if it or the
        artifact folder is a symbolic link, so no file is written outside the store's folder."""
        refuse_linked_folder(self.artifacts)
        folder = self.artifacts / run_id
        refuse_linked_folder(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _drop_artifacts(self, where: str, args: Sequence[Any]) -> list[str]:
        """Inside a transaction: delete artifact rows, returning their paths for `_unlink`."""
        paths = [p for (p,) in self._exec(f"SELECT path FROM artifacts WHERE {where}", args)]
        self._exec(f"DELETE FROM artifacts WHERE {where}", args)
        return paths

    def _unlink(self, paths: list[str]) -> None:
        for path in paths:
            # never touch a path outside the folder; a file that will not go is left behind
            with contextlib.suppress(CheckpointError, OSError):
                self._artifact_path(path).unlink(missing_ok=True)

    def _rewind(self, run_id: str, start: int) -> None:
        """Forget generations >= start (they will be recomputed), so the run's rows agree."""
        stale = self._exec(
            "SELECT EXISTS(SELECT 1 FROM metrics WHERE run_id=?1 AND generation>=?2)"
            " OR EXISTS(SELECT 1 FROM artifacts WHERE run_id=?1 AND generation>=?2)",
            (run_id, start),
        ).fetchone()[0]
        if not stale:
            return
        with self._transaction():
            self._exec("DELETE FROM metrics WHERE run_id=? AND generation>=?", (run_id, start))
            stale = self._drop_artifacts("run_id=? AND generation>=?", (run_id, start))
            self._exec(
                "UPDATE runs SET generations_done=MIN(generations_done, ?) WHERE run_id=?",
                (start, run_id),
            )
        self._unlink(stale)

    # --- reading ---------------------------------------------------------------------------

    def progress(self) -> dict[str, tuple[int, str]]:
        """generations_done and status of every run (polled for progress bars)."""
        rows = self._exec("SELECT run_id, generations_done, status FROM runs")
        return {r: (g, s) for r, g, s in rows}

    def load_checkpoint(self, run_id: str) -> tuple[int, Any] | None:
        """The newest readable checkpoint of a run, as (generation, payload), or None.

        A missing, truncated, tampered or out-of-folder checkpoint (or a damaged pool batch before
        it) is logged in one line and an older kept one is tried; with none left the run restarts
        at generation 0. The run is rewound to the generation after the one returned."""
        rows = self._exec(
            "SELECT generation, path, sha256 FROM artifacts WHERE run_id=? AND kind='checkpoint'"
            " ORDER BY generation DESC",
            (run_id,),
        ).fetchall()
        for generation, path, digest in rows:
            try:
                payload = from_bytes(self._read(path, digest))
                self._check_pool(run_id, generation)
            except CheckpointError as exc:
                log.warning(
                    "%s: run %s, generation %s: checkpoint not loaded (%s); resuming earlier",
                    self.artifacts / str(path),
                    run_id,
                    generation,
                    exc,
                )
                continue
            self._rewind(run_id, generation + 1)
            return generation, payload
        self._rewind(run_id, 0)
        return None

    def load_pool(self, run_id: str, upto_generation: int) -> list[dict[str, np.ndarray]]:
        """The run's pool batches of generations <= upto_generation, in generation order."""
        batches = []
        for generation, path, digest in self._pool_rows(run_id, upto_generation):
            try:
                batches.append(from_bytes(self._read(path, digest)))
            except CheckpointError as exc:
                raise ConfigError(
                    f"{self.artifacts / str(path)}: pool batch of run {run_id} generation {generation}"
                    f" unreadable ({exc})"
                ) from None
        return batches

    def _pool_rows(self, run_id: str, upto: int) -> list[tuple[int, str, str | None]]:
        return self._exec(
            "SELECT generation, path, sha256 FROM artifacts WHERE run_id=? AND kind='pool'"
            " AND generation<=? ORDER BY generation",
            (run_id, upto),
        ).fetchall()

    def _check_pool(self, run_id: str, generation: int) -> None:
        """CheckpointError unless the pool batches up to `generation` are all there and intact."""
        rows = self._pool_rows(run_id, generation)
        if rows and [g for g, _, _ in rows] != list(range(rows[0][0], generation + 1)):
            raise CheckpointError(f"pool batches up to generation {generation} are incomplete")
        for _, path, digest in rows:
            self._read(path, digest)

    # --- SQL -------------------------------------------------------------------------------

    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            self._db.executemany(sql, rows)
        except sqlite3.DatabaseError as exc:
            raise self._unusable(exc) from None

    def _transaction(self) -> _Transaction:
        return _Transaction(self)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (leases rely on the write lock)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> None:
        if self.store._db.in_transaction:  # one an interrupt cut off before its COMMIT or ROLLBACK
            self.store._db.execute("ROLLBACK")
        self.store._exec("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.store._exec("COMMIT")
        elif self.store._db.in_transaction:
            self.store._db.execute("ROLLBACK")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _write(path: Path, data: bytes) -> tuple[Path, str]:
    """Write `path` atomically; return it and its SHA-256."""
    write_atomic(path, data)
    return path, hashlib.sha256(data).hexdigest()


def _npz(payload: dict[str, Any] | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else to_bytes(dict(payload))


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
