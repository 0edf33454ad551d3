"""The executor protocol: `--executor` names pick an implementation, and the API runs a sweep
with any object that has `run`."""

from __future__ import annotations

import pytest

from selfconsume.api import run_experiment
from selfconsume.errors import ConfigError
from selfconsume.store.sqlite import Store
from selfconsume.sweep.executor import EXECUTORS, Dask, Executor, Local, executor_named

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
