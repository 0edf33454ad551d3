"""A store someone hands over is untrusted input: `runs`, `export` and `report` read it without
writing a byte, and every crafted field gives one line naming the run and the field (never a
traceback or a hang), while the report still shows the runs that can be read."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3

import numpy as np
import pytest
from helpers import run_raw
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.plan import typed
from selfconsume.store.records import stored_json
from selfconsume.store.sqlite import Store

RAW = {
    "name": "crafted",
    "replicates": 4,
    "generations": 2,
    "data": {"kind": "gaussian", "n_real": 8, "n_test": 6, "params": {"dim": 2}},
    "model": {"kind": "gaussian"},
    "metrics": ["gaussian_params"],
    "sweep": {"seed": [1, 2]},
}
runner = CliRunner()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A store of two runs of one experiment, each with metrics and 2-D sample snapshots."""
    folder = tmp_path_factory.mktemp("pristine")
    store, ids = run_raw(RAW, folder / "s.sqlite")
    store.close()
    return folder, ids


@pytest.fixture
def crafted(pristine, tmp_path):
    """A copy of the pristine store, its path, its run ids and an SQL hook to craft it."""
    folder, ids = pristine
    shutil.copytree(folder, tmp_path / "store")
    path = tmp_path / "store" / "s.sqlite"

    def sql(statement: str, *args: object) -> None:
        db = sqlite3.connect(path)
        db.execute(statement, args)
        db.commit()
        db.close()

    return path, ids, sql


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def assert_reports_the_other_run(result, out, bad: str, good: str, field: str) -> None:
    """The report exits 0, says in one line which run it left out and why, and shows the other."""
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and bad in skipped[0] and field in skipped[0], result.stderr
    page = (out / "index.html").read_text()
    assert good in page and bad not in page


@pytest.mark.parametrize(
    ("config_json", "field"),
    [
        ("{not json", "config_json"),
        ("[1, 2]", "config_json"),
        ('{"name": "crafted"}', "data"),
        ('{"name": "crafted", "nested": ' + "[" * 100_000 + "]" * 100_000 + "}", "config_json"),
    ],
    ids=["not-json", "a-list", "lacking-keys", "nested"],
)
def test_a_config_that_is_not_a_config_gives_one_line(crafted, tmp_path, config_json, field):
    path, (bad, good), sql = crafted
    sql("UPDATE runs SET config_json=? WHERE run_id=?", config_json, bad)
    listed = invoke("runs", "--store", path)
    assert listed.exit_code == 0 and bad in listed.stdout and good in listed.stdout
    line = one_line(exported := invoke("export", "--store", path))
    assert exported.exit_code == 2 and bad in line and field in line and not exported.stdout
    result = invoke("report", "--store", path, "--out", tmp_path / "report")
    assert_reports_the_other_run(result, tmp_path / "report", bad, good, field)


def future(cfg: dict) -> None:
    cfg["model"]["params"]["new_knob"] = 3  # a key a later version may add


def odd_discrete(cfg: dict) -> None:
    cfg["data"] = {"kind": "discrete", "n_real": 8, "n_test": 6, "params": {"probs": "abc"}}


def unknown_kind(cfg: dict) -> None:
    cfg["scheme"]["kind"] = "teleport"


@pytest.mark.parametrize(
    ("spoil", "field"),
    [
        (future, "model.params.new_knob"),
        (odd_discrete, "data.params.probs"),
        (unknown_kind, "scheme.kind"),
    ],
)
def test_a_config_that_no_longer_resolves_leaves_the_other_runs_reported(
    crafted, tmp_path, spoil, field
):
    path, (bad, good), sql = crafted
    cfg = stored_json(typed({k: v for k, v in RAW.items() if k != "sweep"}))
    spoil(cfg)
    sql("UPDATE runs SET config_json=? WHERE run_id=?", json.dumps(cfg), bad)
    result = invoke("report", "--store", path, "--out", tmp_path / "report")
    assert_reports_the_other_run(result, tmp_path / "report", bad, good, field)
    line = one_line(exported := invoke("export", "--store", path))
    assert exported.exit_code == 2 and bad in line and field in line


@pytest.mark.parametrize("value", [b"\0" * 13, "text", 7], ids=["13-bytes", "text", "integer"])
def test_a_metric_blob_that_is_not_float64_values_gives_one_line(crafted, tmp_path, value):
    path, (bad, good), sql = crafted
    sql(
        "UPDATE metrics SET value=? WHERE run_id=? AND generation=1 AND metric='cov_logdet'",
        value,
        bad,
    )
    line = one_line(exported := invoke("export", "--store", path))
    assert exported.exit_code == 2 and not exported.stdout
    assert bad in line and "generation 1" in line and "metric cov_logdet" in line
    result = invoke("report", "--store", path, "--out", tmp_path / "report")
    assert_reports_the_other_run(result, tmp_path / "report", bad, good, "metric cov_logdet")


