"""The vectorised Gaussian loop against the raw normal rate and a plain per-chain Python loop."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from selfconsume.config import validate
from selfconsume.loop.run import run_config
from selfconsume.models.gaussian import GaussianModel, GaussianModelParams
from selfconsume.seeding import Streams
from selfconsume.store.sqlite import Store

REPLICATES, N, GENERATIONS = 10_000, 100, 30


def best_of(fn, repeats: int = 5) -> float:
    """Best wall time of fn() over a few repeats (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def raw_normal_rate() -> tuple[float, str]:
    """Float64 standard normals per second filling a preallocated buffer, best generator here."""
    size = REPLICATES * N
    buf = np.empty(size)
    tbuf = torch.empty(size, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    sfc, pcg = np.random.Generator(np.random.SFC64(0)), np.random.default_rng(0)
    candidates = {
        "numpy SFC64": lambda: sfc.standard_normal(out=buf),
        "numpy PCG64": lambda: pcg.standard_normal(out=buf),
        "torch normal_": lambda: tbuf.normal_(generator=gen),
    }
    rates = {name: size / best_of(fn) for name, fn in candidates.items()}
    best = max(rates, key=rates.get)
    return rates[best], best


def generation_step_rate() -> float:
    """Samples per second of the loop's generation step: sample p_t, refit (all replicates)."""
    model = GaussianModel(GaussianModelParams(), 1, REPLICATES, Streams(0))
    streams = Streams(0)

    def step(t: int = 1) -> None:
        x = model.sample(N, streams.numpy("synthetic", t), t)
        model.fit(x, None, t, False)

    return REPLICATES * N / best_of(step, 10)


def run_loop_rate() -> float:
    """Samples per second of the full run loop (metrics and per-generation store commits)."""
    raw = {
        "name": "bench",
        "replicates": REPLICATES,
        "generations": GENERATIONS,
        "data": {"kind": "gaussian", "n_real": N, "n_test": 2},
        "model": {"kind": "gaussian"},
        "metrics": ["gaussian_params", "w2"],
    }

    def once() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            run_config(validate(raw), Store(Path(tmp) / "s.sqlite"))

    return REPLICATES * N * (GENERATIONS + 1) / best_of(once, 3)


def per_chain_family_rate(chains: int = 300) -> float:
    """Samples per second of the same generation step run one chain at a time (replicates=1)."""
    streams = Streams(0)
    models = [GaussianModel(GaussianModelParams(), 1, 1, streams) for _ in range(chains)]

    def loop() -> None:
        for model in models:
            for t in range(5):
                model.fit(model.sample(N, streams.numpy("synthetic", t), t), None, t, False)

    return chains * 5 * N / best_of(loop, 3)


def per_chain_loop_rate(chains: int = 1000) -> float:
    """Samples per second of the leanest plain loop: one chain at a time, numpy per chain."""
    rng = np.random.default_rng(0)

    def loop() -> None:
        for _ in range(chains):
            mu, sigma = 0.0, 1.0
            for _ in range(5):
                x = rng.normal(mu, sigma, N)
                mu, sigma = x.mean(), x.std(ddof=1)

    return chains * 5 * N / best_of(loop, 3)


def run() -> list[dict]:
    raw, raw_name = raw_normal_rate()
    step, loop = generation_step_rate(), run_loop_rate()
    plain, family = per_chain_loop_rate(), per_chain_family_rate()
    unit = "samples/s"
    return [
        {
            "name": f"raw normal rate ({raw_name})",
            "value": raw,
            "baseline": raw,
            "ratio": 1.0,
            "target": "",
            "unit": unit,
        },
        {
            "name": "gaussian generation step / raw rate",
            "value": step,
            "baseline": raw,
            "ratio": step / raw,
            "target": ">= 0.5",
            "unit": unit,
        },
        {
            "name": "gaussian run loop (store, metrics) / raw rate",
            "value": loop,
            "baseline": raw,
            "ratio": loop / raw,
            "target": ">= 0.5",
            "unit": unit,
        },
        {
            "name": "gaussian generation step / same step one chain at a time",
            "value": step,
            "baseline": family,
            "ratio": step / family,
            "target": ">= 30",
            "unit": unit,
        },
        {
            "name": "gaussian run loop / leanest per-chain numpy loop",
            "value": loop,
            "baseline": plain,
            "ratio": loop / plain,
            "target": ">= 30",
            "unit": unit,
        },
        {
            "name": "raw normal rate / leanest per-chain numpy loop (ceiling of the row above)",
            "value": raw,
            "baseline": plain,
            "ratio": raw / plain,
            "target": "",
            "unit": unit,
        },
    ]
