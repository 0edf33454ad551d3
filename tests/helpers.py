"""Helpers for tests: the talk's curated discrete toy as a config, run a config mapping into a
store, a run record of a config, a run interrupted after a generation, a metric read as a (G, R)
array."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from selfconsume.config import Config, expand_sweep
from selfconsume.loop.run import run_config
from selfconsume.plan import resolve, typed
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
