"""Export and results: the long layout with swept keys in every format, the compact frame, the
xarray Dataset, the summary against numpy, and bad requests refused with one line (exit 2)."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pytest
from helpers import metric, run_raw
from scipy import stats
from typer.testing import CliRunner

from selfconsume import api
from selfconsume.cli import app
from selfconsume.errors import ConfigError
from selfconsume.store.export import export
from selfconsume.store.sqlite import Store

LONG = ["run_id", "name", "replicate", "generation", "metric", "value"]
MIXED = {
    "name": "mixed",
    "seed": 2,
    "replicates": 30,
    "generations": 3,
    "data": {"kind": "gaussian", "n_real": 8, "n_test": 2},
    "model": {"kind": "gaussian"},
    "scheme": {"kind": "mix", "lam": 0.5},
    "metrics": ["gaussian_params"],
    "sweep": {"scheme.lam": [0.0, 0.5]},
}
CURATED = {
    "name": "curated",
    "replicates": 7,
    "generations": 2,
    "data": {"kind": "discrete", "n_real": 40, "params": {"probs": [0.5, 0.3, 0.2]}},
    "model": {"kind": "discrete"},
    "curation": {
        "kind": "bradley_terry",
        "reward": {"kind": "table", "params": {"values": [0, 1, 2]}},
    },
    "metrics": ["mass"],
}


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A store with a two-arm Gaussian sweep (30 replicates) and a curated run (7 replicates)."""
    path = tmp_path_factory.mktemp("export") / "store.sqlite"
    store, mixed = run_raw(MIXED, path)
    _, curated = run_raw(CURATED, path)
    return path, store, mixed + curated


def expected_values(store: Store, run_id: str) -> dict[str, np.ndarray]:
    names = {m for _, m, _ in store.metric_arrays(run_id)}
    return {m: metric(store, run_id, m) for m in names}


def test_results_is_compact_and_holds_every_value(filled):
    path, store, run_ids = filled
    frame = api.results(path)
    # the long layout, then the keys that differ within an experiment (lam, and what it sets)
    assert list(frame.columns[:6]) == LONG and frame.columns[6] == "scheme.params.lam"
    for column in ("run_id", "name", "metric", "scheme.params.lam"):
        assert isinstance(frame[column].dtype, pd.CategoricalDtype)
    assert frame["value"].dtype == np.float64 and frame["replicate"].dtype == np.int32
    for run_id in run_ids:
        for name, values in expected_values(store, run_id).items():
            rows = frame[(frame.run_id == run_id) & (frame.metric == name)]
            rows = rows.sort_values(["generation", "replicate"])
            generations, replicates = values.shape
            np.testing.assert_array_equal(rows["value"].to_numpy().reshape(values.shape), values)
            assert rows["replicate"].max() == replicates - 1
            assert rows["generation"].max() == generations - 1
    lam = frame.groupby("run_id", observed=True)["scheme.params.lam"].first()
    assert sorted(lam.dropna().astype(float)) == [0.0, 0.5]
    assert frame.loc[frame.name == "curated", "scheme.params.lam"].isna().all()
    only = api.results(path, name="curated")
    assert set(only["name"]) == {"curated"} and len(only) == (frame.name == "curated").sum()


