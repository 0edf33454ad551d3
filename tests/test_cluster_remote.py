"""A real cluster started apart: `dask scheduler` and two `dask worker` processes on 127.0.0.1, each
worker in its own mount namespace where the store's folder is an empty tmpfs. A numpy and a torch
sweep run there through the CLI, one worker is killed mid-sweep, and the exports equal the
in-process exports exactly (the one-writer path: workers never see the store).

Needs root (for `unshare -m` and `mount`); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import cli, env, export, why_no_private_mount

from selfconsume.api import run_experiment

BIN = Path(sys.executable).parent

NUMPY = """
name: cluster-numpy
seed: 5
replicates: 300
generations: 12
data: {kind: gaussian, n_real: 12, n_test: 4, params: {dim: 2}}
model: {kind: gaussian}
scheme: {kind: accumulate_subsample, lam: 1.0}
metrics: [gaussian_params, w2]
sweep: {scheme.lam: [0.5, 2.0], seed: [1, 2]}
"""

TORCH = """
name: cluster-torch
seed: 0
replicates: 2
generations: 8
data: {kind: eight_gaussians, n_real: 64, n_test: 32}
model:
  kind: ddpm
  warm_start: true
  params: {hidden: 16, depth: 1, n_steps: 10, ddim_steps: 10, train_steps: 60, batch_size: 32}
scheme: {kind: accumulate, lam: 0.5}
metrics: [w2, modes]
sweep: {seed: [1, 2, 3]}
"""


pytestmark = pytest.mark.skipif(bool(why_no_private_mount()), reason=str(why_no_private_mount()))


HANG = 600
"""Seconds after which a sweep counts as hung (a loaded 2-core machine runs these ten times slower)."""


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _address(scheduler_file: Path) -> str | None:
    """The scheduler's address, once it has written the whole file."""
    try:
        return json.loads(scheduler_file.read_text())["address"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture
def cluster(tmp_path):
    """(scheduler address, worker processes, hidden folder): workers cannot see `hidden`."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    scheduler_file = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                BIN / "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                scheduler_file,
            ],
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        _wait_for(lambda: _address(scheduler_file), 30, "the scheduler")
        worker = (
            f"mount -t tmpfs tmpfs '{hidden}' && cd / && exec '{BIN / 'dask'}' worker"
            f" --scheduler-file '{scheduler_file}' --nthreads 1 --no-nanny --host 127.0.0.1"
            " --no-dashboard"
        )
        workers = [
            subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", worker],
                env=env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        procs += workers
        address = _address(scheduler_file)
        yield address, workers, hidden
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()


def cli_run(config: Path, store: Path, address: str) -> subprocess.Popen:
    cmd = cli(
        "run", str(config), "--store", str(store), "--executor", "dask", "--scheduler", address
    )
    return subprocess.Popen(cmd, env=env(), stderr=subprocess.PIPE, text=True)


def generations(store: Path, name: str) -> list[int]:
    """generations_done of each run of experiment `name` (read by the test, not the sweep)."""
    try:
        db = sqlite3.connect(store, timeout=1)
        try:
            rows = db.execute("SELECT generations_done FROM runs WHERE name=?", (name,))
            return [g for (g,) in rows]
        finally:
            db.close()
    except sqlite3.Error:
        return []


def test_a_cluster_without_the_store_gives_the_in_process_export(cluster, tmp_path):
    from dask.distributed import Client

    address, workers, hidden = cluster
    configs = {}
    for name, text in (("numpy", NUMPY), ("torch", TORCH)):
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(text)
    store = hidden / "store.sqlite"
    reference = tmp_path / "reference.sqlite"
    for config in configs.values():
        run_experiment(config, store=reference)

    with Client(address, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
        seen = client.run(lambda: os.listdir(hidden) or os.path.exists(store))
    assert list(seen.values()) == [False, False]  # the workers' view of the folder is empty

    numpy_run = cli_run(configs["numpy"], store, address)
    _, stderr = numpy_run.communicate(timeout=HANG)
    assert numpy_run.returncode == 0, stderr

    torch_run = cli_run(configs["torch"], store, address)
    started = lambda: sum(g >= 1 for g in generations(store, "cluster-torch"))  # noqa: E731
    with Client(address, timeout=30) as client:
        pids = client.run(os.getpid)
        (victim,) = [a for a, pid in pids.items() if pid == workers[0].pid]
        _wait_for(  # or the sweep ended first: what is asserted below holds either way
            lambda: (
                torch_run.poll() is not None
                or (client.processing(workers=[victim])[victim] and started() >= 1)
            ),
            HANG,
            "worker 0 holding a run of a sweep under way",
        )
    workers[0].send_signal(signal.SIGKILL)  # it holds a run: the run resumes on the other worker
    _, stderr = torch_run.communicate(timeout=HANG)
    assert torch_run.returncode == 0, stderr
    assert "Traceback" not in stderr
    pd.testing.assert_frame_equal(export(store), export(reference))
