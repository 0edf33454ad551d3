"""Generation 0 fitted once for the arms of a sweep that share it.

With `common_random_numbers: true`, arms that have the same data, model, seed and replicates fit
the identical first model (same real sets, same initialisation, same training noise): only their
scheme or curation differs, and those act from generation 1 on. The first arm to get there fits
it and caches its state (and training diagnostics) beside the store; the others wait for it and
load it, bit for bit what they would have fitted. The key holds the code's fingerprint, so an
edited selfconsume refits. Runs without common random numbers draw their own numbers and fit
their own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from selfconsume.cache import cache_dir, code_fingerprint, locked, write_atomic
from selfconsume.config import Config
from selfconsume.loop.build import Plan
from selfconsume.store.checkpoint import CheckpointError, from_bytes, to_bytes


def fit_first(plan: Plan, x: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fit generation 0 on the real sets x, or load it from a sibling arm that fitted it."""
    path = cache_path(plan)
    if path is None:
        return plan.model.fit(x, None, 0, False, **labels)
    with locked(path):
        try:
            cached = from_bytes(path.read_bytes())
        except (OSError, CheckpointError):
            cached = None
        if cached is not None:
            plan.model.load_state_dict(cached["model"])
            return cached["diagnostics"]
        diagnostics = plan.model.fit(x, None, 0, False, **labels)
        state = {"model": plan.model.state_dict(), "diagnostics": dict(diagnostics)}
        write_atomic(path, to_bytes(state))
        return diagnostics


def cache_path(plan: Plan) -> Path | None:
    """Where this plan's first model is shared, or None when it has no siblings to share with."""
    key = first_model_key(plan.cfg)
    return None if key is None else cache_dir() / "first-models" / f"{key}.npz"


def first_model_key(cfg: Config) -> str | None:
    """What the runs sharing this run's generation-0 model have in common, hashed; None when it
    shares it with none (no common random numbers, so its own streams; or population mode)."""
    if not cfg.common_random_numbers or cfg.model.population:
        return None
    what = {
        "code": code_fingerprint(),
        "seed": cfg.seed,
        "replicates": cfg.replicates,
        "data": cfg.data.model_dump(mode="json"),
        "model": cfg.model.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]
