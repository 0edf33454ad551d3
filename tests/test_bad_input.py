"""Bad input at the edges exits 2 with one line naming the key or file and writes nothing: special
files, odd encodings, huge or deep YAML, bounds on labels and ranges, a reward failing its probe,
an unreachable scheduler. A user sys.exit inside a run fails that run only."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from selfconsume.cli import app

BASE = {
    "name": "edge",
    "seed": 0,
    "replicates": 2,
    "generations": 1,
    "data": {"kind": "gaussian", "n_real": 10, "n_test": 5, "params": {"dim": 1}},
    "model": {"kind": "gaussian"},
    "metrics": ["w2"],
}
SHOWN = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
"""Warning categories Python hides by default (the others reach the user's terminal)."""


def config_file(tmp_path, **blocks) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({**BASE, **blocks}))
    return str(path)


def assert_refused(tmp_path, args: list[str], needle: str) -> str:
    """Run the CLI in-process; assert exit 2, one line (warnings count) naming `needle`, and no
    store; return the line."""
    store = tmp_path / "runs" / "store.sqlite"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, [*args, "--store", str(store)])
    shown = [w for w in caught if not issubclass(w.category, SHOWN)]
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and not shown, (lines, [str(w.message) for w in shown])
    assert needle in lines[0], lines[0]
    assert not store.parent.exists()
    return lines[0]


def images(tmp_path, x: np.ndarray, y: np.ndarray | None = None) -> str:
    path = tmp_path / "images.npz"
    np.savez(path, x=x, **({} if y is None else {"y": y}))
    return str(path)


IMAGE_DATA = {"kind": "image_file", "n_real": 10, "n_test": 5}


# --- item 9: special files ----------------------------------------------------------------------