def test_results_as_xarray_is_run_by_replicate_by_generation(filled):
    path, store, run_ids = filled
    ds = api.results(path, xarray=True)
    assert ds["std"].dims == ("run", "replicate", "generation")
    assert list(ds["run"].values) == run_ids and ds.sizes["replicate"] == 30
    for i, run_id in enumerate(run_ids):
        for name, values in expected_values(store, run_id).items():
            block = ds[name].values[i, : values.shape[1], : values.shape[0]]
            np.testing.assert_array_equal(block, values.T)
    assert np.isnan(ds["mass_0"].values[2, 7:]).all()  # the curated run has 7 replicates
    assert list(ds["scheme.params.lam"].values[:2]) == [0.0, 0.5]
    assert set(api.results(path, name="curated", xarray=True).data_vars) == {
        "mass_0",
        "mass_1",
        "mass_2",
    }


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "csv", "json"])
def test_every_format_round_trips_the_long_layout(filled, tmp_path, fmt):
    path, _, _ = filled
    out = tmp_path / f"values.{fmt}"
    export(path, fmt, out)
    frame = api.results(path)
    if fmt == "parquet":
        read = pd.read_parquet(out)
    elif fmt == "arrow":
        read = feather.read_table(out).to_pandas()
    elif fmt == "csv":
        read = pd.read_csv(out)
        assert out.read_text().startswith(",".join(LONG) + ",scheme.params.lam")
    else:
        read = pd.DataFrame(json.loads(out.read_text()))
    assert list(read.columns) == list(frame.columns) and len(read) == len(frame)
    np.testing.assert_array_equal(read["value"].to_numpy(float), frame["value"].to_numpy())
    for column in ("run_id", "metric", "replicate", "generation"):
        assert (read[column].astype(str).to_numpy() == frame[column].astype(str).to_numpy()).all()
    np.testing.assert_array_equal(
        read["scheme.params.lam"].to_numpy(float),
        frame["scheme.params.lam"].astype(float).to_numpy(),
    )


def test_summary_matches_numpy(filled, tmp_path):
    path, store, run_ids = filled
    summary = api.summary(path)
    for run_id in run_ids:
        for name, values in expected_values(store, run_id).items():
            rows = summary[(summary.run_id == run_id) & (summary.metric == name)]
            rows = rows.sort_values("generation")
            n = values.shape[1]
            mean, sd = values.mean(1), values.std(1, ddof=1)
            half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
            assert (rows["n"] == n).all()
            np.testing.assert_allclose(rows["mean"], mean, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(rows["sd"], sd, rtol=1e-9, atol=1e-15)
            np.testing.assert_allclose(rows["se"], sd / np.sqrt(n), rtol=1e-9, atol=1e-15)
            np.testing.assert_allclose(rows["ci_low"], mean - half, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(rows["ci_high"], mean + half, rtol=1e-9, atol=1e-12)
    out = tmp_path / "summary.csv"
    result = CliRunner().invoke(
        app, ["export", "--store", str(path), "--summary", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    read = pd.read_csv(out)
    assert len(read) == len(summary) and "scheme.params.lam" in read.columns
    np.testing.assert_allclose(read["mean"], summary["mean"])


def one_line_exit_2(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


def test_bad_export_requests_exit_2_with_one_line(filled, tmp_path):
    path, _, _ = filled
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["export", *args])

    assert "--format" in one_line_exit_2(invoke("--store", str(path), "--format", "xml"))
    missing = tmp_path / "missing.sqlite"
    assert "no such store" in one_line_exit_2(invoke("--store", str(missing)))
    assert not missing.exists()
    with pytest.raises(ConfigError, match="no such store"):
        api.results(missing)
    assert not missing.exists()
    empty = tmp_path / "empty.sqlite"
    Store(empty).close()
    assert "no runs" in one_line_exit_2(invoke("--store", str(empty)))
    nowhere = tmp_path / "no" / "such" / "folder.parquet"
    assert "--out" in one_line_exit_2(invoke("--store", str(path), "--out", str(nowhere)))
    assert "--out" in one_line_exit_2(invoke("--store", str(path), "--out", str(path)))
    assert "--out" in one_line_exit_2(invoke("--store", str(path), "--out", str(tmp_path)))


def test_binary_formats_refuse_a_terminal_but_not_a_pipe(filled):
    path, _, _ = filled
    code = "from selfconsume.cli import app; app()"
    args = [sys.executable, "-c", code, "export", "--store", str(path), "--format", "parquet"]
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(args, stdout=follower, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "--out" in lines[0], lines
    piped = subprocess.run(args, capture_output=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert len(pd.read_parquet(io.BytesIO(piped.stdout))) == len(api.results(path))
