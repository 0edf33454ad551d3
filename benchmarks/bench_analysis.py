"""Reading a 10 M-value store back: Parquet / CSV export rates and `api.results` time and memory,
each against the run that wrote the store, timed in the same process tree.

The store: a Gaussian sweep of 2 arms x 5,000 replicates (10,000 in all) x 201 generations with
`gaussian_params` (5 metrics: mean, std, mean_error, cov_trace, cov_logdet) = 10.05 M values.
`api.results` runs in a fresh child process, whose peak resident memory above its size after the
imports is the memory row.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from timing import best_of

from selfconsume.api import run_experiment
from selfconsume.store.export import export

ARMS, REPLICATES, GENERATIONS, METRICS = 2, 5_000, 200, 5
VALUES = ARMS * REPLICATES * (GENERATIONS + 1) * METRICS
RAW = {
    "name": "bench-analysis",
    "replicates": REPLICATES,
    "generations": GENERATIONS,
    "data": {"kind": "gaussian", "n_real": 10, "n_test": 2},
    "model": {"kind": "gaussian"},
    "metrics": ["gaussian_params"],
    "sweep": {"model.params.estimator": ["unbiased", "mle"]},
}
CHILD = """
import json, sys, time
from selfconsume import api

def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

before = kib("VmRSS:")
start = time.perf_counter()
frame = api.results(sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": len(frame), "mb": (kib("VmHWM:") - before) / 1024}))
"""


def write_store(path: Path) -> float:
    """Run the sweep into a fresh store, in this process; return its wall time."""
    config = path.with_name("bench.yaml")
    config.write_text(yaml.safe_dump(RAW))
    start = time.perf_counter()
    outcomes = run_experiment(config, store=path, workers=1)
    assert all(o.status == "done" for o in outcomes), outcomes
    return time.perf_counter() - start


def results_in_child(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store.sqlite"
        run_s = write_store(store)
        parquet_s = best_of(lambda: export(store, "parquet", Path(tmp) / "v.parquet"), repeats=3)
        csv_s = best_of(lambda: export(store, "csv", Path(tmp) / "v.csv"), repeats=1)
        child = min((results_in_child(store) for _ in range(2)), key=lambda r: r["seconds"])
    assert child["rows"] == VALUES, child

    def row(name: str, value: float, baseline: float, target: str, unit: str) -> dict:
        ratio = value / baseline
        return {"name": name, "value": value, "baseline": baseline, "ratio": ratio} | {
            "target": target,
            "unit": unit,
        }

    run_rate, raw_mb = VALUES / run_s, VALUES * 8 / 2**20
    return [
        row("the run writing the 10 M-value store (baseline)", run_rate, run_rate, "", "values/s"),
        row(
            "export --format parquet / the run",
            VALUES / parquet_s,
            run_rate,
            "value >= 1e7",
            "values/s",
        ),
        row("export --format csv / the run", VALUES / csv_s, run_rate, "", "values/s"),
        row("api.results wall time / the run's", child["seconds"], run_s, "value <= 2", "s"),
        row(
            "api.results peak memory / the raw values (MB)",
            child["mb"],
            raw_mb,
            "value <= 300",
            "MB",
        ),
    ]
