"""A read-only view of a store, for export and the report: it never creates, migrates nor writes.

Metric values come back as numpy arrays straight from the stored blobs (one row per (run,
generation, metric)), so readers build columns with np.repeat and arange arithmetic, not per-value
Python loops. Every failure to open is a one-line `ConfigError` naming the file.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfconsume.errors import ConfigError
from selfconsume.store.checkpoint import CheckpointError
from selfconsume.store.sqlite import SCHEMA_VERSION, RunRecord, artifact_path

RUN_COLUMNS = "run_id, name, config_json, status, error, created_at, finished_at, generations_done, replicates"


@dataclass(frozen=True)
class Block:
    """One run's metric rows: row b is (generation[b], metric[b]) holding lengths[b] values, stored
    one after the other in `values` (replicate fastest)."""

    generation: np.ndarray
    metric: list[str]
    lengths: np.ndarray
    values: np.ndarray

    def series(self) -> dict[str, np.ndarray]:
        """metric -> (G, R) array, generations in order (rows of unequal length padded with NaN)."""
        out: dict[str, np.ndarray] = {}
        starts = np.cumsum(self.lengths) - self.lengths
        for name in dict.fromkeys(self.metric):
            rows = [b for b, m in enumerate(self.metric) if m == name]
            rows.sort(key=lambda b: self.generation[b])
            width = int(self.lengths[rows].max())
            array = np.full((len(rows), width), np.nan)
            for i, b in enumerate(rows):
                array[i, : self.lengths[b]] = self.values[starts[b] : starts[b] + self.lengths[b]]
            out[name] = array
        return out


class StoreReader:
    """Read runs, metric arrays and sample snapshots of the store at `path`, read-only. Used as a
    context manager it reads one consistent snapshot (a read transaction), so that counts and the
    values read after them agree while a sweep is still writing."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: no such store")
        self.artifacts = self.path.with_name(self.path.stem + "_artifacts")
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            self._db = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
            self._db.execute("SELECT run_id, config_json FROM runs LIMIT 1").fetchall()
            self._db.execute("SELECT run_id, generation, metric, value FROM metrics LIMIT 0")
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
        except sqlite3.DatabaseError:
            raise ConfigError(f"{self.path}: not a selfconsume store") from None
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path}: store schema version {version}, this selfconsume reads "
                f"{SCHEMA_VERSION}; upgrade selfconsume to open it"
            )

    def __enter__(self) -> StoreReader:
        self._db.execute("BEGIN")
        return self

    def __exit__(self, *_: object) -> None:
        self._db.execute("COMMIT")
        self.close()

    def close(self) -> None:
        self._db.close()

    def runs(self, name: str | None = None) -> list[RunRecord]:
        """The runs in the order they were registered, optionally of one experiment name."""
        query = f"SELECT {RUN_COLUMNS} FROM runs" + (" WHERE name=?" if name else "")
        rows = self._db.execute(query + " ORDER BY rowid", (name,) if name else ())
        return [RunRecord(r[0], r[1], json.loads(r[2]), *r[3:]) for r in rows]

    def value_count(self, run_ids: list[str]) -> int:
        """How many values the given runs hold in all (read from the blob sizes, not the blobs)."""
        total = 0
        for run_id in run_ids:
            (size,) = self._db.execute(
                "SELECT coalesce(sum(length(value)), 0) FROM metrics WHERE run_id=?", (run_id,)
            ).fetchone()
            total += size // 8
        return total

    def metric_names(self, run_ids: list[str]) -> list[str]:
        """The metric names the given runs hold, sorted."""
        names: set[str] = set()
        for run_id in run_ids:
            rows = self._db.execute("SELECT DISTINCT metric FROM metrics WHERE run_id=?", (run_id,))
            names.update(m for (m,) in rows)
        return sorted(names)

    def block(self, run_id: str, out: np.ndarray | None = None) -> Block:
        """All metric values of one run, filled into `out` (1-D float64, exactly long enough) if
        given, so that a caller can read a whole store into one preallocated column."""
        rows = self._db.execute(
            "SELECT generation, metric, value FROM metrics WHERE run_id=? ORDER BY generation, metric",
            (run_id,),
        )
        generation, metric, lengths, chunks = [], [], [], []
        position = 0
        for g, m, blob in rows:
            values = np.frombuffer(blob, dtype=np.float64)
            generation.append(g)
            metric.append(m)
            lengths.append(values.size)
            if out is None:
                chunks.append(values)
            else:
                out[position : position + values.size] = values
            position += values.size
        values = out[:position] if out is not None else np.concatenate(chunks or [np.empty(0)])
        return Block(
            np.asarray(generation, dtype=np.int64), metric, np.asarray(lengths, np.int64), values
        )

    def metric_arrays(self, run_id: str):
        """(generation, metric, values over replicates) for one run, by generation (as `Store`)."""
        rows = self._db.execute(
            "SELECT generation, metric, value FROM metrics WHERE run_id=? ORDER BY generation, metric",
            (run_id,),
        )
        for generation, metric, blob in rows:
            yield generation, metric, np.frombuffer(blob, dtype=np.float64)

    def samples(self, run_id: str) -> dict[int, np.ndarray]:
        """The stored sample snapshots of a run by generation (plain arrays: nothing executes)."""
        rows = self._db.execute(
            "SELECT generation, path FROM artifacts WHERE run_id=? AND kind='samples'", (run_id,)
        )
        out = {}
        for g, p in rows:
            try:
                out[g] = np.load(artifact_path(self.artifacts, p), allow_pickle=False)
            except (CheckpointError, ValueError, OSError, EOFError) as exc:
                raise ConfigError(f"{self.artifacts / p}: unreadable samples ({exc})") from None
        return out


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted.key.path: leaf}; lists are leaves."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def swept_keys(records: list[RunRecord]) -> list[str]:
    """The config key paths whose values differ between runs of one experiment name (the sweep),
    in first-seen order; the name and description are never swept keys."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_name.setdefault(r.name, []).append(flatten(r.config))
    keys: dict[str, None] = {}
    for flats in by_name.values():
        for key in dict.fromkeys(k for f in flats for k in f):
            seen = {json.dumps(f.get(key), sort_keys=True) for f in flats}
            if len(seen) > 1 and key not in ("name", "description"):
                keys[key] = None
    return list(keys)
