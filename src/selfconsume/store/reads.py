"""The one read path of a store, shared by the writer (`Store`) and the read-only `StoreReader`.

A store may come from anyone, so everything read back is checked before it is used: a run's row
and its config (`records`), each metric blob (whole float64 values, an integer generation, a
metric name), metric arrays of one length per metric, and every artifact (a regular file inside
the artifact folder, its SHA-256 when recorded, a .npy header that fits the file). Whatever does
not fit is a one-line `ConfigError` naming the run and the field. Metric values come back as numpy
arrays straight from the stored blobs (one row per (run, generation, metric)).
"""

from __future__ import annotations

import errno
import hashlib
import io
import math
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from selfconsume.errors import ConfigError
from selfconsume.store.checkpoint import CheckpointError
from selfconsume.store.records import RunRecord, RunStatus, typed_config

MAX_GENERATION = 2**31 - 1
"""The largest generation a metric row may name (export writes generations as int32)."""
ROW_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "name": (str,),
    "status": (str,),
    "error": (str, type(None)),
    "created_at": (str,),
    "finished_at": (str, type(None)),
    "generations_done": (int,),
    "replicates": (int,),
    "traceback": (str, type(None)),
    "owner": (str, type(None)),
    "heartbeat": (float, int, type(None)),
}
"""The SQLite type each column of `runs` must hold (SQLite itself would store anything)."""
SAMPLE_DTYPES = "biuf"
"""numpy kinds a sample snapshot may hold."""


def artifact_path(artifacts: Path, path: str) -> Path:
    """The file an artifact row names, refused unless it lies inside the artifact folder (a store
    someone hands over must not point anywhere else) and names a file in it."""
    if not isinstance(path, str) or path in ("", ".") or "\0" in path:
        raise CheckpointError(f"path {path!r} names no file in {artifacts}; refused")
    full = (artifacts / path).resolve()
    if Path(path).is_absolute() or not full.is_relative_to(artifacts.resolve()):
        raise CheckpointError(f"path {path!r} lies outside {artifacts}; refused")
    if full == artifacts.resolve():
        raise CheckpointError(f"path {path!r} names no file in {artifacts}; refused")
    return full


def refuse_linked_folder(artifacts: Path) -> None:
    """A symlinked artifact folder is refused: reading or writing through it would reach files
    outside the store's own folder."""
    if artifacts.is_symlink():
        raise ConfigError(f"{artifacts}: the artifact folder is a symbolic link; refused")


@dataclass(frozen=True)
class Block:
    """One run's metric rows: row b is (generation[b], metric[b]) holding lengths[b] values, stored
    one after the other in `values` (replicate fastest)."""

    generation: np.ndarray
    metric: list[str]
    lengths: np.ndarray
    values: np.ndarray


