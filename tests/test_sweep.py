"""Sweeps: local worker processes and a real Dask cluster on 127.0.0.1 give the in-process numbers;
a diverging run is recorded as failed while its siblings finish."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import metric

from selfconsume.api import run_experiment
from selfconsume.models.base import MODELS
from selfconsume.models.gaussian import GaussianModel, GaussianModelParams
from selfconsume.store.sqlite import Store
from selfconsume.sweep.executors import FREE_PORT

CONFIG = """
name: sweep-test
seed: 5
replicates: 200
generations: 5
data: {kind: gaussian, n_real: 12, n_test: 3}
model: {kind: gaussian}
scheme: {kind: mix, lam: 1.0}
metrics: [gaussian_params]
sweep: {scheme.lam: [0.0, 0.5, 2.0], seed: [1, 2]}
"""


def stds(store_path) -> dict[str, np.ndarray]:
    store = Store(store_path)
    return {r.run_id: metric(store, r.run_id, "std") for r in store.runs()}


@pytest.mark.slow
def test_workers_and_dask_match_in_process(config_file, tmp_path):
    serial = tmp_path / "serial.sqlite"
    outcomes = run_experiment(config_file, store=serial)
    assert [o.status for o in outcomes] == ["done"] * 6
    local = tmp_path / "local.sqlite"
    assert all(o.status == "done" for o in run_experiment(config_file, store=local, workers=2))
    dask = tmp_path / "dask.sqlite"
    outcomes = run_experiment(config_file, store=dask, executor="dask", workers=2)
    assert all(o.status == "done" for o in outcomes)
    reference = stds(serial)
    assert len(reference) == 6
    for other in (stds(local), stds(dask)):
        assert other.keys() == reference.keys()
        for run_id, values in reference.items():
            np.testing.assert_array_equal(other[run_id], values)


class ExplodingModel(GaussianModel):
    """A Gaussian whose fit diverges at generation 2 when the run's lam is 0.5."""

    def fit(self, x, weights, generation, warm):
        out = super().fit(x, weights, generation, warm)
        if generation == 2 and x.shape[1] == 18:  # 12 real + round(0.5 * 12) synthetic
            return {"loss": np.full(len(self.mean), np.nan)}
        return out


def test_diverging_run_is_recorded_and_siblings_finish(config_file, store_path):
    MODELS.register("exploding_test", GaussianModelParams)(ExplodingModel)
    outcomes = run_experiment(config_file, ["model.kind=exploding_test"], store=store_path)
    failed = [o for o in outcomes if o.status == "failed"]
    assert len(failed) == 2 and len(outcomes) == 6
    store = Store(store_path)
    for o in failed:
        record = store.run(o.run_id)
        assert record.status == "failed" and "non-finite" in record.error
        assert record.generations_done == 2
    assert sum(r.status == "done" and r.generations_done == 6 for r in store.runs()) == 4


def test_cli_on_an_existing_dask_scheduler(config_file, tmp_path):
    from dask.distributed import LocalCluster
    from typer.testing import CliRunner

    from selfconsume.cli import app

    store = tmp_path / "remote.sqlite"
    with LocalCluster(
        n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=FREE_PORT
    ) as cluster:
        result = CliRunner().invoke(
            app,
            [
                "run",
                str(config_file),
                "--store",
                str(store),
                "--executor",
                "dask",
                "--scheduler",
                cluster.scheduler_address,
                "--set",
                "sweep.seed=[1]",
            ],
        )
    assert result.exit_code == 0, result.output
    reference = tmp_path / "ref.sqlite"
    run_experiment(config_file, ["sweep.seed=[1]"], store=reference)
    ours, ref = stds(store), stds(reference)
    assert len(ours) == 3 and ours.keys() == ref.keys()
    for run_id, values in ref.items():
        np.testing.assert_array_equal(ours[run_id], values)
