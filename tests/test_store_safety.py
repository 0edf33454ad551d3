"""The store never executes what it holds, resumes past damaged checkpoints, refuses unusable
files with one line, and keeps two processes from computing one run."""

from __future__ import annotations

import json
import logging
import os
import pickle
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import metric

from selfconsume.errors import ConfigError, RunBusy
from selfconsume.loop.run import run_config
from selfconsume.plan import resolve
from selfconsume.store import sqlite as store_module
from selfconsume.store.checkpoint import to_bytes
from selfconsume.store.reader import StoreReader
from selfconsume.store.sqlite import KEEP_CHECKPOINTS, SCHEMA_VERSION, Store

RAW = {
    "name": "safety",
    "seed": 3,
    "replicates": 16,
    "generations": 6,
    "data": {"kind": "gaussian", "n_real": 12, "n_test": 4, "params": {"dim": 2, "std": 1.5}},
    "model": {"kind": "gaussian", "params": {"estimator": "unbiased"}},
    "scheme": {"kind": "accumulate_subsample", "lam": 0.5},
    "metrics": ["gaussian_params", "w2"],
}
METRICS = ("cov_logdet", "mean_error", "w2")
STOP = 4


class Interrupt(Exception):
    """Stands for a kill between two generations."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The metrics of an uninterrupted run."""
    cfg = resolve(RAW)
    store = Store(tmp_path_factory.mktemp("ref") / "ref.sqlite")
    run_config(cfg, store)
    return {name: metric(store, cfg.run_id, name) for name in METRICS}


def interrupted(path) -> tuple[Store, str]:
    """A store whose run stopped right after committing generation STOP."""

    def stop(t: int) -> None:
        if t == STOP:
            raise Interrupt

    cfg = resolve(RAW)
    store = Store(path)
    with pytest.raises(Interrupt):
        run_config(cfg, store, on_generation=stop)
    return store, cfg.run_id


def checkpoints(store: Store, run_id: str) -> dict[int, str]:
    rows = store._db.execute(
        "SELECT generation, path FROM artifacts WHERE run_id=? AND kind='checkpoint'", (run_id,)
    )
    return dict(rows.fetchall())


def resume(store: Store) -> list[int]:
    seen: list[int] = []
    run_config(resolve(RAW), store, on_generation=seen.append)
    return seen


def assert_matches(store: Store, run_id: str, reference) -> None:
    for name in METRICS:
        np.testing.assert_array_equal(metric(store, run_id, name), reference[name])


def one_line_warnings(caplog) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all("\n" not in m for m in messages)
    return messages


# --- damaged checkpoints -------------------------------------------------------------------


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip(path):
    data = bytearray(path.read_bytes())
    data[-200] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage", [truncate, flip, os.remove], ids=["truncated", "tampered", "missing"]
)
def test_a_damaged_checkpoint_resumes_from_the_previous_generation(
    tmp_path, reference, caplog, damage
):
    store, run_id = interrupted(tmp_path / "s.sqlite")
    kept = checkpoints(store, run_id)
    assert sorted(kept) == list(range(STOP - KEEP_CHECKPOINTS + 1, STOP + 1))
    newest = store.artifacts / kept[STOP]
    damage(newest)
    assert resume(store) == list(range(STOP, RAW["generations"] + 1))
    (warning,) = one_line_warnings(caplog)
    assert str(newest) in warning
    assert_matches(store, run_id, reference)


@pytest.mark.parametrize("path", ["", ".", "a\0b"], ids=["empty", "folder", "nul"])
def test_an_artifact_path_naming_no_file_resumes_from_the_previous_generation(
    tmp_path, reference, caplog, path
):
    store, run_id = interrupted(tmp_path / "s.sqlite")
    store._db.execute(
        "UPDATE artifacts SET path=? WHERE run_id=? AND generation=? AND kind='checkpoint'",
        (path, run_id, STOP),
    )
    assert resume(store) == list(range(STOP, RAW["generations"] + 1))
    (warning,) = one_line_warnings(caplog)
    assert "refused" in warning
    assert_matches(store, run_id, reference)


