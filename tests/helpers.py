"""Helpers for tests: the talk's curated discrete toy as a config, run a config mapping into a
store, a run record of a config, a run interrupted after a generation, a metric read as a (G, R)
array; and for the fault and cluster tests, the real command as a subprocess, a store's
canonical export, its committed generations read from outside, and a user's reward module."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import selfconsume
from selfconsume.config import Config, expand_sweep
from selfconsume.loop.run import run_config
from selfconsume.plan import resolve, typed
from selfconsume.store.export import long_frame
from selfconsume.store.reader import StoreReader
from selfconsume.store.records import RunRecord
from selfconsume.store.sqlite import Store

TOY_PROBS = [0.4, 0.3, 0.2, 0.1]
"""p_data of the talk's discrete toy; its reward is r(i) = i."""


def curated_discrete(
    name: str,
    replicates: int,
    generations: int,
    n_real: int,
    population: bool = False,
    metrics: tuple[str, ...] = ("mass",),
    **curation: Any,
) -> dict[str, Any]:
    """A fully synthetic run on the discrete toy curated by Bradley-Terry with reward r(i) = i
    (`curation` sets k and beta; defaults 4 and 1)."""
    reward = {"kind": "table", "params": {"values": [0, 1, 2, 3]}}
    return {
        "name": name,
        "replicates": replicates,
        "generations": generations,
        "data": {"kind": "discrete", "n_real": n_real, "params": {"probs": TOY_PROBS}},
        "model": {"kind": "discrete", "population": population},
        "scheme": {"kind": "replace"},
        "curation": {"kind": "bradley_terry", "reward": reward, **curation},
        "metrics": list(metrics),
    }


def run_raw(raw: dict, store_path) -> tuple[Store, list[str]]:
    """Validate a raw config (with its sweep), run every run in-process, return store and run ids."""
    store = Store(store_path)
    ids = []
    for one in expand_sweep(raw, raw.get("sweep")):
        cfg = resolve(one)
        run_config(cfg, store)
        ids.append(cfg.run_id)
    return store, ids


def record(raw: dict, i: int = 0) -> RunRecord:
    """A done run `run{i}` of the raw config, resolved as a store's reader resolves it."""
    cfg = typed(raw)
    return RunRecord(f"run{i}", cfg.name, "done", None, "", None, 1, 1, config=cfg)


class Interrupt(Exception):
    """Stands for a kill between two generations."""


def interrupt_after(
    cfg: Config, store: Store, generation: int, exc: type[BaseException] = Interrupt
) -> None:
    """Run cfg into store, stopped by `exc` right after generation `generation` commits."""

    def stop(t: int) -> None:
        if t == generation:
            raise exc

    with pytest.raises(exc):
        run_config(cfg, store, on_generation=stop)


def metric(store: Store, run_id: str, name: str) -> np.ndarray:
    """Values of one metric as an array of shape (generations, replicates)."""
    rows = {g: v for g, m, v in store.metric_arrays(run_id) if m == name}
    return np.stack([rows[g] for g in sorted(rows)])


def z_score(samples: np.ndarray, expected: float) -> float:
    """How many standard errors the sample mean is from `expected`."""
    se = samples.std(ddof=1) / np.sqrt(len(samples))
    return abs(samples.mean() - expected) / se


def norm_reward(x: np.ndarray) -> np.ndarray:
    """A user reward for the `callable` kind: the Euclidean norm of each sample (m, d) -> (m,)."""
    return np.linalg.norm(x, axis=-1)


def keep(
    sample, n: int, kind: str, params: dict, score, rng
) -> tuple[np.ndarray, np.ndarray | None]:
    """Keep n samples per replicate of `sample(m) -> (R, m, d)` by a selection kind and a score:
    the kept samples and their optional weights."""
    from selfconsume.loop.selection import Candidates, build_selection, curate

    kept = curate(Candidates(lambda m, y: sample(m)), n, build_selection(kind, params), score, rng)
    return kept.x, kept.w


# --- the real command in a subprocess, and what it leaves in its store ------------------------------

