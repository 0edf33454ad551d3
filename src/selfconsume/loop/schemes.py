"""Schemes: the rule that builds generation t+1's training set from the real set and p_t's samples.

- `replace`: n_synthetic (default n_real) fresh samples of p_t only.
- `mix`: the real set plus round(lam * n_real) samples of p_t.
- `accumulate`: the real set plus every synthetic batch so far (batch size as for `mix`, lam default 1).
- `accumulate_subsample`: the same pool, subsampled without replacement to n_real + batch.
- `fresh`: a new real sample of n_real every generation plus a batch of p_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selfconsume.config import SchemeConfig


def synthetic_count(scheme: SchemeConfig, n_real: int) -> int:
    """How many (kept) synthetic samples per replicate the scheme asks of p_t."""
    if scheme.kind == "replace":
        return scheme.n_synthetic or n_real
    lam = 1.0 if scheme.lam is None else scheme.lam
    return scheme.n_synthetic or int(round(lam * n_real))


@dataclass
class SchemeState:
    """What a scheme carries across generations: the synthetic pool (accumulating schemes)."""

    pool: np.ndarray | None = None
    pool_weights: np.ndarray | None = None


def _concat(parts: list[np.ndarray | None]) -> np.ndarray:
    return np.concatenate([p for p in parts if p is not None], axis=1)


def _concat_weights(
    arrays: list[np.ndarray], weights: list[np.ndarray | None]
) -> np.ndarray | None:
    if all(w is None for w in weights):
        return None
    filled = [
        np.ones(a.shape[:2]) if w is None else w for a, w in zip(arrays, weights, strict=True)
    ]
    return np.concatenate(filled, axis=1)


def build_training_set(
    scheme: SchemeConfig,
    real: np.ndarray,
    synthetic: np.ndarray,
    weights: np.ndarray | None,
    state: SchemeState,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Training set (R, m, d) and optional weights (R, m) for the next generation.

    `real` is the real set of this generation (a new one each time under `fresh`)."""
    kind = scheme.kind
    if kind == "replace":
        return synthetic, weights
    if kind in ("mix", "fresh"):
        if synthetic.shape[1] == 0:
            return real, None
        return _concat([real, synthetic]), _concat_weights([real, synthetic], [None, weights])
    # accumulating schemes
    if state.pool is None:
        state.pool, state.pool_weights = synthetic, weights
    else:
        pw = _concat_weights([state.pool, synthetic], [state.pool_weights, weights])
        state.pool, state.pool_weights = _concat([state.pool, synthetic]), pw
    x = _concat([real, state.pool])
    w = _concat_weights([real, state.pool], [None, state.pool_weights])
    if kind == "accumulate":
        return x, w
    size = real.shape[1] + synthetic.shape[1]
    keys = rng.random(x.shape[:2])
    idx = np.argpartition(keys, size - 1, axis=1)[:, :size]
    x_sub = np.take_along_axis(x, idx[..., None], axis=1)
    return x_sub, None if w is None else np.take_along_axis(w, idx, axis=1)
