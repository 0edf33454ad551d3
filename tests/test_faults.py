"""Faults, tested the way a hostile user would: runs killed at random moments and at every step of a
commit resume to the numbers of an uninterrupted run; a failing run is recorded honestly while its
siblings finish; SIGTERM / SIGINT stop a pooled run cleanly; bad input and tampered stores exit 2
with one line and write nothing.

Crashes use forked children (a real process death without paying for a fresh interpreter); the
signal tests drive the real `selfconsume run --workers 2` command.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from helpers import committed, curated_config, export
from typer.testing import CliRunner

import selfconsume.loop.run as loop_run
import selfconsume.store
import selfconsume.sweep.executors as executors
from selfconsume import limits
from selfconsume.api import run_experiment
from selfconsume.cli import app
from selfconsume.config import Config
from selfconsume.errors import ConfigError
from selfconsume.limits import check_memory, estimate_bytes
from selfconsume.loop.run import Resume, run_config
from selfconsume.plan import load, resolve
from selfconsume.store.sqlite import Store
from selfconsume.sweep.interrupts import Terminated
from selfconsume.sweep.wire import encode_resume

STORE_DIR = str(Path(selfconsume.store.__file__).parent)

TINY = {
    "name": "faults",
    "seed": 4,
    "replicates": 30,
    "generations": 3,
    "data": {"kind": "gaussian", "n_real": 10, "n_test": 4, "params": {"dim": 2}},
    "model": {"kind": "gaussian"},
    "scheme": {"kind": "accumulate_subsample", "lam": 0.5},
    "metrics": ["gaussian_params", "w2"],
}

CONFIG = """
name: faults-cli
seed: 3
replicates: 20
generations: 2
data: {kind: gaussian, n_real: 10, n_test: 4, params: {dim: 1, std: 1.0}}
model: {kind: gaussian}
scheme: {kind: mix, lam: 0.5}
metrics: [gaussian_params]
"""

SLOW = """
name: faults-slow
seed: 1
replicates: 200
generations: 300
data: {kind: gaussian, n_real: 20, n_test: 2}
model: {kind: gaussian}
scheme: {kind: mix, lam: 1.0}
metrics: [gaussian_params]
sweep: {seed: [1, 2]}
"""

runner = CliRunner()


def in_child(target) -> int:
    """Run target() in a forked child and return its wait status; the child never returns here."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            target()
            code = 0
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]


LONG = {**TINY, "generations": 60}


def run_tiny(path: Path, raw: dict = TINY) -> None:
    store = Store(path)
    run_config(resolve(raw), store)
    store.close()


def reference_of(folder: Path, raw: dict) -> tuple[pd.DataFrame, float]:
    """An uninterrupted run's export and how long it took."""
    path = folder / "ref.sqlite"
    start = time.perf_counter()
    run_tiny(path, raw)
    return export(path), time.perf_counter() - start


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory) -> tuple[pd.DataFrame, float]:
    return reference_of(tmp_path_factory.mktemp("tiny"), TINY)


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory) -> tuple[pd.DataFrame, float]:
    return reference_of(tmp_path_factory.mktemp("long"), LONG)


def resume_matches(path: Path, reference: pd.DataFrame, raw: dict = TINY) -> None:
    run_tiny(path, raw)
    (record,) = Store(path).runs()
    assert record.status == "done"
    pd.testing.assert_frame_equal(export(path), reference)


