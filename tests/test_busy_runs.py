"""A run another live process is computing: `run` skips it and exits 75 (not 1, which means a run
failed); `run --wait` waits for that process and reports the run as it ended, or resumes it when
the process dies first. Each test holds the run in a real second process and synchronises on its
output lines, never on a clock."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.plan import resolve

RAW = {
    "name": "busy",
    "seed": 1,
    "replicates": 4,
    "generations": 3,
    "data": {"kind": "gaussian", "n_real": 10, "n_test": 5, "params": {"dim": 1}},
    "model": {"kind": "gaussian"},
    "metrics": ["w2"],
}
HOLDER = """
import json, sys
from selfconsume.loop.run import run_config
from selfconsume.plan import resolve
from selfconsume.store.sqlite import Store

def hold(generation):
    if generation == 0:  # generation 0 is committed and the lease held: wait for the test
        print("held", flush=True)
        sys.stdin.readline()

outcome = run_config(resolve(json.loads(sys.argv[2])), Store(sys.argv[1]), hold)
print(outcome.status, flush=True)
"""
CLI = "from selfconsume.cli import app; app()"
GUARD = 120
"""Seconds after which a stuck process fails the test (a guard, never a synchronisation)."""


@pytest.fixture
def holder(store_path):
    """A second process computing the run, stopped after generation 0 until told to go on."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store_path), json.dumps(RAW)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(GUARD)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "busy.yaml"
    path.write_text(yaml.safe_dump(RAW))
    return str(path)


def status(store_path) -> tuple[str, int]:
    run_id = resolve(RAW).run_id
    query = "SELECT status, generations_done FROM runs WHERE run_id=?"
    return sqlite3.connect(store_path).execute(query, (run_id,)).fetchone()


def waiting(config: str, store_path) -> subprocess.Popen:
    """`selfconsume run --wait` in a third process, returned once it says it is waiting."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "run", config, "--store", str(store_path), "--wait"],
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "waiting for it (--wait)" in line:
            return proc
    raise AssertionError(f"never said it waits: {seen}")


def test_a_busy_run_exits_75_and_leaves_the_run_to_its_holder(config, store_path, holder):
    result = CliRunner().invoke(app, ["run", config, "--store", str(store_path)])
    assert result.exit_code == 75, result.output  # EXIT_BUSY
    assert f"run {resolve(RAW).run_id} skipped" in result.stderr
    assert "0/1 runs done, 1 busy in another process" in result.stderr
    assert status(store_path)[0] == "running"
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "done"


def test_run_wait_waits_for_the_holder_and_reports_the_finished_run(config, store_path, holder):
    waiter = waiting(config, store_path)
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "done"
    _, err = waiter.communicate(timeout=GUARD)
    assert waiter.returncode == 0, err
    assert "1/1 runs done" in err
    assert status(store_path) == ("done", RAW["generations"] + 1)


def test_run_wait_resumes_the_run_when_its_holder_dies(config, store_path, holder):
    waiter = waiting(config, store_path)
    holder.kill()
    holder.wait(GUARD)
    _, err = waiter.communicate(timeout=GUARD)
    assert waiter.returncode == 0, err
    assert status(store_path) == ("done", RAW["generations"] + 1)
