"""Deep families through the CLI: bad 2-D input exits 2 with one line; a diverging run is recorded
as failed with its reason while its sweep siblings finish (exit 1)."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.store.sqlite import Store

runner = CliRunner()

CONFIG = """
name: deep-test
seed: 0
replicates: 2
generations: 2
data: {kind: eight_gaussians, n_real: 64, n_test: 32}
model:
  kind: ddpm
  warm_start: true
  params: {hidden: 16, depth: 2, n_steps: 10, train_steps: 20, batch_size: 32}
scheme: {kind: mix, lam: 0.5}
metrics: [w2, modes]
"""


def run(config_file, store_path, *sets: str):
    args = ["run", str(config_file), "--store", str(store_path)]
    for item in sets:
        args += ["--set", item]
    return runner.invoke(app, args)


def one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_bad_2d_input_exits_2(config_file, store_path, tmp_path):
    nan_csv = tmp_path / "nan.csv"
    nan_csv.write_text("0.0,1.0\n1.0,nan\n2.0,3.0\n")
    three = tmp_path / "three.npy"
    np.save(three, np.zeros((10, 3)))
    cases = [
        ([f"data={{kind: file, n_real: 8, n_test: 4, params: {{path: '{nan_csv}'}}}}"], "nan.csv"),
        (
            [f"data={{kind: file, n_real: 8, n_test: 4, params: {{path: '{three}', dim: 2}}}}"],
            "three.npy",
        ),
        (["data.n_real=0"], "data.n_real"),
        (["model.params.train_steps=-5"], "model.params.train_steps"),
        (["model.params.n_steps=-1"], "model.params.n_steps"),
    ]
    for sets, needle in cases:
        result = run(config_file, store_path, *sets)
        assert result.exit_code == 2, (sets, result.output)
        assert needle in one_line(result)
    assert not store_path.exists()


def test_diverging_run_fails_and_siblings_finish(config_file, store_path):
    result = run(config_file, store_path, "sweep.model.params.lr=[0.001, 1.0e+30]")
    assert result.exit_code == 1
    runs = {r.config.model.params.lr: r for r in Store(store_path).runs()}
    assert runs[0.001].status == "done" and runs[0.001].generations_done == 3
    assert runs[1e30].status == "failed"
    assert "non-finite" in runs[1e30].error
