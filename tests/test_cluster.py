"""The one-writer path: records travel bit for bit, the writer commits each generation once and in
order, worker processes never open the store (local pool and Dask alike), a run rerun after its
worker died resumes from what is committed, a run failing on a worker leaves the worker's
traceback in the store, the client dying resumes on rerun, and bad cluster input ends with one line
naming the address."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import cli, committed, curated_config, export
from typer.testing import CliRunner

from selfconsume.api import run_experiment
from selfconsume.cli import app
from selfconsume.loop.run import Resume, read_resume
from selfconsume.plan import resolve
from selfconsume.store.checkpoint import from_bytes
from selfconsume.store.sqlite import Store
from selfconsume.sweep.executors import FREE_PORT, run_on_worker
from selfconsume.sweep.wire import (
    SendingSink,
    decode_record,
    decode_resume,
    encode_record,
    encode_resume,
)
from selfconsume.sweep.writer import Result, Writer

runner = CliRunner()

CONFIG = """
name: cluster-unit
seed: 3
replicates: 50
generations: 6
data: {kind: gaussian, n_real: 10, n_test: 4, params: {dim: 2}}
model: {kind: gaussian}
scheme: {kind: accumulate_subsample, lam: 1.0}
metrics: [gaussian_params, w2]
sweep: {scheme.lam: [0.5, 2.0], seed: [1, 2]}
"""


def test_a_record_travels_bit_for_bit():
    rng = np.random.default_rng(0)
    checkpoint = {
        "model": {"w": torch.randn(3, 4, dtype=torch.float64), "opt": {0: {"step": 5}}},
        "tiny": np.array([np.nextafter(1.0, 2.0), -0.0, np.inf]),
    }
    pool = {"x": rng.standard_normal((2, 5, 2)), "w": rng.random((2, 5))}
    metrics = {"w2": rng.standard_normal(2)}
    samples = rng.standard_normal((2, 7, 2))
    record = decode_record(encode_record("r1", 4, metrics, checkpoint, samples, pool))
    assert (record.run_id, record.generation) == ("r1", 4)
    np.testing.assert_array_equal(record.metrics["w2"], metrics["w2"])
    np.testing.assert_array_equal(record.samples, samples)
    back = from_bytes(record.checkpoint)
    assert torch.equal(back["model"]["w"], checkpoint["model"]["w"])
    assert back["model"]["opt"] == {0: {"step": 5}}
    assert back["tiny"].tobytes() == checkpoint["tiny"].tobytes()
    assert from_bytes(record.pool_batch)["x"].tobytes() == pool["x"].tobytes()
    resume = decode_resume(encode_resume(Resume(5, checkpoint, [pool])))
    assert resume.start == 5 and resume.pool[0]["w"].tobytes() == pool["w"].tobytes()


def test_the_writer_commits_each_generation_once_and_in_order(store_path):
    cfg = resolve({**_raw(), "generations": 3})
    store = Store(store_path)
    writer = Writer(store)
    assert decode_resume(writer.begin(cfg)).start == 0
    sent: list[bytes] = []
    sink = SendingSink(sent.append)
    for t in range(3):
        sink.commit_generation(cfg.run_id, t, {"m": np.full(2, float(t))}, {"t": t})
    arrivals = [sent[1], sent[0], sent[0], sent[2]]  # early, in order, repeated, early
    for data in arrivals:
        writer.commit(data)
    assert writer.committed(cfg.run_id) == 1
    for data in sent:  # a rerun task sends them all again
        writer.commit(data)
    assert writer.committed(cfg.run_id) == 3
    rows = [(g, m, v.tolist()) for g, m, v in store.metric_arrays(cfg.run_id)]
    assert rows == [(t, "m", [float(t)] * 2) for t in range(3)]
    resume = read_resume(store, cfg.run_id)
    assert resume.start == 3 and resume.checkpoint == {"t": 2}
    assert writer.sent_bytes == sum(len(d) for d in arrivals + sent)


def test_a_run_whose_lease_another_process_took_is_left_to_it(store_path):
    cfg = resolve({**_raw(), "generations": 3})
    writer = Writer(Store(store_path))
    writer.begin(cfg)
    sent: list[bytes] = []
    sink = SendingSink(sent.append)
    for t in range(2):
        sink.commit_generation(cfg.run_id, t, {"m": np.full(2, float(t))}, {"t": t})
    writer.commit(sent[0])
    other = Store(store_path)  # another live holder takes the lease over (as after an expiry)
    other._db.execute(
        "UPDATE runs SET owner=?, heartbeat=? WHERE run_id=?",
        (other.owner, time.time(), cfg.run_id),
    )
    writer.commit(sent[1])
    outcome = writer.finish(Result(cfg.run_id, "done", last=1))
    assert outcome.status == "busy" and other.owner in outcome.error
    record = other.run(cfg.run_id)
    assert (record.status, record.generations_done, record.owner) == ("running", 1, other.owner)


def _raw() -> dict:
    import yaml

    raw = yaml.safe_load(CONFIG)
    raw.pop("sweep")
    return raw


SITECUSTOMIZE = """
import sqlite3
_connect = sqlite3.connect
def _refuse(database, *args, **kwargs):
    if "cluster-store" in str(database):
        raise RuntimeError("a worker process opened the store")
    return _connect(database, *args, **kwargs)