def test_a_symlinked_artifact_folder_is_refused_and_never_written_through(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    Store(tmp_path / "s.sqlite").close()
    (tmp_path / "s_artifacts").symlink_to(target)
    for opener in (Store, StoreReader):
        with pytest.raises(ConfigError, match="symbolic link") as info:
            opener(tmp_path / "s.sqlite")
        assert "\n" not in str(info.value)
    assert list(target.iterdir()) == []


def test_a_symlinked_run_folder_is_never_written_through(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    cfg = resolve(RAW)
    store = Store(tmp_path / "s.sqlite")
    store.artifacts.mkdir()
    (store.artifacts / cfg.run_id).symlink_to(target)
    with pytest.raises(ConfigError, match="symbolic link"):
        run_config(cfg, store)
    assert list(target.iterdir()) == []


def test_no_readable_checkpoint_restarts_from_zero_with_consistent_rows(
    tmp_path, reference, caplog
):
    store, run_id = interrupted(tmp_path / "s.sqlite")
    for path in checkpoints(store, run_id).values():
        truncate(store.artifacts / path)
    assert store.load_checkpoint(run_id) is None
    assert len(one_line_warnings(caplog)) == KEEP_CHECKPOINTS
    assert list(store.metric_arrays(run_id)) == []
    assert store.run(run_id).generations_done == 0
    assert resume(store) == list(range(RAW["generations"] + 1))
    assert_matches(store, run_id, reference)


@pytest.mark.parametrize("where", ["relative", "absolute", "symlink"])
def test_an_artifact_path_outside_the_folder_is_refused(tmp_path, reference, caplog, where):
    store, run_id = interrupted(tmp_path / "s.sqlite")
    outside = tmp_path / "outside.npz"
    outside.write_bytes(to_bytes({"model": {}, "scheme": {}}))  # would load if it were followed
    paths = {"relative": f"../{outside.name}", "absolute": str(outside), "symlink": None}
    for generation, path in checkpoints(store, run_id).items():
        if where == "symlink":
            link = store.artifacts / path
            link.unlink()
            link.symlink_to(outside)
        else:
            store._db.execute(
                "UPDATE artifacts SET path=?, sha256=NULL WHERE run_id=? AND generation=?"
                " AND kind='checkpoint'",
                (paths[where], run_id, generation),
            )
    assert resume(store) == list(range(RAW["generations"] + 1))
    warnings = one_line_warnings(caplog)
    assert len(warnings) == KEEP_CHECKPOINTS and all("refused" in w for w in warnings)
    assert outside.exists()
    assert_matches(store, run_id, reference)


def test_a_legacy_pickle_checkpoint_is_never_executed(tmp_path, reference, caplog):
    """A version-0 store (no schema version, pickled checkpoints) is migrated and the pickle
    is refused, so the run restarts instead of running the pickle's code."""
    path = tmp_path / "old.sqlite"
    store, run_id = interrupted(path)
    store.close()
    marker = tmp_path / "executed"
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE runs DROP COLUMN owner")
    db.execute("ALTER TABLE artifacts DROP COLUMN sha256")
    db.execute("PRAGMA user_version=0")
    for generation, rel in db.execute(
        "SELECT generation, path FROM artifacts WHERE kind='checkpoint'"
    ).fetchall():
        pickled = rel.replace(".npz", ".pkl")
        (store.artifacts / pickled).write_bytes(pickle.dumps(Marker(marker)))
        db.execute(
            "UPDATE artifacts SET path=? WHERE generation=? AND kind='checkpoint'",
            (pickled, generation),
        )
    db.commit()
    db.close()
    store = Store(path)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.run(run_id).generations_done == STOP + 1
    assert resume(store) == list(range(RAW["generations"] + 1))
    assert not marker.exists()
    assert len(one_line_warnings(caplog)) == KEEP_CHECKPOINTS
    assert_matches(store, run_id, reference)


class Marker:
    """Unpickling it creates a file: the proof that a checkpoint ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_loading_a_gaussian_checkpoint_does_not_import_torch(tmp_path):
    store, run_id = interrupted(tmp_path / "s.sqlite")
    store.close()
    code = (
        "import sys; from selfconsume.store.sqlite import Store; "
        f"g, p = Store(sys.argv[1], create=False).load_checkpoint({run_id!r}); "
        "print(g, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s.sqlite")], capture_output=True, check=True
    )
    assert out.stdout.split() == [str(STOP).encode(), b"False"]


# --- pool batches --------------------------------------------------------------------------


def commit(store: Store, run_id: str, t: int, pool: bool = True) -> dict[str, np.ndarray] | None:
    rng = np.random.default_rng(t)
    batch = {"x": rng.standard_normal((3, 5, 2)), "w": rng.random((3, 5))} if pool and t else None
    store.commit_generation(run_id, t, {"m": np.full(3, float(t))}, {"t": t}, pool_batch=batch)
    return batch


def test_pool_batches_are_written_once_and_kept(store_path):
    store = Store(store_path)
    record = store.begin_run(resolve(RAW))
    batches = [commit(store, record.run_id, t) for t in range(6)]
    for upto in (0, 3, 5):
        loaded = store.load_pool(record.run_id, upto)
        assert len(loaded) == upto
        for got, want in zip(loaded, batches[1 : upto + 1], strict=True):
            assert got.keys() == want.keys()
            for key in want:
                assert got[key].tobytes() == want[key].tobytes()
    folder = store.artifacts / record.run_id
    assert len(list(folder.glob("pool_*.npz"))) == 5
    assert len(list(folder.glob("checkpoint_*.npz"))) == KEEP_CHECKPOINTS
    assert store.load_checkpoint(record.run_id) == (5, {"t": 5})


def test_a_damaged_pool_batch_restarts_the_run(store_path, caplog):
    store = Store(store_path)
    run_id = store.begin_run(resolve(RAW)).run_id
    for t in range(6):
        commit(store, run_id, t)
    truncate(store.artifacts / run_id / "pool_00002.npz")
    assert store.load_checkpoint(run_id) is None
    assert len(one_line_warnings(caplog)) == KEEP_CHECKPOINTS
    assert store.load_pool(run_id, 5) == []
    assert list(store.metric_arrays(run_id)) == []


# --- unusable store files ------------------------------------------------------------------


def make_store(path) -> None:
    store, _ = interrupted(path)
    store.close()


def not_sqlite(path):
    path.write_text("name: not a store\n")


def truncated_sqlite(path):
    make_store(path)
    truncate(path)


def corrupt_sqlite(path):
    make_store(path)
    data = bytearray(path.read_bytes())
    data[4096 : 4096 * 3] = os.urandom(8192)
    path.write_bytes(bytes(data))


def foreign_sqlite(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE songs (title TEXT)")
    db.commit()
    db.close()


def newer_schema(path):
    make_store(path)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()


def directory(path):
    path.mkdir()


@pytest.mark.parametrize(
    "spoil",
    [not_sqlite, truncated_sqlite, corrupt_sqlite, foreign_sqlite, newer_schema, directory],
)
@pytest.mark.parametrize("opener", [Store, StoreReader])
def test_an_unusable_store_path_is_a_one_line_config_error(tmp_path, spoil, opener):
    path = tmp_path / "s.sqlite"
    spoil(path)
    with pytest.raises(ConfigError) as info:
        store = opener(path)
        store.runs()
        for record in store.runs():
            list(store.metric_arrays(record.run_id))
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    if spoil is newer_schema:
        assert (
            f"schema version {SCHEMA_VERSION + 1}, this selfconsume reads {SCHEMA_VERSION}"
            in message
        )


def test_a_reader_never_creates_a_store(tmp_path):
    path = tmp_path / "none.sqlite"
    for opener in (StoreReader, lambda p: Store(p, create=False)):
        with pytest.raises(ConfigError, match="no such store"):
            opener(path)
        assert not path.exists()
        path.touch()  # an empty SQLite database, never given tables
        with pytest.raises(ConfigError, match="no such store|not a selfconsume store"):
            opener(path)
        assert path.stat().st_size == 0
        path.unlink()


def test_a_read_only_store_is_refused_to_writers_and_open_to_readers(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    make_store(path)
    monkeypatch.setattr(store_module.os, "access", lambda *_: False)  # root ignores chmod
    with pytest.raises(ConfigError, match="read-only"):
        Store(path)
    with StoreReader(path) as reader:
        (record,) = reader.runs()
    assert record.generations_done == STOP + 1
    store = Store(path, create=False)  # opened read-only: resuming from it writes nothing
    assert store.load_checkpoint(record.run_id)[0] == STOP
    store.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only file")
def test_a_read_only_file_is_refused_to_writers(tmp_path):
    path = tmp_path / "s.sqlite"
    make_store(path)
    path.chmod(0o444)
    with pytest.raises(ConfigError, match="read-only"):
        Store(path)


# --- leases --------------------------------------------------------------------------------


def test_a_live_lease_keeps_a_second_process_out_until_it_expires(store_path):
    cfg = resolve(RAW)
    first = Store(store_path)
    second = Store(store_path, lease_timeout=0.5)
    first.begin_run(cfg)
    with pytest.raises(RunBusy, match=cfg.run_id):
        second.begin_run(cfg)
    time.sleep(0.6)  # no heartbeat from `first` for longer than second's timeout
    assert second.begin_run(cfg).owner == second.owner
    with pytest.raises(RunBusy):  # the first process lost its lease: it must stop writing
        commit(first, cfg.run_id, 0)
    with pytest.raises(RunBusy):
        first.finish_run(cfg.run_id, "failed", "late")
    assert second.run(cfg.run_id).status == "running"


def test_heartbeats_keep_a_lease_alive(store_path):
    cfg = resolve(RAW)
    first = Store(store_path)
    second = Store(store_path, lease_timeout=1.5)
    first.begin_run(cfg)
    for t in range(3):  # 1.8 s in all: longer than the timeout, but never between two beats
        time.sleep(0.6)
        if t:
            commit(first, cfg.run_id, t)
        else:
            first.heartbeat(cfg.run_id)
        with pytest.raises(RunBusy):
            second.begin_run(cfg)


HOLDER = """
import sys
from selfconsume.plan import resolve
from selfconsume.store.sqlite import Store
import json
store = Store(sys.argv[1])
store.begin_run(resolve(json.loads(sys.argv[2])))
print("held", flush=True)
sys.stdin.readline()
"""


def test_a_dead_process_lease_is_taken_over_at_once(store_path):
    cfg = resolve(RAW)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store_path), json.dumps(RAW)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == b"held"
    store = Store(store_path)  # default 600 s timeout: only the pid check can free the lease
    with pytest.raises(RunBusy, match=f":{holder.pid}:"):
        store.begin_run(cfg)
    holder.kill()
    holder.wait()
    assert store.begin_run(cfg).owner == store.owner


@pytest.mark.parametrize("status", ["done", "failed", "interrupted"])
def test_finishing_releases_the_lease(store_path, status):
    cfg = resolve(RAW)
    first, second = Store(store_path), Store(store_path)
    first.begin_run(cfg)
    first.finish_run(cfg.run_id, status, "why", traceback="Traceback ...\nValueError: why")
    record = second.run(cfg.run_id)
    assert (record.status, record.error, record.owner) == (status, "why", None)
    assert record.traceback.endswith("ValueError: why")
    again = second.begin_run(cfg)
    assert again.status == ("done" if status == "done" else "running")
    assert again.owner == (None if status == "done" else second.owner)


def test_closing_a_store_releases_its_leases(store_path):
    cfg = resolve(RAW)
    first = Store(store_path)
    first.begin_run(cfg)
    first.close()
    assert Store(store_path).begin_run(cfg).status == "running"


def test_temporary_files_have_unique_names(store_path, monkeypatch):
    """Two writers of one artifact at once (the second inside the first's rename) both succeed
    and leave no temporary file behind; with one shared temporary name the first would fail."""
    store = Store(store_path)
    run_id = store.begin_run(resolve(RAW)).run_id
    replace, sources = os.replace, []

    def interleaved(src, dst):
        sources.append(src)
        if len(sources) == 1:
            commit(store, run_id, 0)
        replace(src, dst)

    monkeypatch.setattr(store_module.os, "replace", interleaved)
    commit(store, run_id, 0)
    assert len(set(sources)) == len(sources) == 2
    assert not [p for p in (store.artifacts / run_id).iterdir() if p.name.endswith(".tmp")]


def test_a_transaction_cut_off_by_an_interrupt_does_not_block_the_next(store_path, monkeypatch):
    """Ctrl-C right after BEGIN (before the `with` body) leaves a transaction open; marking the run
    interrupted afterwards must still work (it used to exit 2: transaction within a transaction)."""
    cfg = resolve(RAW)
    store = Store(store_path)
    store.begin_run(cfg)
    execute = Store._exec

    def cut_off(self, sql, args=()):
        out = execute(self, sql, args)
        if sql == "BEGIN IMMEDIATE":
            monkeypatch.setattr(Store, "_exec", execute)
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(Store, "_exec", cut_off)
    with pytest.raises(KeyboardInterrupt):
        store.finish_run(cfg.run_id, "done")
    store.finish_run(cfg.run_id, "interrupted", "KeyboardInterrupt")
    assert Store(store_path).run(cfg.run_id).status == "interrupted"