def _cli(args: list[str], cwd, timeout: float = 60) -> subprocess.CompletedProcess:
    """The CLI in a subprocess with 2 GB of address space (a reader that eats memory fails fast)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    code = "from selfconsume.cli import app; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("file", "fifo.csv"),
        ("file", "fifo.npy"),
        ("image_file", "fifo.npz"),
        ("file", "/dev/zero"),
        ("file", "zero.csv"),
        ("file", "zero.npy"),
    ],
)
def test_a_fifo_or_a_device_as_data_path_exits_2_at_once(tmp_path, kind, name):
    """It used to block forever on a FIFO (opened before load_points checked it) and to read
    /dev/zero until MemoryError."""
    for fifo in ("fifo.csv", "fifo.npy", "fifo.npz"):
        os.mkfifo(tmp_path / fifo)
    for link in ("zero.csv", "zero.npy"):
        (tmp_path / link).symlink_to("/dev/zero")
    model = {"kind": "kde"} if kind == "image_file" else {"kind": "gaussian"}
    data = {"kind": kind, "n_real": 10, "n_test": 5, "params": {"path": name}}
    config = config_file(tmp_path, data=data, model=model)
    done = _cli(["run", config, "--store", "runs/s.sqlite"], tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert f"data.params.path: {name}: not a regular file" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_only_regular_files_open_and_their_size_is_bounded_before_reading(tmp_path):
    from selfconsume.regular import UnreadableFile, open_regular, read_regular

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "small").write_bytes(b"12345")
    with pytest.raises(UnreadableFile, match="a FIFO"):
        open_regular(tmp_path / "fifo")
    with pytest.raises(UnreadableFile, match="a character device"):
        open_regular("/dev/zero")
    with pytest.raises(UnreadableFile, match="a folder"):
        open_regular(tmp_path)
    with pytest.raises(UnreadableFile, match="file not found"):
        open_regular(tmp_path / "missing")
    with pytest.raises(UnreadableFile, match="5 bytes, more than the 4 allowed"):
        read_regular(tmp_path / "small", 4)
    assert read_regular(tmp_path / "small", 5) == b"12345"


def test_a_header_only_csv_is_one_line_without_numpy_warnings(tmp_path):
    (tmp_path / "points.csv").write_text("a,b\n")
    data = {
        "kind": "file",
        "n_real": 10,
        "n_test": 5,
        "params": {"path": str(tmp_path / "points.csv")},
    }
    assert_refused(tmp_path, ["run", config_file(tmp_path, data=data)], "has 0 row(s)")


# --- item 11: configs and overrides ------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\xff\xfe\x00\x01binary", "not UTF-8 text (byte 0xff at offset 0)"),
        ("name: café\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 9)"),
        (yaml.safe_dump(BASE).encode("utf-16"), "not UTF-8 text"),
        (("name: t\nx: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "invalid YAML"),
        (("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 200))).encode(), "nested more than"),
        (("name: t\nseed: " + "9" * 5000 + "\n").encode(), "a number too long"),
        (("name: t\nx: [" + ",".join(["0"] * 100_001) + "]\n").encode(), "more than 100000 values"),
        (b"name: t\nx: [" + b"0.0000005," * 2_000_000 + b"0]\n", "more than the 1048576"),
    ],
    ids=["binary", "latin-1", "utf-16", "deep-flow", "deep-block", "long-int", "nodes", "2M-probs"],
)
def test_unreadable_configs_exit_2_with_one_line_naming_the_file(tmp_path, content, needle):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    line = assert_refused(tmp_path, ["run", str(path)], needle)
    assert str(path) in line


def test_two_million_probs_are_refused_in_a_second(tmp_path):
    """They took 99 s to parse (pure-Python YAML) before being refused."""
    import time

    probs = ",".join(["0.0000005"] * 2_000_000)
    path = tmp_path / "probs.yaml"
    path.write_text(
        f"name: t\ndata: {{kind: discrete, n_real: 10, params: {{probs: [{probs}]}}}}\n"
        "model: {kind: discrete}\n"
    )
    start = time.process_time()
    assert_refused(tmp_path, ["run", str(path)], "more than the 1048576")
    assert time.process_time() - start < 1.0


def test_a_long_set_value_is_refused_by_its_size_not_parsed_for_minutes(tmp_path):
    from selfconsume.errors import ConfigError
    from selfconsume.plan import load

    probs = "[" + ",".join(["0.000005"] * 200_000) + "]"
    with pytest.raises(ConfigError, match=r"--set data.params.probs: .*more than 100000 values"):
        load(config_file(tmp_path), [f"data.params.probs={probs}"])


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("sweep=5", "sweep"),
        ("sweep.seed=5", "sweep.seed"),
        ("sweep=[1]", "sweep"),
        ("data.params.dim=" + "9" * 5000, "--set data.params.dim"),
        ("data.params.dim=" + "[" * 100 + "]" * 100, "nested more than"),
        ("data={kind: eight_gaussians, n_real: 10, params: {n_modes: 1000000000}}", "n_modes"),
        ("data={kind: checkerboard, n_real: 10, params: {n_cells: 1000000}}", "n_cells"),
        ("model={kind: gmm, params: {n_components: 20}}", "model.params.n_components"),
        ("name=\x1b[2J\nx", "name"),
    ],
)
def test_bad_overrides_exit_2_with_one_line(tmp_path, override, needle):
    line = assert_refused(tmp_path, ["run", config_file(tmp_path), "--set", override], needle)
    assert "\x1b" not in line


def test_sweep_5_then_a_swept_key_is_one_line(tmp_path):
    args = ["run", config_file(tmp_path), "--set", "sweep=5", "--set", "sweep.seed=[1, 2]"]
    assert_refused(tmp_path, args, "sweep")


@pytest.mark.parametrize("store", ["", ".", "..", "exp.yaml/store.sqlite"])
def test_a_store_path_that_cannot_be_a_file_exits_2_and_creates_nothing(
    tmp_path, store, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    config = config_file(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(app, ["run", config, "--store", store])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "--store" in lines[0], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_unreachable_scheduler_exits_2_before_the_store_exists(tmp_path, monkeypatch):
    from selfconsume.sweep import executors

    monkeypatch.setattr(executors, "CONNECT_SECONDS", 0.5)
    args = ["run", config_file(tmp_path), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"]
    assert_refused(tmp_path, args, "--scheduler tcp://127.0.0.1:1: cannot connect")


# --- item 11: data bounds ----------------------------------------------------------------------


@pytest.mark.parametrize("label", [1e9, 1e300])
def test_image_labels_beyond_the_class_bound_are_one_line(tmp_path, label):
    """1e9 made the classifier ask for 512 GB; 1e300 was cast to INT64_MIN and ran to exit 0."""
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3 * 1.0
    y[7] = label
    path = images(tmp_path, rng.random((60, 4, 4)), y)
    data = {**IMAGE_DATA, "params": {"path": path}}
    line = assert_refused(
        tmp_path, ["run", config_file(tmp_path, data=data, model={"kind": "kde"})], path
    )
    assert "labels must be below 1000" in line


def test_a_value_range_whose_width_overflows_is_refused(tmp_path):
    path = images(tmp_path, np.random.default_rng(0).random((60, 4, 4)))
    data = {**IMAGE_DATA, "params": {"path": path, "value_range": [-1e308, 1e308]}}
    args = ["run", config_file(tmp_path, data=data, model={"kind": "kde"})]
    assert_refused(tmp_path, args, "data.params.value_range: high - low overflows")


def test_pixels_whose_own_range_overflows_need_a_value_range(tmp_path):
    x = np.random.default_rng(0).random((60, 4, 4))
    x[0, 0, 0], x[0, 0, 1] = -1e308, 1e308
    data = {**IMAGE_DATA, "params": {"path": images(tmp_path, x)}}
    args = ["run", config_file(tmp_path, data=data, model={"kind": "kde"})]
    assert_refused(tmp_path, args, "too wide to scale; set data.params.value_range")


# --- item 4: a reward failing its probe; item 11: sys.exit in a run ---------------------------

REWARDS = textwrap.dedent(
    """
    import sys
    import numpy as np

    def raises(x):
        raise TypeError("cannot score these")

    def exits(x):
        sys.exit(3)

    def exits_later(x):
        if len(x) > 4:  # the plan's probe scores 4 real samples: this passes it
            sys.exit(3)
        return np.linalg.norm(x, axis=-1)

    def norm(x):
        return np.linalg.norm(x, axis=-1)
    """
)


@pytest.fixture
def rewards(tmp_path, monkeypatch):
    """A user module of rewards, importable as `user_rewards`."""
    (tmp_path / "user_rewards.py").write_text(REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_rewards", raising=False)
    return "user_rewards"


def curated(target: str) -> dict:
    return {
        "kind": "bradley_terry",
        "k": 2,
        "reward": {"kind": "callable", "params": {"target": target}},
    }


@pytest.mark.parametrize(
    ("function", "needle"),
    [("raises", "raised TypeError: cannot score these"), ("exits", "raised SystemExit: 3")],
)
def test_a_reward_failing_its_probe_is_bad_input_naming_the_callable(
    tmp_path, rewards, function, needle
):
    """It stopped the sweep with exit 1 and a traceback in a temporary log (or exit 3, silently)."""
    config = config_file(tmp_path, curation=curated(f"{rewards}:{function}"))
    line = assert_refused(tmp_path, ["run", config], needle)
    assert line.startswith(f"error: curation.reward.params.target: {rewards}:{function} ")


def test_a_reward_calling_sys_exit_in_a_run_fails_that_run_and_its_sibling_runs(tmp_path, rewards):
    """In-process (one worker) the SystemExit ended the CLI with exit 3: no message, no sibling."""
    import sqlite3

    targets = [f"{rewards}:exits_later", f"{rewards}:norm"]
    config = config_file(
        tmp_path,
        curation=curated(targets[0]),
        sweep={"curation.reward.params.target": targets},
    )
    store = tmp_path / "store.sqlite"
    result = CliRunner().invoke(app, ["run", config, "--store", str(store)])
    assert result.exit_code == 1, result.output
    rows = sqlite3.connect(store).execute("SELECT config_json, status, error, traceback FROM runs")
    by_target = {}
    for config_json, status, error, trace in rows:
        target = yaml.safe_load(config_json)["curation"]["reward"]["params"]["target"]
        by_target[target] = (status, error, trace)
    assert by_target[targets[1]][:2] == ("done", None)
    status, error, trace = by_target[targets[0]]
    assert (status, error) == ("failed", "SystemExit: 3") and "sys.exit(3)" in trace
    assert "failed: SystemExit: 3" in result.stderr
