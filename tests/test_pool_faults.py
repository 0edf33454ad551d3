"""Faults of a pooled sweep (`selfconsume run --workers 2`, the real command in a subprocess): a full
disk, a user reward calling sys.exit or SIGKILLing its own worker, and the sweep's process itself
SIGKILLed. Each must end within seconds, with every run's fate in the store and no process left
behind. Every kill waits on an event (a committed generation, a live worker), never on a clock;
the time limits only turn a hang into a failure.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from helpers import cli, committed, curated_config, env, export, why_no_private_mount

from selfconsume.api import run_experiment
from selfconsume.store.sqlite import Store

NEEDS_MOUNT = pytest.mark.skipif(bool(why_no_private_mount()), reason=str(why_no_private_mount()))
HANG = 600
"""Seconds after which a sweep counts as hung: a guard, not a speed test (a loaded 2-core machine
runs these sweeps ten times slower than a quiet one)."""

LONG = """
name: pool-long
seed: 1
replicates: 200
generations: {generations}
data: {{kind: gaussian, n_real: 40, n_test: 2, params: {{dim: 2}}}}
model: {{kind: gaussian}}
scheme: {{kind: accumulate, lam: 1.0}}
metrics: [gaussian_params]
sweep: {{seed: [1, 2]}}
"""


def command(config: Path, store: Path) -> list[str]:
    return cli("run", str(config), "--store", str(store), "--workers", "2")


def start(cmd: list[str], environ: dict[str, str]) -> subprocess.Popen:
    """The command in a session of its own (so a hung one is killed with all its processes)."""
    return subprocess.Popen(
        cmd, env=environ, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """Its exit code and stderr; a sweep still going after HANG seconds is a hang."""
    try:
        _, stderr = proc.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"the sweep hung for {HANG} s") from None
    return proc.returncode, stderr


def curated_sweep(tmp_path: Path, targets: list[str]) -> Path:
    config = tmp_path / "curated.yaml"
    config.write_text(curated_config("pool-faults", *targets))
    return config


def by_target(store: Path) -> dict:
    return {r.config.curation.reward.params.target.split(":")[1]: r for r in Store(store).runs()}


# --- a user's code ending its worker ---------------------------------------------------------------


def test_a_reward_calling_sys_exit_fails_its_run_and_its_sibling_finishes(tmp_path, user_rewards):
    """It used to hang: the SystemExit escaped the sweep's loop and the pool waited forever."""
    config, store = curated_sweep(tmp_path, ["good", "exits"]), tmp_path / "s.sqlite"
    proc = start(command(config, store), env(user_rewards))
    code, stderr = finish(proc)
    assert code == 1, stderr
    assert "Traceback" not in stderr
    runs = by_target(store)
    assert runs["good"].status == "done"
    failed = runs["exits"]
    assert (failed.status, failed.error) == ("failed", "SystemExit: 3")
    assert "in exits" in failed.traceback and failed.generations_done >= 1
    assert f"run {failed.run_id} failed: SystemExit: 3" in stderr


def test_a_dying_worker_costs_only_its_run_which_resumes_once(tmp_path, user_rewards):
    """A reward SIGKILLing its worker once resumes on a fresh worker to the numbers of a run never
    killed; one killing it every time fails alone, with the reason; the others never notice. It
    used to fail 3 runs of 4 with BrokenProcessPool and no traceback."""
    targets = ["good", "killed_once", "killed_always", "also_good"]
    config, store = curated_sweep(tmp_path, targets), tmp_path / "s.sqlite"
    reference = tmp_path / "reference.sqlite"
    run_experiment(config, store=reference)  # in this process no reward kills
    proc = start(command(config, store), env(user_rewards))
    code, stderr = finish(proc)
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert (user_rewards / "killed-once").exists()  # the kill did happen
    runs = by_target(store)
    assert {t: r.status for t, r in runs.items()} == {
        "good": "done",
        "killed_once": "done",
        "killed_always": "failed",
        "also_good": "done",
    }
    assert f"run {runs['killed_once'].run_id}: its worker process" in stderr
    failed = runs["killed_always"]
    assert failed.error.startswith("WorkerDied: twice") and "killed by SIGKILL" in failed.error
    assert failed.traceback.count("was killed by SIGKILL") == 2
    done = [r.run_id for r in runs.values() if r.status == "done"]
    ours, theirs = export(store), export(reference)
    pd.testing.assert_frame_equal(
        ours[ours.run_id.isin(done)].reset_index(drop=True),
        theirs[theirs.run_id.isin(done)].reset_index(drop=True),
    )