class StoreReads:
    """Runs, metric arrays and artifacts of an open store (`_db`, `path`, `artifacts` are set by
    the subclass that opened it)."""

    path: Path
    artifacts: Path
    _db: sqlite3.Connection

    # --- runs ------------------------------------------------------------------------------

    def statuses(self, name: str | None = None) -> list[RunStatus]:
        """Every run's row less its config, in the order the runs were registered."""
        where = " WHERE name=?" if name else ""
        return [self._status(row) for row in self._rows(where, (name,) if name else ())]

    def status(self, run_id: str) -> RunStatus:
        """One run's row less its config (KeyError if there is no such run)."""
        return self._status(self._row(run_id))

    def run(self, run_id: str) -> RunRecord:
        """One run with its resolved, typed config (KeyError if there is no such run)."""
        return self._record(self._row(run_id))

    def runs(self, name: str | None = None, problems: list[str] | None = None) -> list[RunRecord]:
        """The runs with their typed configs, in the order they were registered. A run that cannot
        be read is a ConfigError naming it and the field or, given `problems`, left out with that
        line appended there."""
        out = []
        for row in self._rows(" WHERE name=?" if name else "", (name,) if name else ()):
            try:
                out.append(self._record(row))
            except ConfigError as exc:
                if problems is None:
                    raise
                problems.append(str(exc))
        return out

    def _rows(self, where: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows of `runs` as (RunStatus fields..., config_json); a column a version-0 store lacks
        reads as NULL."""
        have = {row[1] for row in self._exec("PRAGMA table_info(runs)")}
        names = [f.name for f in fields(RunStatus)] + ["config_json"]
        columns = ", ".join(n if n in have else "NULL" for n in names)
        return self._exec(f"SELECT {columns} FROM runs{where} ORDER BY rowid", args).fetchall()

    def _row(self, run_id: str) -> tuple[Any, ...]:
        rows = self._rows(" WHERE run_id=?", (run_id,))
        if not rows:
            raise KeyError(run_id)
        return rows[0]

    def _status(self, row: tuple[Any, ...]) -> RunStatus:
        """The row as a RunStatus, once each column holds the SQLite type it must."""
        for (column, types), value in zip(ROW_TYPES.items(), row, strict=False):
            if not isinstance(value, types):
                raise ConfigError(
                    f"{self.path}: run {row[0]}: column {column} holds {type(value).__name__} "
                    f"{str(value)[:40]!r}, not {types[0].__name__}"
                )
        return RunStatus(*row[:-1])

    def _record(self, row: tuple[Any, ...]) -> RunRecord:
        status = self._status(row)
        config = typed_config(row[-1], f"{self.path}: run {status.run_id}")
        return RunRecord(**vars(status), config=config)

    # --- metrics ---------------------------------------------------------------------------

    def metric_arrays(self, run_id: str) -> Iterator[tuple[int, str, np.ndarray]]:
        """(generation, metric, values over replicates) for one run, by generation."""
        rows = self._exec(
            "SELECT generation, metric, value FROM metrics WHERE run_id=? ORDER BY generation, metric",
            (run_id,),
        ).fetchall()
        for generation, metric, blob in rows:
            yield generation, metric, self._values(run_id, generation, metric, blob)

    def series(self, run_id: str) -> dict[str, np.ndarray]:
        """metric -> (G, R) array of one run, rows in generation order; ConfigError if one
        metric's generations hold different numbers of values."""
        rows: dict[str, dict[int, np.ndarray]] = {}
        for generation, metric, values in self.metric_arrays(run_id):
            rows.setdefault(metric, {})[generation] = values
        out = {}
        for metric, by_generation in rows.items():
            arrays = [by_generation[g] for g in sorted(by_generation)]
            first = min(by_generation)
            for generation in sorted(by_generation):
                if by_generation[generation].size != by_generation[first].size:
                    raise ConfigError(
                        f"{self.path}: run {run_id}, metric {metric}: generation {generation} "
                        f"holds {by_generation[generation].size} values, generation {first} "
                        f"holds {by_generation[first].size}"
                    )
            out[metric] = np.stack(arrays)
        return out

    def block(self, run_id: str, out: np.ndarray | None = None) -> Block:
        """All metric values of one run, filled into `out` (1-D float64, exactly long enough) if
        given, so that a caller can read a whole store into one preallocated column."""
        generation, metric, lengths, chunks = [], [], [], []
        position = 0
        for g, m, values in self.metric_arrays(run_id):
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

    def value_count(self, run_ids: list[str]) -> int:
        """How many values the given runs hold in all (read from the blob sizes, not the blobs)."""
        total = 0
        for run_id in run_ids:
            (size,) = self._exec(
                "SELECT coalesce(sum(length(value)), 0) FROM metrics WHERE run_id=?", (run_id,)
            ).fetchone()
            total += size // 8
        return total

    def metric_names(self, run_ids: list[str]) -> list[str]:
        """The metric names the given runs hold, sorted."""
        names: set[str] = set()
        for run_id in run_ids:
            rows = self._exec("SELECT DISTINCT metric FROM metrics WHERE run_id=?", (run_id,))
            names.update(str(m) for (m,) in rows)
        return sorted(names)

    def check_metrics(self) -> None:
        """ConfigError naming the first malformed metric row of the store, if any (from the
        column types and blob sizes, without reading the blobs)."""
        row = self._exec(
            "SELECT run_id, generation, metric, value FROM metrics WHERE typeof(value) != 'blob'"
            " OR length(value) % 8 != 0 OR typeof(generation) != 'integer' OR generation < 0"
            " OR generation > ? OR typeof(metric) != 'text' LIMIT 1",
            (MAX_GENERATION,),
        ).fetchone()
        if row is not None:
            self._values(*row)

    def _values(self, run_id: str, generation: Any, metric: Any, blob: Any) -> np.ndarray:
        """A metric blob as float64 values, once its row is known to be well formed."""
        where = f"{self.path}: run {run_id}"
        if type(generation) is not int or not 0 <= generation <= MAX_GENERATION:
            raise ConfigError(f"{where}: metric row with generation {str(generation)[:40]!r}")
        if not isinstance(metric, str):
            raise ConfigError(f"{where}, generation {generation}: metric name {metric!r}")
        if not isinstance(blob, bytes) or len(blob) % 8:
            size = f"{len(blob)} bytes" if isinstance(blob, bytes) else type(blob).__name__
            raise ConfigError(
                f"{where}, generation {generation}, metric {metric}: value holds {size}, "
                "not whole float64 values"
            )
        return np.frombuffer(blob, dtype=np.float64)

    # --- artifacts -------------------------------------------------------------------------

    def samples(self, run_id: str) -> dict[int, np.ndarray]:
        """The stored sample snapshots of a run by generation, each (replicates, n, dim) of
        numbers (ConfigError naming the file if one is damaged)."""
        rows = self._exec(
            "SELECT generation, path, sha256 FROM artifacts WHERE run_id=? AND kind='samples'"
            " ORDER BY generation",
            (run_id,),
        ).fetchall()
        out = {}
        for generation, path, digest in rows:
            try:
                out[generation] = read_npy(self._read(path, digest))
            except CheckpointError as exc:
                raise ConfigError(
                    f"{self.artifacts / str(path)}: run {run_id}, generation {generation}: "
                    f"unreadable samples ({exc})"
                ) from None
        return out

    def _read(self, path: str, digest: str | None) -> bytes:
        """An artifact's bytes, checked against its recorded SHA-256 (CheckpointError if not, or
        if it is not a regular file: a FIFO or a device is never read)."""
        full = artifact_path(self.artifacts, path)
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise CheckpointError(f"{type(exc).__name__}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CheckpointError("not a regular file")
            try:
                data = f.read()
            except OSError as exc:
                raise CheckpointError(f"{type(exc).__name__}: {exc.strerror}") from None
        if digest is not None and hashlib.sha256(data).hexdigest() != digest:
            raise CheckpointError("checksum mismatch: the file was truncated or altered")
        return data

    def _artifact_path(self, path: str) -> Path:
        return artifact_path(self.artifacts, path)

    # --- SQL -------------------------------------------------------------------------------

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.DatabaseError as exc:
            raise self._unusable(exc) from None

    def _unusable(self, exc: sqlite3.DatabaseError) -> Exception:
        """A damaged store is bad input (ConfigError); a full disk is not (OSError ENOSPC)."""
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return OSError(errno.ENOSPC, f"{self.path}: {exc}")
        return ConfigError(f"{self.path}: unusable store ({exc})")


def read_npy(data: bytes) -> np.ndarray:
    """A sample snapshot from .npy bytes: its header must declare a 3-D array of numbers that the
    bytes hold (checked before anything is allocated); CheckpointError says what is wrong."""
    from numpy.lib import format as npy

    buffer = io.BytesIO(data)
    try:
        version = npy.read_magic(buffer)
        read_header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
        if version not in read_header:
            raise CheckpointError(f"unsupported .npy format version {version}")
        shape, _, dtype = read_header[version](buffer)
    except (ValueError, EOFError, SyntaxError) as exc:
        raise CheckpointError(f"not a .npy array ({str(exc).splitlines()[0]})") from None
    if dtype.hasobject or dtype.kind not in SAMPLE_DTYPES or len(shape) != 3 or 0 in shape:
        raise CheckpointError(f"holds {dtype} of shape {shape}, not (replicates, n, dim) numbers")
    need, have = math.prod(shape) * dtype.itemsize, len(data) - buffer.tell()
    if need != have:
        raise CheckpointError(f"header claims shape {shape} ({need} bytes) but {have} follow")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise CheckpointError(f"not a .npy array ({str(exc).splitlines()[0]})") from None