sqlite3.connect = _refuse
"""


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_workers_never_open_the_store_and_give_the_in_process_numbers(
    config_file, tmp_path, monkeypatch, executor
):
    """Worker processes start with a sitecustomize that refuses to open the store: a run whose
    worker tried would fail. This (parent) process was started before, so it can."""
    reference = tmp_path / "reference.sqlite"
    run_experiment(config_file, store=reference)
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(guard), *sys.path]))
    store = tmp_path / "cluster-store.sqlite"
    outcomes = run_experiment(config_file, store=store, executor=executor, workers=2)
    assert [o.status for o in outcomes] == ["done"] * 4, outcomes
    pd.testing.assert_frame_equal(export(store), export(reference))


def test_a_task_rerun_behind_the_committed_generation_returns_stale_at_once(tmp_path):
    from dask.distributed import Client, LocalCluster, Variable

    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=FREE_PORT) as cluster,
        Client(cluster) as client,
    ):
        Variable("chan-committed", client=client).set({"r": 3})
        future = client.submit(run_on_worker, "r", "not even json", b"", 0, "chan", pure=False)
        assert future.result(timeout=30).status == "stale"  # returned before reading its input
        future = client.submit(run_on_worker, "r", "not json", b"", 3, "chan", pure=False)
        assert future.result(timeout=30).status == "failed"  # not behind: it runs (and fails)


def test_a_run_failing_on_a_dask_worker_leaves_its_traceback_and_siblings_finish(
    tmp_path, user_rewards
):
    config = tmp_path / "curated.yaml"
    config.write_text(curated_config("cluster-curated", "good", "type_error"))
    store_path = tmp_path / "f.sqlite"
    outcomes = run_experiment(config, store=store_path, executor="dask", workers=1)
    assert sorted(o.status for o in outcomes) == ["done", "failed"]
    by_target = {r.config.curation.reward.params.target: r for r in Store(store_path).runs()}
    assert by_target["userrewards:good"].status == "done"
    failed = by_target["userrewards:type_error"]
    assert failed.status == "failed" and failed.error.startswith("TypeError: unsupported")
    assert failed.generations_done >= 1  # generations before the failure were committed
    assert "userrewards.py" in failed.traceback and "in type_error" in failed.traceback


def test_the_client_dying_resumes_on_rerun(config_file, tmp_path):
    reference = tmp_path / "reference.sqlite"
    run_experiment(config_file, ["generations=200"], store=reference)
    store_path = tmp_path / "killed.sqlite"
    cmd = cli("run", str(config_file), "--store", str(store_path), "--workers", "2")
    cmd += ["--set", "generations=200"]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not committed(store_path):
            time.sleep(0.05)
        assert committed(store_path), "no generation was committed in time"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client and its workers, at once
        proc.wait()
    assert "running" in [r.status for r in Store(store_path).runs()]  # killed mid-sweep
    outcomes = run_experiment(config_file, ["generations=200"], store=store_path)
    assert [o.status for o in outcomes] == ["done"] * 4
    pd.testing.assert_frame_equal(export(store_path), export(reference))


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def run_on(scheduler: str, config_file: Path, tmp_path: Path, *extra: str):
    """`selfconsume run --executor dask --scheduler ADDRESS`, in this process, and its seconds."""
    args = ["run", str(config_file), "--store", str(tmp_path / "s.sqlite"), "--executor", "dask"]
    start = time.monotonic()
    result = runner.invoke(app, [*args, "--scheduler", scheduler, *extra])
    return result, time.monotonic() - start


def test_an_unreachable_scheduler_exits_2_naming_it(config_file, tmp_path):
    with socket.socket() as held:  # bound but never listening: refused, and no one else's port
        held.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{held.getsockname()[1]}"
        result, seconds = run_on(address, config_file, tmp_path)
    assert seconds < 30
    assert result.exit_code == 2, result.output
    assert address in _one_error_line(result.output)


def test_a_scheduler_without_workers_exits_1_naming_it(config_file, tmp_path):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=FREE_PORT) as cluster:
        address = cluster.scheduler_address
        result, seconds = run_on(address, config_file, tmp_path, "--wait-workers", "1")
        assert seconds < 30
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.output)
    assert address in line and "no workers" in line
