"""The command line: runs, resumes, exports, reports, and bad input exits 2 with one line."""

from __future__ import annotations

import io
import json
import sqlite3

import pandas as pd
import pytest
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.kinds import SELECTION_KINDS
from selfconsume.loop.selection import SELECTIONS

runner = CliRunner()

CONFIG = """
name: cli-test
seed: 3
replicates: 50
generations: 4
data: {kind: gaussian, n_real: 10, n_test: 5, params: {dim: 1, std: 1.0}}
model: {kind: gaussian, params: {estimator: unbiased}}
scheme: {kind: mix, lam: 0.5}
metrics: [gaussian_params, w2]
sweep: {scheme.lam: [0.0, 1.0]}
"""


def invoke(*args: str):
    return runner.invoke(app, list(args))


def run_with(config_file, store_path, *sets: str):
    """`selfconsume run CONFIG --store STORE --set ...`."""
    args = ["run", str(config_file), "--store", str(store_path)]
    for item in sets:
        args += ["--set", item]
    return invoke(*args)


def test_run_twice_does_the_work_once(config_file, store_path):
    first = run_with(config_file, store_path)
    assert first.exit_code == 0, first.output
    db = sqlite3.connect(store_path)
    stamp = db.execute("SELECT run_id, finished_at FROM runs ORDER BY run_id").fetchall()
    assert len(stamp) == 2
    again = run_with(config_file, store_path)
    assert again.exit_code == 0
    assert db.execute("SELECT run_id, finished_at FROM runs ORDER BY run_id").fetchall() == stamp


def test_export_long_format(config_file, store_path, capsys):
    from selfconsume.store.export import export

    assert run_with(config_file, store_path).exit_code == 0
    buf = io.StringIO()
    export(store_path, "csv", stdout=buf)
    frame = pd.read_csv(io.StringIO(buf.getvalue()))
    long = ["run_id", "name", "replicate", "generation", "metric", "value"]
    assert (
        list(frame.columns[:6]) == long and "scheme.params.lam" in frame.columns
    )  # then swept keys
    # 2 runs x 5 generations x 50 replicates per metric
    assert (frame.metric == "std").sum() == 2 * 5 * 50
    buf = io.StringIO()
    export(store_path, "json", stdout=buf)
    records = json.loads(buf.getvalue())
    assert len(records) == len(frame)
    assert set(records[0]) == set(frame.columns)
    result = invoke("export", "--store", str(store_path), "--format", "csv")
    assert result.exit_code == 0 and result.output.startswith("run_id,name,replicate")


def test_set_override_and_report(config_file, store_path, tmp_path):
    result = run_with(
        config_file,
        store_path,
        "generations=2",
        "sweep.scheme.lam=[0.5]",
    )
    assert result.exit_code == 0, result.output
    runs = sqlite3.connect(store_path).execute("SELECT generations_done FROM runs").fetchall()
    assert runs == [(3,)]
    out = tmp_path / "rep"
    assert invoke("report", "--store", str(store_path), "--out", str(out)).exit_code == 0
    assert (out / "index.html").exists()
    assert list(out.glob("*.png"))


def test_presets_listed():
    result = invoke("presets")
    assert result.exit_code == 0
    assert "warmup-gaussian" in result.output
    kinds = invoke("presets", "--kinds")
    assert kinds.exit_code == 0 and "gaussian" in kinds.output


def test_every_curation_kind_is_listed():
    """Every selection kind (rules by a reward and reward-free kinds) is one registry's."""
    rows = invoke("presets", "--kinds").output.splitlines()
    listed = {row.split("│")[2].strip() for row in rows if row.count("│") > 3}
    assert set(SELECTIONS.names()) == set(SELECTION_KINDS) <= listed


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("colour=red", "colour"),
        ("scheme.lam=-0.5", "scheme.params.lam"),
        ("data.n_real=1", "data.n_real"),
        ("replicates=many", "replicates"),
        ("model.kind=no_such_family", "model.kind"),
        ("model.params.estimator=median", "model.params.estimator"),
        ("data.params.bogus=1", "data.params.bogus"),
        ("metrics=[nope]", "metrics"),
        ("metrics=[reward]", "metrics"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(config_file, store_path, override, needle):
    result = run_with(config_file, store_path, override)
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert not store_path.exists()


def test_missing_preset_and_file(store_path, tmp_path):
    for source in ("no-such-preset", str(tmp_path / "missing.yaml")):
        result = invoke("run", source, "--store", str(store_path))
        assert result.exit_code == 2
        assert source in result.output
    assert not store_path.exists()


def test_set_on_a_swept_key_pins_it(config_file):
    from selfconsume.plan import load

    cfgs = load(str(config_file), ["scheme.lam=2.0"])
    assert [c.scheme.params.lam for c in cfgs] == [2.0]
    assert len(load(str(config_file))) == 2


def test_population_mode_rejects_curation_it_cannot_compute(config_file, store_path):
    reward = "{kind: linear, params: {coef: [1.0]}}"
    result = run_with(
        config_file,
        store_path,
        "model.population=true",
        f"curation={{kind: bradley_terry, k: 2, reward: {reward}}}",
    )
    assert result.exit_code == 2 and "curation" in result.output
    assert not store_path.exists()
