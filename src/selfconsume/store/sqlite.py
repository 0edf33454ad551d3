"""The embedded store: one SQLite file plus an artifact folder beside it.

Tables: `runs` (one row per run, keyed by the hash of its resolved config), `metrics` (one row per
(run, generation, metric) holding a float64 array over replicates) and `artifacts` (checkpoint and
sample files, by run and generation). A generation commits in one transaction, after its files are
in place, so a killed run resumes after its last committed generation.
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from selfconsume.config import Config

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    generations_done INTEGER NOT NULL DEFAULT 0,
    replicates INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    generation INTEGER NOT NULL,
    metric TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (run_id, generation, metric)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    generation INTEGER NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (run_id, generation, kind)
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    name: str
    config: dict[str, Any]
    status: str
    error: str | None
    created_at: str
    finished_at: str | None
    generations_done: int
    replicates: int


class Store:
    """Read and write runs, metric arrays and artifacts. Safe for several processes (WAL)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.artifacts = self.path.with_name(self.path.stem + "_artifacts")
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # --- writing ---------------------------------------------------------------------------

    def begin_run(self, cfg: Config) -> RunRecord:
        """Register a run (or find it again); a failed or interrupted run is set back to running."""
        run_id = cfg.run_id
        config_json = json.dumps(cfg.model_dump(mode="json", exclude={"sweep", "quick"}))
        self._db.execute(
            "INSERT OR IGNORE INTO runs (run_id, name, config_json, status, created_at, replicates)"
            " VALUES (?, ?, ?, 'running', ?, ?)",
            (run_id, cfg.name, config_json, _now(), cfg.replicates),
        )
        record = self.run(run_id)
        if record.status != "done":
            self._db.execute(
                "UPDATE runs SET status='running', error=NULL, finished_at=NULL WHERE run_id=?",
                (run_id,),
            )
        return record

    def commit_generation(
        self,
        run_id: str,
        generation: int,
        metrics: dict[str, np.ndarray],
        checkpoint: dict[str, Any],
        samples: np.ndarray | None = None,
        pool_batch: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Write a generation's files, then its metrics and progress in one transaction.

        `pool_batch` (an accumulating scheme's synthetic batch) is written once and kept."""
        folder = self.artifacts / run_id
        folder.mkdir(parents=True, exist_ok=True)
        files = {"checkpoint": folder / f"checkpoint_{generation:05d}.pkl"}
        _atomic_write(files["checkpoint"], pickle.dumps(checkpoint, protocol=5))
        if pool_batch is not None:
            files["pool"] = folder / f"pool_{generation:05d}.pkl"
            _atomic_write(files["pool"], pickle.dumps(pool_batch, protocol=5))
        if samples is not None:
            files["samples"] = folder / f"samples_{generation:05d}.npy"
            _atomic_write(files["samples"], _npy_bytes(samples))
        rows = [
            (run_id, generation, name, np.ascontiguousarray(v, dtype=np.float64).tobytes())
            for name, v in metrics.items()
        ]
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?)", rows)
            self._db.executemany(
                "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?)",
                [
                    (run_id, generation, k, str(p.relative_to(self.artifacts)))
                    for k, p in files.items()
                ],
            )
            self._db.execute(
                "UPDATE runs SET generations_done=? WHERE run_id=?", (generation + 1, run_id)
            )
            previous = self._db.execute(
                "SELECT path FROM artifacts WHERE run_id=? AND kind='checkpoint' AND generation<?",
                (run_id, generation),
            ).fetchall()
            self._db.execute(
                "DELETE FROM artifacts WHERE run_id=? AND kind='checkpoint' AND generation<?",
                (run_id, generation),
            )
        for (path,) in previous:
            (self.artifacts / path).unlink(missing_ok=True)

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        self._db.execute(
            "UPDATE runs SET status=?, error=?, finished_at=? WHERE run_id=?",
            (status, error, _now(), run_id),
        )

    # --- reading ---------------------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord:
        row = self._db.execute(
            "SELECT run_id, name, config_json, status, error, created_at, finished_at,"
            " generations_done, replicates FROM runs WHERE run_id=?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise KeyError(run_id)
        return RunRecord(row[0], row[1], json.loads(row[2]), *row[3:])

    def runs(self, name: str | None = None) -> list[RunRecord]:
        query = "SELECT run_id FROM runs" + (" WHERE name=?" if name else "") + " ORDER BY rowid"
        return [self.run(r) for (r,) in self._db.execute(query, (name,) if name else ())]

    def progress(self) -> dict[str, tuple[int, str]]:
        """generations_done and status of every run (polled for progress bars)."""
        rows = self._db.execute("SELECT run_id, generations_done, status FROM runs")
        return {r: (g, s) for r, g, s in rows}

    def load_checkpoint(self, run_id: str) -> tuple[int, dict[str, Any]] | None:
        row = self._db.execute(
            "SELECT generation, path FROM artifacts WHERE run_id=? AND kind='checkpoint'"
            " ORDER BY generation DESC LIMIT 1",
            (run_id,),
        ).fetchone()
        if row is None:
            return None
        return row[0], pickle.loads((self.artifacts / row[1]).read_bytes())

    def load_pool(self, run_id: str, upto_generation: int) -> list[dict[str, np.ndarray]]:
        """The pool batches of generations <= upto_generation, in generation order."""
        rows = self._db.execute(
            "SELECT path FROM artifacts WHERE run_id=? AND kind='pool' AND generation<=?"
            " ORDER BY generation",
            (run_id, upto_generation),
        ).fetchall()
        return [pickle.loads((self.artifacts / p).read_bytes()) for (p,) in rows]

    def metric_arrays(self, run_id: str) -> Iterator[tuple[int, str, np.ndarray]]:
        """(generation, metric, values over replicates) for one run, by generation."""
        rows = self._db.execute(
            "SELECT generation, metric, value FROM metrics WHERE run_id=? ORDER BY generation, metric",
            (run_id,),
        )
        for generation, metric, blob in rows:
            yield generation, metric, np.frombuffer(blob, dtype=np.float64)

    def samples(self, run_id: str) -> dict[int, np.ndarray]:
        """The stored sample snapshots of a run, by generation."""
        rows = self._db.execute(
            "SELECT generation, path FROM artifacts WHERE run_id=? AND kind='samples'", (run_id,)
        )
        return {g: np.load(self.artifacts / p) for g, p in rows}

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()
