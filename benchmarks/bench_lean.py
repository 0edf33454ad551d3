"""End-to-end cost of small runs through the CLI, start-up included: a peer's grid point against a
lean per-seed numpy loop doing the same fits in this process, accumulate against replace, and the
wall time of a one-generation Gaussian and discrete run."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from timing import best_times

DIM, N, GENERATIONS, REPLICATES = 10, 100, 100, 100  # the peer's grid point (MLE)
SMALL_REPEATS = 5
CLI = Path(sys.executable).with_name("selfconsume")


def grid_config(scheme: str) -> dict:
    return {
        "name": f"lean-{scheme}",
        "seed": 0,
        "replicates": REPLICATES,
        "generations": GENERATIONS,
        "data": {"kind": "gaussian", "n_real": N, "n_test": 2, "params": {"dim": DIM}},
        "model": {"kind": "gaussian", "params": {"estimator": "mle"}},
        "scheme": {"kind": scheme},
        "metrics": ["gaussian_params"],
    }


ONE_GENERATION = {
    "gaussian": {
        "name": "lean-one-gaussian",
        "replicates": 100,
        "generations": 1,
        "data": {"kind": "gaussian", "n_real": 100},
        "model": {"kind": "gaussian"},
        "metrics": ["gaussian_params", "w2"],
    },
    "discrete": {
        "name": "lean-one-discrete",
        "replicates": 100,
        "generations": 1,
        "data": {"kind": "discrete", "n_real": 100, "params": {"probs": [0.4, 0.3, 0.2, 0.1]}},
        "model": {"kind": "discrete"},
        "metrics": ["mass", "divergence", "entropy"],
    },
}


def cli_run(raw: dict) -> None:
    """`selfconsume run <yaml> --store <fresh store>` in a subprocess (a fresh store: no resume)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cfg.yaml"
        path.write_text(yaml.safe_dump(raw))
        cmd = [str(CLI), "run", str(path), "--store", str(Path(tmp) / "s.sqlite")]
        subprocess.run(cmd, check=True, capture_output=True)


def lean_numpy(accumulate: bool) -> None:
    """The peer's loop: one seed at a time, sample, refit (MLE mean and covariance), the same three
    metrics; accumulate fits on the real set plus every batch so far (a preallocated buffer)."""
    values = []
    for seed in range(REPLICATES):
        rng = np.random.default_rng(seed)
        buf = np.empty(((GENERATIONS + 1) * N if accumulate else N, DIM))
        buf[:N] = rng.standard_normal((N, DIM))
        train = buf[:N]
        for t in range(GENERATIONS + 1):
            mean = train.mean(axis=0)
            xc = train - mean
            cov = xc.T @ xc / len(train)
            values.append((np.trace(cov), np.linalg.slogdet(cov)[1], np.linalg.norm(mean)))
            if t == GENERATIONS:
                break
            y = rng.standard_normal((N, DIM)) @ np.linalg.cholesky(cov).T + mean
            if accumulate:
                buf[(t + 1) * N : (t + 2) * N] = y
                train = buf[: (t + 2) * N]
            else:
                buf[:] = y


def median_wall(raw: dict) -> float:
    times = []
    for _ in range(SMALL_REPEATS):
        start = time.perf_counter()
        cli_run(raw)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> list[dict]:
    t = best_times(
        {
            "replace": lambda: cli_run(grid_config("replace")),
            "accumulate": lambda: cli_run(grid_config("accumulate")),
            "numpy replace": lambda: lean_numpy(False),
            "numpy accumulate": lambda: lean_numpy(True),
        },
        repeats=2,
    )
    point = f"d={DIM}, n={N}, MLE, {GENERATIONS} gens, R={REPLICATES}"

    def faster(scheme: str) -> dict:
        ours, base = t[scheme], t[f"numpy {scheme}"]
        return {
            "name": f"{scheme} via CLI vs lean per-seed numpy loop ({point}; speed-up)",
            "value": ours,
            "baseline": base,
            "ratio": base / ours,
            "target": ">= 5",
            "unit": "s",
        }

    rows = [faster("replace"), faster("accumulate")]
    rows.append(
        {
            "name": f"accumulate / replace via CLI ({point})",
            "value": t["accumulate"],
            "baseline": t["replace"],
            "ratio": t["accumulate"] / t["replace"],
            "target": "<= 1.5",
            "unit": "s",
        }
    )
    for family, raw in ONE_GENERATION.items():
        wall = median_wall(raw)
        rows.append(
            {
                "name": f"one-generation {family} run via CLI (median of {SMALL_REPEATS})",
                "value": wall,
                "baseline": 1.5,
                "ratio": wall / 1.5,
                "target": "value <= 1.5",
                "unit": "s",
            }
        )
    return rows