def test_metric_arrays_of_unequal_length_leave_the_other_runs_reported(crafted, tmp_path):
    path, (bad, good), sql = crafted
    short = np.zeros(3).tobytes()
    sql(
        "UPDATE metrics SET value=? WHERE run_id=? AND generation=1 AND metric='cov_logdet'",
        short,
        bad,
    )
    result = invoke("report", "--store", path, "--out", tmp_path / "report")
    assert_reports_the_other_run(result, tmp_path / "report", bad, good, "metric cov_logdet")


@pytest.mark.parametrize(
    "shape", [(200_000, 1_000_000, 2), (1, 1)], ids=["4e11-elements", "not-3-d"]
)
def test_a_sample_file_whose_header_lies_is_refused_before_loading(crafted, tmp_path, shape):
    path, (bad, good), sql = crafted
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % str(shape).encode()
    data = b"\x93NUMPY\x01\x00" + (len(header) + 1).to_bytes(2, "little") + header + b"\n"
    data += np.zeros(2).tobytes()
    (folder := path.with_name("s_artifacts") / bad).mkdir(exist_ok=True)
    (folder / "crafted.npy").write_bytes(data)
    sql(
        "UPDATE artifacts SET path=?, sha256=? WHERE run_id=? AND kind='samples' AND generation=0",
        f"{bad}/crafted.npy",
        hashlib.sha256(data).hexdigest(),
        bad,
    )
    result = invoke("report", "--store", path, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("skipped:")]
    assert bad in line and "crafted.npy" in line and "shape" in line


def test_readers_write_nothing_to_an_old_store(crafted, tmp_path):
    """A version-0 store in rollback-journal mode stays byte for byte what it was: no migration,
    no switch to WAL, no checkpoint folded in."""
    path, (bad, good), sql = crafted
    sql("PRAGMA journal_mode=DELETE")
    sql("PRAGMA user_version=0")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    assert invoke("runs", "--store", path).exit_code == 0
    assert invoke("runs", "--store", path, "--traceback", bad).exit_code == 0
    assert invoke("export", "--store", path).exit_code == 0
    assert invoke("report", "--store", path, "--out", tmp_path / "report").exit_code == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert not path.with_name("s.sqlite-wal").exists()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (0,)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    db.close()


NASTY = "\x1b]0;owned\x07\x1b[2J[link=file:///etc/passwd]click[/link]\u202e"


def test_run_names_and_errors_reach_the_terminal_inert(crafted):
    path, (bad, _), sql = crafted
    sql("UPDATE runs SET name=?, error=?, traceback=? WHERE run_id=?", NASTY, NASTY, NASTY, bad)
    result = invoke("runs", "--store", path)
    assert result.exit_code == 0, result.output
    for control in ("\x1b", "\x07", "\u202e"):
        assert control not in result.output
    assert result.output.count("[link=file:///etc/passwd]") == 2  # name and error, as text
    shown = invoke("runs", "--store", path, "--traceback", bad)
    assert "\x1b" not in shown.output and "[link=file:///etc/passwd]" in shown.output


def test_report_never_opens_the_image_file_a_store_names(tmp_path, monkeypatch):
    """A store's run on `image_file` data: the grid is drawn from the snapshots alone."""
    from selfconsume.data import images

    opened = []
    monkeypatch.setattr(images, "load_images", lambda params: opened.append(params.path))
    data = {"kind": "image_file", "n_real": 8, "n_test": 8, "params": {"path": "/etc/x.npz"}}
    cfg = typed({"name": "images", "data": data, "model": {"kind": "gaussian"}})
    store = Store(tmp_path / "s.sqlite")
    store.begin_run(cfg)
    for generation in range(2):
        metrics = {"std": np.ones(1)}
        snapshot = np.zeros((1, 16, 3 * 8 * 8))
        store.commit_generation(cfg.run_id, generation, metrics, {"w": np.ones(1)}, snapshot)
    store.finish_run(cfg.run_id, "done")
    store.close()
    result = invoke("report", "--store", tmp_path / "s.sqlite", "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert opened == []
    assert (tmp_path / "report" / "images-images.png").is_file()


def test_the_reader_checks_artifact_hashes_as_the_writer_does(crafted, tmp_path):
    path, (bad, _), _ = crafted
    db = sqlite3.connect(path)
    (stored,) = db.execute(
        "SELECT path FROM artifacts WHERE run_id=? AND kind='samples' AND generation=0", (bad,)
    ).fetchone()
    db.close()
    sample = path.with_name("s_artifacts") / stored
    data = bytearray(sample.read_bytes())
    data[-1] ^= 0x01  # one flipped bit in a value: the file still loads
    sample.write_bytes(bytes(data))
    result = invoke("report", "--store", path, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("skipped:")]
    assert bad in line and stored in line and "checksum mismatch" in line
