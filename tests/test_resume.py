"""An interrupted run resumes after its last committed generation and ends with the same numbers."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest
from helpers import cli, committed, env, interrupt_after, metric

from selfconsume.loop.run import run_config
from selfconsume.plan import load, resolve
from selfconsume.store.sqlite import Store

RAW = {
    "name": "resume",
    "seed": 7,
    "replicates": 64,
    "generations": 8,
    "data": {"kind": "gaussian", "n_real": 20, "n_test": 4, "params": {"dim": 2, "std": 1.5}},
    "model": {"kind": "gaussian", "params": {"estimator": "unbiased"}},
    "scheme": {"kind": "accumulate_subsample", "lam": 0.5},
    "metrics": ["gaussian_params", "w2"],
}


@pytest.mark.parametrize(
    ("scheme", "model"),
    [
        ("accumulate_subsample", "gaussian"),
        ("accumulate", "gaussian"),  # sufficient statistics in the checkpoint, no pool kept
        ("accumulate", "kde"),  # the pool rebuilt from its append-only batches
    ],
)
def test_interrupted_run_resumes_to_identical_numbers(tmp_path, scheme, model):
    raw = RAW | {"scheme": {"kind": scheme, "lam": 0.5}, "model": {"kind": model}}
    if model == "kde":
        raw["metrics"] = ["w2"]
    cfg = resolve(raw)
    reference = Store(tmp_path / "ref.sqlite")
    run_config(cfg, reference)

    store = Store(tmp_path / "store.sqlite")

    interrupt_after(cfg, store, 3)
    assert store.run(cfg.run_id).generations_done == 4
    seen = []
    run_config(cfg, store, on_generation=seen.append)
    assert seen == list(range(4, 9))  # only the missing generations ran
    names = ("w2",) if model == "kde" else ("cov_logdet", "mean_error", "w2")
    for name in names:
        np.testing.assert_array_equal(
            metric(store, cfg.run_id, name), metric(reference, cfg.run_id, name)
        )


HANG = 600
"""Seconds a killed run may take to commit its first generations: a guard against a hang, not a
speed test (a loaded 2-core machine runs it ten times slower than a quiet one)."""


@pytest.mark.slow
def test_killed_process_resumes(tmp_path):
    """The kill waits for 2 committed generations (an event, not a clock: a loaded machine cannot
    make it land before them), 148 generations before the end."""
    config = tmp_path / "long.yaml"
    config.write_text(
        "name: long\nseed: 1\nreplicates: 20000\ngenerations: 150\n"
        "data: {kind: gaussian, n_real: 50, n_test: 2}\nmodel: {kind: gaussian}\n"
        "scheme: {kind: replace}\nmetrics: [gaussian_params]\n"
    )
    store_path = tmp_path / "s.sqlite"
    cmd = cli("run", str(config), "--store", str(store_path))
    proc = subprocess.Popen(cmd, env=env(), stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + HANG
    while committed(store_path) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    store = Store(store_path)
    (record,) = store.runs()
    assert 2 <= record.generations_done < 151 and record.status == "running"
    assert subprocess.run(cmd, env=env(), stderr=subprocess.DEVNULL).returncode == 0
    resumed = metric(store, record.run_id, "std")
    ref_store = Store(tmp_path / "ref.sqlite")
    (cfg,) = load(str(config))
    run_config(cfg, ref_store)
    np.testing.assert_array_equal(resumed, metric(ref_store, record.run_id, "std"))
