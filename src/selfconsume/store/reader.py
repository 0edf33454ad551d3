"""A read-only view of a store, for `runs`, export and the report: it never creates, migrates nor
writes. The file is opened with SQLite's `mode=ro`, so neither the schema version nor the journal
mode can change and no checkpoint of a write-ahead log is folded into it. Every failure to open is
a one-line `ConfigError` naming the file; what it reads goes through `reads.StoreReads`.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from selfconsume.errors import ConfigError
from selfconsume.store.reads import StoreReads, refuse_linked_folder
from selfconsume.store.sqlite import SCHEMA_VERSION


class StoreReader(StoreReads):
    """Read runs, metric arrays and sample snapshots of the store at `path`, read-only. Used as a
    context manager it reads one consistent snapshot (a read transaction), so that counts and the
    values read after them agree while a sweep is still writing."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: no such store")
        self.artifacts = self.path.with_name(self.path.stem + "_artifacts")
        refuse_linked_folder(self.artifacts)
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            self._db = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
            self._db.execute("SELECT run_id, config_json FROM runs LIMIT 1").fetchall()
            self._db.execute("SELECT run_id, generation, metric, value FROM metrics LIMIT 0")
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
        except sqlite3.DatabaseError:
            raise ConfigError(f"{self.path}: not a selfconsume store") from None
        if version > SCHEMA_VERSION:
            self._db.close()
            raise ConfigError(
                f"{self.path}: store schema version {version}, this selfconsume reads "
                f"{SCHEMA_VERSION}; upgrade selfconsume to open it"
            )

    def __enter__(self) -> StoreReader:
        self._exec("BEGIN")
        return self

    def __exit__(self, *_: object) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        self.close()

    def close(self) -> None:
        self._db.close()
