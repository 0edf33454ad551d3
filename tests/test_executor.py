"""The executor protocol: `--executor` names pick an implementation, and the API runs a sweep
with any object that has `run`; locally, runs on a GPU get one worker process per GPU."""

from __future__ import annotations

import logging
import os

import pytest

from selfconsume.api import run_experiment
from selfconsume.errors import ConfigError
from selfconsume.plan import typed
from selfconsume.store.sqlite import Store
from selfconsume.sweep import executors
from selfconsume.sweep.executor import EXECUTORS, Dask, Executor, Local, executor_named
from selfconsume.sweep.executors import device_workers, gpu_envs, single_thread, wants_gpu
from selfconsume.sweep.pool import LocalPool

CONFIG = """
name: executors
replicates: 2
generations: 1
data: {kind: gaussian, n_real: 5, params: {dim: 1}}
model: {kind: gaussian}
scheme: {kind: mix, params: {lam: 0.5}}
sweep: {seed: [1, 2]}
"""


class Recording:
    """A user's executor: runs the sweep in this process and remembers what it was given."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, cfgs, store_path, poll):
        self.calls.append([c.run_id for c in cfgs])
        return Local().run(cfgs, store_path, poll)


def test_every_named_executor_implements_the_protocol():
    for name in EXECUTORS:
        assert isinstance(executor_named(name, workers=2), Executor)
    assert executor_named("local", 2) == Local(2)
    assert executor_named("dask", 3, "tcp://127.0.0.1:1") == Dask(3, "tcp://127.0.0.1:1")


def test_an_unknown_executor_name_is_bad_input():
    with pytest.raises(ConfigError, match="executor: unknown executor 'slurm'"):
        executor_named("slurm")


def test_a_user_executor_runs_the_sweep_into_the_store(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    executor = Recording()
    outcomes = run_experiment(config, store=tmp_path / "s.sqlite", executor=executor)
    assert [o.status for o in outcomes] == ["done", "done"]
    assert executor.calls == [[o.run_id for o in outcomes]]
    stored = {r.run_id: r.status for r in Store(tmp_path / "s.sqlite").runs()}
    assert stored == {o.run_id: "done" for o in outcomes}


# --- one process per GPU -------------------------------------------------------------------------


def visible_gpu(send) -> str | None:
    """A pool task: the GPUs this worker process sees."""
    return os.environ.get("CUDA_VISIBLE_DEVICES")


@pytest.mark.parametrize(
    ("workers", "gpus", "started"), [(4, 0, 4), (1, 0, 1), (4, 1, 1), (4, 2, 2), (1, 2, 1)]
)
def test_runs_on_a_gpu_get_one_worker_process_per_gpu(workers, gpus, started):
    assert device_workers(workers, gpus) == started


def test_each_gpu_worker_sees_only_its_own_gpu():
    assert gpu_envs(2, None) == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in gpu_envs(2, "3, 5")] == ["3", "5"]
    pool = LocalPool(2, visible_gpu, single_thread, gpu_envs(2, "3,5"))
    try:
        futures = [pool.submit() for _ in range(2)]
        while not all(f.done() for f in futures):
            pool.receive(0.5)
        assert sorted(f.result() for f in futures) == ["3", "5"]
    finally:
        pool.stop()


@pytest.mark.parametrize(
    ("model", "data_params", "gpu"),
    [
        ({"kind": "kde", "params": {"bandwidth": 0.1}}, {}, False),
        ({"kind": "ddpm", "params": {"device": "cpu"}}, {}, False),
        ({"kind": "ddpm", "params": {"device": "auto"}}, {}, True),
        ({"kind": "flow", "params": {"device": "cuda"}}, {}, True),
        (
            {"kind": "kde", "params": {"bandwidth": 0.1}},
            {"features": {"path": "f.pt", "input_size": [1, 8, 8], "device": "auto"}},
            True,
        ),
    ],
)
def test_a_run_wants_a_gpu_when_its_family_or_feature_network_may_use_one(model, data_params, gpu):
    raw = {"name": "g", "data": {"kind": "digits", "n_real": 10, "params": data_params}}
    assert wants_gpu(typed({**raw, "model": model})) is gpu


def test_a_gpu_sweep_on_one_gpu_runs_in_one_process_and_says_so(tmp_path, monkeypatch, caplog):
    """Two workers asked, one GPU seen: no pool starts; the runs go one after another here."""
    monkeypatch.setattr(executors, "cuda_devices", lambda: 1)
    monkeypatch.setattr(executors, "LocalPool", None)  # a pool would fail the test
    config = tmp_path / "c.yaml"
    small = "{hidden: 8, depth: 1, train_steps: 5, batch_size: 8, n_steps: 10, device: auto}"
    config.write_text(
        CONFIG.replace("model: {kind: gaussian}", f"model: {{kind: ddpm, params: {small}}}")
    )
    with caplog.at_level(logging.WARNING, logger=executors.__name__):
        outcomes = run_experiment(config, store=tmp_path / "s.sqlite", workers=2)
    assert [o.status for o in outcomes] == ["done", "done"]
    assert "2 worker processes asked, 1 started: one process per GPU" in caplog.text
