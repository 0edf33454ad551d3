"""The vectorised Gaussian loop against the raw normal rate and plain per-chain Python loops."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from timing import best_times

from selfconsume.loop.run import run_config
from selfconsume.models.gaussian import GaussianModel, GaussianModelParams
from selfconsume.plan import resolve
from selfconsume.seeding import Streams
from selfconsume.store.sqlite import Store

REPLICATES, N, GENERATIONS = 10_000, 100, 30
CHAINS, CHAIN_GENERATIONS = 300, 5


def raw_normals() -> dict[str, Callable[[], object]]:
    """Fill a preallocated buffer of R * n float64 standard normals, with each generator here."""
    size = REPLICATES * N
    buf, tbuf = np.empty(size), torch.empty(size, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    sfc, pcg = np.random.Generator(np.random.SFC64(0)), np.random.default_rng(0)
    return {
        "numpy SFC64": lambda: sfc.standard_normal(out=buf),
        "numpy PCG64": lambda: pcg.standard_normal(out=buf),
        "torch normal_": lambda: tbuf.normal_(generator=gen),
    }


def generation_step() -> Callable[[], None]:
    """The loop's generation step on all replicates at once: sample p_t, refit."""
    model = GaussianModel(GaussianModelParams(), 1, REPLICATES, Streams(0))
    rng = Streams(0).numpy("synthetic", 1)
    return lambda: model.fit(model.sample(N, rng, 1), None, 1, False)


def run_loop() -> None:
    """The full run loop: GENERATIONS + 1 generations with metrics and store commits."""
    raw = {
        "name": "bench",
        "replicates": REPLICATES,
        "generations": GENERATIONS,
        "data": {"kind": "gaussian", "n_real": N, "n_test": 2},
        "model": {"kind": "gaussian"},
        "metrics": ["gaussian_params", "w2"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        run_config(resolve(raw), Store(Path(tmp) / "s.sqlite"))


def per_chain_family() -> None:
    """The same generation step, one chain at a time (replicates=1), CHAIN_GENERATIONS each."""
    streams = Streams(0)
    for _ in range(CHAINS):
        model = GaussianModel(GaussianModelParams(), 1, 1, streams)
        for t in range(CHAIN_GENERATIONS):
            model.fit(model.sample(N, streams.numpy("synthetic", t), t), None, t, False)


def per_chain_numpy() -> None:
    """The leanest plain loop: one chain at a time, numpy for its n samples."""
    rng = np.random.default_rng(0)
    for _ in range(CHAINS):
        mu, sigma = 0.0, 1.0
        for _ in range(CHAIN_GENERATIONS):
            x = rng.normal(mu, sigma, N)
            mu, sigma = x.mean(), x.std(ddof=1)


def run() -> list[dict]:
    raw = raw_normals()
    fns = {**raw, "step": generation_step(), "loop": run_loop}
    fns |= {"family": per_chain_family, "numpy": per_chain_numpy}
    t = best_times(fns, repeats=4)
    size = REPLICATES * N
    chain_samples = CHAINS * CHAIN_GENERATIONS * N
    best_raw = min(raw, key=t.get)
    rate = {
        "raw": size / t[best_raw],
        "step": size / t["step"],
        "loop": size * (GENERATIONS + 1) / t["loop"],
        "family": chain_samples / t["family"],
        "numpy": chain_samples / t["numpy"],
    }

    def row(name: str, ours: str, base: str, target: str) -> dict:
        return {
            "name": name,
            "value": rate[ours],
            "baseline": rate[base],
            "ratio": rate[ours] / rate[base],
            "target": target,
            "unit": "samples/s",
        }

    return [
        row(f"raw normal rate ({best_raw}), R=1e4, n=100", "raw", "raw", ""),
        row("gaussian generation step / raw rate", "step", "raw", ">= 0.5"),
        row("gaussian run loop (metrics, store) / raw rate", "loop", "raw", ">= 0.5"),
        row("generation step / same step one chain at a time", "step", "family", ">= 30"),
        row("run loop / leanest per-chain numpy loop", "loop", "numpy", ">= 30"),
        row(
            "raw rate / leanest per-chain numpy loop (ceiling of the row above)", "raw", "numpy", ""
        ),
    ]