# --- a full disk -----------------------------------------------------------------------------------


@NEEDS_MOUNT
def test_a_full_disk_stops_a_pooled_sweep_in_seconds_and_it_resumes(tmp_path):
    """The store lives on a 3 MB tmpfs that the sweep fills. It used to hang for good, every run
    left `running`. Now: exit 1 with one line, every run interrupted with the reason (SQLite
    writes that with the space the writer held back), and a rerun with room resumes to the numbers
    of an uninterrupted sweep."""
    config = tmp_path / "long.yaml"
    config.write_text(LONG.format(generations=100))  # ~5 MB a run
    reference = tmp_path / "reference.sqlite"
    run_experiment(config, store=reference)
    disk, copy = tmp_path / "disk", tmp_path / "copy"
    disk.mkdir()
    cmd = shlex.join(command(config, disk / "s.sqlite"))
    script = (
        f"mount -t tmpfs -o size=3m tmpfs '{disk}' || exit 99; {cmd}; code=$?;"
        f" cp -a '{disk}' '{copy}'; exit $code"
    )
    proc = start(["unshare", "-m", "--propagation", "private", "sh", "-c", script], env())
    code, stderr = finish(proc)
    assert code == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "OSError: [Errno 28]" in errors[0], stderr
    runs = Store(copy / "s.sqlite").runs()
    assert len(runs) == 2
    for run in runs:
        assert run.status == "interrupted", (run.status, run.error)
        assert run.error.startswith("stopped: OSError: [Errno 28]")
    assert not (copy / "s.sqlite-reserve").exists()  # the reserve was given back
    outcomes = run_experiment(config, store=copy / "s.sqlite")
    assert [o.status for o in outcomes] == ["done", "done"]
    pd.testing.assert_frame_equal(export(copy / "s.sqlite"), export(reference))


FILL_AND_STOP = """
import errno, json, os, sys
from pathlib import Path
import selfconsume.sweep.writer as writer
from selfconsume.plan import resolve
from selfconsume.store.sqlite import Store

disk, writer.RESERVE_BYTES = Path(sys.argv[1]), int(sys.argv[2])
store = Store(disk / "s.sqlite")
sweep = writer.Writer(store)
cfg = resolve(json.loads(sys.argv[3]))
sweep.begin(cfg)
fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
try:
    while os.write(fd, bytes(4096)):
        pass
except OSError as exc:
    assert exc.errno == errno.ENOSPC
sweep.stop(OSError(errno.ENOSPC, "No space left on device"))
print(store.run(cfg.run_id).status)
"""


@NEEDS_MOUNT
@pytest.mark.parametrize(("reserve", "status"), [(1 << 20, "interrupted"), (0, "running")])
def test_the_writers_reserve_lets_sqlite_record_a_run_on_a_full_disk(tmp_path, reserve, status):
    """With the disk filled to the last byte, marking a run interrupted needs SQLite to grow its
    log: only the space the writer held back makes that possible (without it, the run would be
    left `running`)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    raw = {
        "name": "reserve",
        "seed": 1,
        "replicates": 2,
        "generations": 1,
        "data": {"kind": "gaussian", "n_real": 4, "n_test": 2},
        "model": {"kind": "gaussian"},
        "scheme": {"kind": "mix", "lam": 1.0},
        "metrics": ["gaussian_params"],
    }
    args = [sys.executable, "-c", FILL_AND_STOP, str(disk), str(reserve), json.dumps(raw)]
    script = f"mount -t tmpfs -o size=2m tmpfs '{disk}' || exit 99; exec {shlex.join(args)}"
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        env=env(),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [status]


# --- the sweep's own process killed ----------------------------------------------------------------


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_no_worker_outlives_a_sigkilled_sweep(tmp_path):
    """It used to leave both workers and the resource tracker running for good."""
    config, store = tmp_path / "long.yaml", tmp_path / "s.sqlite"
    config.write_text(LONG.format(generations=300))
    proc = subprocess.Popen(command(config, store), env=env(), stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + HANG
        while committed(store) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert committed(store) >= 2, "no generation was committed in time"
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2  # the two workers (and the resource tracker)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 60  # a guard: the kernel kills them at once (PDEATHSIG)
    while not all(gone(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [c for c in children if not gone(c)]
    for c in survivors:  # do not leave them burning the machine
        c.kill()
    assert [c.cmdline() for c in survivors] == []