# --- crashes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_at_a_random_moment_resumes_to_the_same_numbers(tmp_path, long_reference, seed):
    """The kill waits for a random generation to be committed (an event, so a loaded machine
    cannot make it miss the run), then lands at a random point of the next one."""
    reference, seconds = long_reference
    rng = np.random.default_rng(seed)
    after, within = int(rng.integers(1, LONG["generations"] // 2)), rng.uniform()
    path = tmp_path / "s.sqlite"
    pid = os.fork()
    if pid == 0:
        try:
            run_tiny(path, LONG)
        finally:
            os._exit(0)
    while committed(path) < after and os.waitpid(pid, os.WNOHANG) == (0, 0):
        time.sleep(0.01)
    time.sleep(within * seconds / LONG["generations"])  # about one generation: half the run is left
    os.kill(pid, signal.SIGKILL)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == -signal.SIGKILL
    resume_matches(path, reference, LONG)


def crash_at_store_line(path: Path, n: int) -> None:
    """Run the tiny config, dying (as by SIGKILL) at the n-th line executed in the store's code."""
    seen = 0

    def local(frame, event, arg):
        nonlocal seen
        if event == "line":
            seen += 1
            if seen == n:
                os._exit(9)
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(STORE_DIR) else None

    sys.settrace(tracer)
    run_tiny(path)
    os._exit(0)


def store_lines() -> int:
    """How many lines of store code a whole tiny run executes."""
    count = 0

    def tracer(frame, event, arg):
        if not frame.f_code.co_filename.startswith(STORE_DIR):
            return None

        def local(frame, event, arg):
            nonlocal count
            count += event == "line"
            return local

        return local

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        sys.settrace(tracer)
        try:
            run_tiny(Path(tmp) / "count.sqlite")
        finally:
            sys.settrace(None)
    return count


def test_a_crash_at_every_step_of_the_store_resumes_to_the_same_numbers(tmp_path, tiny_reference):
    reference, _ = tiny_reference
    total = store_lines()
    assert total > 20
    for n in range(1, total + 1, max(1, total // 40)):  # about 40 crash points over the whole run
        path = tmp_path / f"crash{n}.sqlite"
        status = in_child(lambda path=path, n=n: crash_at_store_line(path, n))
        assert os.waitstatus_to_exitcode(status) == 9, f"line {n}: the child did not crash"
        resume_matches(path, reference)


def test_two_processes_on_one_run_end_with_the_numbers_of_one(tmp_path, tiny_reference):
    reference, _ = tiny_reference
    path = tmp_path / "shared.sqlite"
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                run_tiny(path)
                code = 0
            except ConfigError:
                code = 2  # refused: the run is held by the other process
            finally:
                os._exit(code)
        pids.append(pid)
    codes = sorted(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids)
    assert codes in ([0, 0], [0, 2])
    resume_matches(path, reference)


# --- failures inside runs --------------------------------------------------------------------------


@pytest.fixture
def curated(tmp_path, user_rewards):
    path = tmp_path / "curated.yaml"
    path.write_text(curated_config("faults-curated", "good"))
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_every_failure_is_recorded_honestly_and_siblings_finish(curated, tmp_path, workers):
    store_path = tmp_path / "f.sqlite"
    targets = "[userrewards:good, userrewards:type_error, userrewards:memory_error]"
    args = ["run", str(curated), "--store", str(store_path), "--workers", str(workers)]
    result = runner.invoke(app, [*args, "--set", f"sweep.curation.reward.params.target={targets}"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    failed_lines = [line for line in result.output.splitlines() if " failed: " in line]
    assert len(failed_lines) == 2
    store = Store(store_path)
    by_target = {r.config.curation.reward.params.target: r for r in store.runs()}
    assert by_target["userrewards:good"].status == "done"
    for name, kind in (("type_error", "TypeError"), ("memory_error", "MemoryError")):
        record = by_target[f"userrewards:{name}"]
        assert record.status == "failed" and record.error.startswith(f"{kind}: ")
        assert record.generations_done >= 1
        assert name in record.traceback and any(record.run_id in li for li in failed_lines)


def test_a_reward_of_the_wrong_shape_is_bad_input_and_leaves_no_running_row(curated, tmp_path):
    store_path = tmp_path / "w.sqlite"
    result = runner.invoke(
        app,
        [
            "run",
            str(curated),
            "--store",
            str(store_path),
            "--set",
            "curation.reward.params.target=userrewards:wrong_shape",
        ],
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "curation.reward" in errors[0]
    if store_path.exists():
        assert all(r.status == "failed" for r in Store(store_path).runs())


# --- signals ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """The slow sweep's config file and its uninterrupted export."""
    folder = tmp_path_factory.mktemp("slow")
    config = folder / "slow.yaml"
    config.write_text(SLOW)
    run_experiment(config, store=folder / "ref.sqlite")
    return config, export(folder / "ref.sqlite")


def wait_for_a_commit(store_path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if committed(store_path) >= 1:
            return
    raise AssertionError("no generation was committed in time")


AS_FROM_A_TERMINAL = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler);"
    " from selfconsume.cli import app; app()"
)
"""The CLI with Ctrl-C handled, as from a terminal: a test runner started in the background
(`make test &`) hands its children SIGINT ignored, and an ignored signal stays ignored."""


@pytest.fixture
def ctrl_c():
    """Ctrl-C raises KeyboardInterrupt in this process, whatever the test runner inherited."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_a_pooled_run_cleanly_and_it_resumes(tmp_path, slow, sig, code):
    config, reference = slow
    store_path = tmp_path / "pooled.sqlite"
    cmd = [sys.executable, "-c", AS_FROM_A_TERMINAL, "run", str(config)]
    cmd += ["--store", str(store_path), "--workers", "2"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_a_commit(store_path, proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2
        start = time.monotonic()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
        assert time.monotonic() - start < 15
    finally:
        proc.kill()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert sum("interrupted by" in line for line in stderr.splitlines()) == 1
    psutil.wait_procs(children, timeout=5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    statuses = [r.status for r in Store(store_path).runs()]
    assert "running" not in statuses and "interrupted" in statuses
    outcomes = run_experiment(config, store=store_path)
    assert [o.status for o in outcomes] == ["done", "done"]
    pd.testing.assert_frame_equal(export(store_path), reference)


def failing_clean_up(*_args, **_kwargs):
    """A run whose clean-up fails while a SIGTERM unwinds it (as numpy's zip writer once did)."""
    try:
        raise Terminated
    finally:
        raise ValueError("could not close a half-written file")


def test_a_clean_up_failing_during_an_interrupt_is_the_interrupt(tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "run_generations", failing_clean_up)
    with pytest.raises(Terminated):
        resume = encode_resume(Resume())
        executors.compute("r", resolve(TINY).model_dump_json(), resume, lambda _data: None)
    monkeypatch.setattr(loop_run, "run_generations", failing_clean_up)
    store = Store(tmp_path / "s.sqlite")
    with pytest.raises(Terminated):
        run_config(resolve(TINY), store)
    assert [(r.status, r.error) for r in store.runs()] == [("interrupted", "Terminated")]
    store.close()


class Bomb:
    """An object whose finaliser receives Ctrl-C: Python prints and drops what a __del__ raises."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at the loop's next check, inside the finaliser
            pass


def test_an_interrupt_a_finaliser_dropped_is_raised_at_the_next_poll(tmp_path, capsys, ctrl_c):
    """It used to be lost: the sweep finished, exit 0, a traceback on stderr."""
    cfgs = [resolve({**TINY, "seed": seed}) for seed in (1, 2)]
    polls = []

    def poll() -> None:
        polls.append(1)
        if len(polls) == 1:
            Bomb()  # collected at once

    with pytest.raises(KeyboardInterrupt):
        executors._run_here(cfgs, tmp_path / "s.sqlite", poll)
    assert len(polls) == 1
    assert [r.status for r in Store(tmp_path / "s.sqlite").runs()] == ["interrupted"]  # one begun
    assert "Traceback" not in capsys.readouterr().err


# --- bad input -------------------------------------------------------------------------------------


def npy_claiming_rows(path: Path, rows: int) -> None:
    """A .npy whose header claims `rows` rows of 2 float64 but which holds only 10 numbers."""
    from numpy.lib import format as fmt

    with path.open("wb") as f:
        fmt.write_array_header_1_0(f, {"shape": (rows, 2), "fortran_order": False, "descr": "<f8"})
        f.write(np.zeros(10).tobytes())


BAD_FILES = {
    "empty.npy": lambda p: p.write_bytes(b""),
    "no-rows.npy": lambda p: np.save(p, np.zeros((0, 2))),
    "huge-header.npy": lambda p: npy_claiming_rows(p, 10**10),
    "complex.npy": lambda p: np.save(p, np.ones((5, 2)) * (1 + 2j)),
    "objects.npy": lambda p: np.save(p, np.array([[1.0, None]] * 3, dtype=object)),
    "strings.npy": lambda p: np.save(p, np.array([["a", "b"]] * 3)),
    "nan.npy": lambda p: np.save(p, np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]])),
    "flat.npy": lambda p: np.save(p, np.arange(6.0)),
    "complex.csv": lambda p: p.write_text("1+2j,3\n4,5\n6,7\n"),
    "empty.csv": lambda p: p.write_text(""),
}


def invoke_run(config: Path, store_path: Path, *sets: str):
    args = ["run", str(config), "--store", str(store_path)]
    for item in sets:
        args += ["--set", item]
    return runner.invoke(app, args)


def assert_bad_input(result, needle: str, store_path: Path) -> None:
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and needle in lines[0], result.output
    assert not store_path.exists()


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_data_file_is_bad_input(tmp_path, name):
    data = tmp_path / name
    BAD_FILES[name](data)
    config = tmp_path / "exp.yaml"
    config.write_text(CONFIG)
    store_path = tmp_path / "s.sqlite"
    result = invoke_run(
        config, store_path, "data.kind=file", f"data.params={{path: {data}}}", "data.n_real=2"
    )
    assert_bad_input(result, name, store_path)


def test_a_file_too_big_for_memory_is_refused_from_its_header(tmp_path, monkeypatch):
    from selfconsume.data import files

    data = tmp_path / "ok.npy"
    np.save(data, np.ones((100, 3)))
    monkeypatch.setattr(files, "machine_bytes", lambda: 1000)
    with pytest.raises(ConfigError, match="ok.npy: needs ~2.4e-06 GB as float64"):
        files.load_points(str(data))


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["scheme.lam=.inf"], "scheme.params.lam"),
        (["scheme.lam=1e308"], "scheme.params.lam"),
        (["data.params.std=1e308"], "data.params.std"),
        (["data.params.std=.nan"], "data.params.std"),
        (["data.params.std=.inf"], "data.params.std"),
        (["data.params.std=-1"], "data.params.std"),
        (["data.params.dim=1000000"], "data.params.dim"),
        (["replicates=1000000000"], "replicates"),
        (["metrics=[mass]"], "metrics"),
    ],
)
def test_bad_values_are_bad_input_and_write_nothing(tmp_path, sets, needle):
    config = tmp_path / "exp.yaml"
    config.write_text(CONFIG)
    with pytest.raises(ConfigError):  # refused before anything is allocated
        load(str(config), sets)
    store_path = tmp_path / "s.sqlite"
    assert_bad_input(invoke_run(config, store_path, *sets), needle, store_path)


def test_a_reward_of_the_wrong_shape_writes_nothing(curated, tmp_path):
    store_path = tmp_path / "w.sqlite"
    result = invoke_run(
        curated, store_path, "curation.reward.params.target=userrewards:wrong_shape"
    )
    assert_bad_input(result, "curation.reward", store_path)


def test_a_yaml_alias_bomb_is_bad_input(tmp_path):
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        bomb.append(f"{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
    config = tmp_path / "bomb.yaml"
    config.write_text(CONFIG + "quick:\n  description:\n" + "\n".join(f"    {b}" for b in bomb))
    store_path = tmp_path / "s.sqlite"
    result = invoke_run(config, store_path)
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "quick" in lines[0] or config.name in lines[0]
    assert not store_path.exists()


# --- tampered stores -------------------------------------------------------------------------------


TAMPER = {
    "garbage": lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
    "truncated": lambda p: (run_tiny(p), p.write_bytes(p.read_bytes()[:1500])),
    "directory": lambda p: p.mkdir(),
    "read-only": lambda p: (run_tiny(p), p.chmod(0o444)),
}


@pytest.mark.parametrize("command", ["run", "report"])
@pytest.mark.parametrize("tamper", sorted(TAMPER))
def test_a_tampered_store_is_bad_input_and_stays_as_it_was(tmp_path, tamper, command):
    if tamper == "read-only" and os.geteuid() == 0:
        pytest.skip("root writes to read-only files")
    store_path = tmp_path / "t.sqlite"
    TAMPER[tamper](store_path)
    for suffix in ("-wal", "-shm"):
        Path(str(store_path) + suffix).unlink(missing_ok=True)
    before = store_path.read_bytes() if store_path.is_file() else None
    config = tmp_path / "exp.yaml"
    config.write_text(CONFIG)
    args = ["run", str(config)] if command == "run" else ["report", "--out", str(tmp_path / "r")]
    result = runner.invoke(app, [*args, "--store", str(store_path)])
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1 and str(store_path) in lines[0], result.output
    assert (store_path.read_bytes() if store_path.is_file() else None) == before


# --- memory bounds ---------------------------------------------------------------------------------


MACHINE = 16 * 2**30
"""The machine's memory these tests assume, whatever this one has."""


def unvalidated(**changes) -> Config:
    """A config checked by the schema only (building its source could itself allocate too much)."""
    raw = {**TINY, **changes}
    return Config.model_validate(raw)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"replicates": 10**9}, "replicates"),
        ({"data": {**TINY["data"], "params": {"dim": 10**6}}}, "data.params.dim"),
        ({"data": {**TINY["data"], "n_real": 10**10}}, "data.n_real"),
        ({"scheme": {"kind": "mix", "lam": 1e308}}, "scheme.params.lam"),
        ({"generations": 10**9, "scheme": {"kind": "accumulate", "lam": 1.0}}, "generations"),
    ],
)
def test_a_run_too_big_for_memory_is_refused_naming_its_key(changes, key):
    cfg = unvalidated(**changes)
    with pytest.raises(
        ConfigError, match=rf"^{key}: this run needs .* more than the .* this machine has"
    ):
        check_memory(cfg, MACHINE)
    check_memory(unvalidated(), MACHINE)  # the tiny run fits


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"batch_size": 10**8}, "model.params.batch_size"),
        ({"channels": [10**5, 10**5]}, "model.params.channels"),
    ],
)
def test_a_unet_too_big_for_memory_is_refused_naming_its_key(params, key):
    unet = {"kind": "ddpm", "params": {"net": "unet", "channels": [16, 32], **params}}
    digits = {"kind": "digits", "n_real": 100, "n_test": 100}
    with pytest.raises(ConfigError, match=rf"^{key}: this run needs"):
        check_memory(unvalidated(model=unet, data=digits), MACHINE)
    check_memory(
        unvalidated(model={**unet, "params": {"net": "unet", "channels": [16, 32]}}, data=digits),
        MACHINE,
    )


def test_the_memory_estimate_bounds_a_real_runs_peak(monkeypatch):
    monkeypatch.setattr(limits, "machine_bytes", lambda: MACHINE)  # resolving checks memory
    cfg = resolve(
        {
            **TINY,
            "replicates": 1000,
            "generations": 2,
            "data": {"kind": "gaussian", "n_real": 2000, "n_test": 500, "params": {"dim": 5}},
            "scheme": {"kind": "mix", "lam": 1.0},
        }
    )
    read, write = os.pipe()

    def measure() -> None:
        import tempfile

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with tempfile.TemporaryDirectory() as tmp:
            run_config(cfg, Store(Path(tmp) / "m.sqlite"))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        os.write(write, str((after - before) * 1024).encode())

    assert in_child(measure) == 0
    os.close(write)
    peak = int(os.read(read, 64))
    os.close(read)
    assert peak > 100e6  # the run really allocated its arrays
    assert peak <= estimate_bytes(cfg) <= 5 * peak