SRC = str(Path(selfconsume.__file__).parents[1])
"""The selfconsume under test: subprocesses import it, not whatever else is installed."""


def cli(*args: str) -> list[str]:
    """The `selfconsume` command line run by this interpreter (the code under test)."""
    return [sys.executable, "-c", "from selfconsume.cli import app; app()", *args]


def env(*paths: Path) -> dict[str, str]:
    """This environment for a subprocess: `paths` (a user's modules), then SRC, importable; one
    BLAS thread."""
    path = os.pathsep.join([*map(str, paths), SRC])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def export(path: Path) -> pd.DataFrame:
    """The store's long export in a canonical order (categories as strings: their order follows
    the runs' registration, which differs between a sweep and its reference)."""
    with StoreReader(path) as reader:
        out = long_frame(reader)
    cats = out.select_dtypes("category").columns
    out[cats] = out[cats].astype(str)
    return out.sort_values(["run_id", "metric", "generation", "replicate"], ignore_index=True)


def committed(path: Path) -> int:
    """Generations committed in the store at `path`, all runs together, read from outside the
    sweep (0 while it cannot be read): what a kill waits for."""
    try:
        db = sqlite3.connect(path, timeout=1)
        try:
            return db.execute("SELECT COALESCE(SUM(generations_done), 0) FROM runs").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def why_no_private_mount() -> str | None:
    """Why a private mount namespace with a tmpfs (unshare -m) cannot be made here, or None."""
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    if os.geteuid() != 0:
        return "needs root for unshare -m and mount"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", "/mnt"],
        capture_output=True,
    )
    return None if probe.returncode == 0 else "unshare -m / mount are not permitted here"


USER_REWARDS = """
import multiprocessing, os, signal, sys
from pathlib import Path
import numpy as np

calls = {}
ONCE = Path(__file__).with_name("killed-once")


def _count(name):
    calls[name] = calls.get(name, 0) + 1
    return calls[name]


def _third_call_in_a_worker(name):
    return _count(name) >= 3 and multiprocessing.parent_process() is not None


def good(x):
    return -np.abs(x[:, 0])


def also_good(x):
    return -np.abs(x[:, 0])


def type_error(x):
    if _count("type_error") >= 3:
        raise TypeError("unsupported operand in the user's reward")
    return -np.abs(x[:, 0])


def memory_error(x):
    if _count("memory_error") >= 3:
        raise MemoryError("the user's reward ran out of memory")
    return -np.abs(x[:, 0])


def wrong_shape(x):
    return x


def exits(x):
    if _third_call_in_a_worker("exits"):
        sys.exit(3)
    return -np.abs(x[:, 0])


def killed_once(x):
    if _third_call_in_a_worker("killed_once") and not ONCE.exists():
        ONCE.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return -np.abs(x[:, 0])


def killed_always(x):
    if _third_call_in_a_worker("killed_always"):
        os.kill(os.getpid(), signal.SIGKILL)
    return -np.abs(x[:, 0])
"""
"""The user's reward module `userrewards` (the `user_rewards` fixture writes it): rewards that
fail on their third call (a TypeError, a MemoryError) or in a worker process (sys.exit, SIGKILL
once or always), beside good ones."""


def curated_config(name: str, *targets: str) -> str:
    """A small curated sweep (10 replicates, 4 generations) rewarded by `userrewards:<target>`,
    one run per target (the first is the config's own)."""
    rewards = [f"userrewards:{t}" for t in targets]
    text = f"""
name: {name}
seed: 2
replicates: 10
generations: 4
data: {{kind: gaussian, n_real: 8, n_test: 4}}
model: {{kind: gaussian}}
scheme: {{kind: mix, lam: 1.0}}
curation: {{kind: bradley_terry, k: 2, reward: {{kind: callable, params: {{target: {rewards[0]}}}}}}}
metrics: [gaussian_params]
"""
    if len(rewards) > 1:
        text += f"sweep: {{curation.reward.params.target: [{', '.join(rewards)}]}}\n"
    return text
