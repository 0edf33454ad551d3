"""The one-writer path: what a finished generation costs on the wire, and Dask against local
processes on the same sweep.

Workers send each generation back as one record (metrics, checkpoint, snapshot, pool batch) and
the process that ran the sweep commits it. The bytes rows count every record the writer received,
per committed generation, against the bytes the store writes for it (metric blobs plus checkpoint,
snapshot and pool files): the wire carries what is stored and little more. The wall-time rows run the same sweep on
a warm Dask cluster of 2 single-threaded workers on 127.0.0.1 (records through the scheduler's
queue) and on `--workers 2` (records through a pipe), best of 2 each, interleaved. The pool
spawns fresh interpreters (and imports torch) for each sweep while the Dask workers stay warm, as
an existing cluster's do: on short sweeps that start-up, not the record path, sets the ratio.

Sweeps: the 2-D DDPM (default network, 8 Gaussians, 2 seeds x 2 replicates x 4 generations of
150 steps) and a 10,000-replicate Gaussian (2 seeds x 10,000 replicates x 30 generations).
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import yaml
from timing import best_times

import selfconsume.store.sqlite as sqlite_store
from selfconsume.api import run_experiment
from selfconsume.sweep.writer import Writer

DDPM = {
    "name": "bench-cluster-ddpm",
    "seed": 0,
    "replicates": 2,
    "generations": 3,
    "data": {"kind": "eight_gaussians", "n_real": 500, "n_test": 500},
    "model": {"kind": "ddpm", "warm_start": True, "params": {"train_steps": 150}},
    "scheme": {"kind": "mix", "lam": 0.5},
    "metrics": ["w2", "modes"],
    "sweep": {"seed": [1, 2]},
}
GAUSSIAN = {
    "name": "bench-cluster-gaussian",
    "seed": 0,
    "replicates": 10_000,
    "generations": 29,
    "data": {"kind": "gaussian", "n_real": 20, "n_test": 10},
    "model": {"kind": "gaussian"},
    "scheme": {"kind": "mix", "lam": 0.5},
    "metrics": ["gaussian_params"],
    "sweep": {"seed": [1, 2]},
}


class Counter:
    """Counts the bytes of every record the writer receives and of every artifact file the store
    writes (both happen in this process)."""

    def __init__(self) -> None:
        self.received = self.files = 0
        self._commit, self._write = Writer.commit, sqlite_store._write

    def __enter__(self) -> Counter:
        def commit(writer: Writer, data: bytes) -> None:
            self.received += len(data)
            self._commit(writer, data)

        def write(path: Path, data: bytes) -> tuple[Path, str]:
            self.files += len(data)
            return self._write(path, data)

        Writer.commit, sqlite_store._write = commit, write
        return self

    def __exit__(self, *exc: object) -> None:
        Writer.commit, sqlite_store._write = self._commit, self._write


def metric_bytes(store: Path) -> tuple[int, int]:
    """(bytes of the store's metric blobs, generations committed)."""
    db = sqlite3.connect(store)
    metric = db.execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM metrics").fetchone()[0]
    generations = db.execute("SELECT SUM(generations_done) FROM runs").fetchone()[0]
    db.close()
    return metric, generations


def rows_for(raw: dict, label: str, scheduler: str, folder: Path) -> list[dict]:
    config = folder / f"{raw['name']}.yaml"
    config.write_text(yaml.safe_dump(raw))
    runs = iter(range(100))

    def fresh() -> Path:
        return folder / f"{raw['name']}-{next(runs)}.sqlite"

    with Counter() as counter:
        probe = fresh()
        run_experiment(config, store=probe, executor="dask", scheduler=scheduler)
    metric, generations = metric_bytes(probe)
    sent, kept = counter.received / generations, (metric + counter.files) / generations
    times = best_times(
        {
            "dask": lambda: run_experiment(
                config, store=fresh(), executor="dask", scheduler=scheduler
            ),
            "local": lambda: run_experiment(config, store=fresh(), workers=2),
        },
        repeats=2,
    )
    return [
        {
            "name": f"one-writer bytes per generation sent, {label} (vs bytes the store writes)",
            "value": sent,
            "baseline": kept,
            "ratio": sent / kept,
            "target": "<= 2",
            "unit": "B/generation",
        },
        {
            "name": f"sweep wall time, Dask 2 workers vs --workers 2, {label}",
            "value": times["dask"],
            "baseline": times["local"],
            "ratio": times["local"] / times["dask"],
            "target": ">= 0.7",
            "unit": "s",
        },
    ]


def run() -> list[dict]:
    from dask.distributed import LocalCluster

    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        ) as cluster,
    ):
        folder = Path(tmp)
        rows = rows_for(DDPM, "2-D DDPM", cluster.scheduler_address, folder)
        rows += rows_for(GAUSSIAN, "Gaussian 10,000 replicates", cluster.scheduler_address, folder)
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
