"""Fixed, seeded partitions of a finite dataset, and draws of rows from one part.

A finite source (a file, an image set) is split once, from its own `seed` param, into disjoint
parts (the classifier's training split, the test split, the pool real sets come from), so no row is
ever in two of them. Draws take `rng.random((R, size))` keys and keep the rows with the n smallest
keys, so replicate r's rows never depend on R (see seeding.ReplicateRandom).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selfconsume.errors import ConfigError


def partition(
    n_rows: int, fractions: Sequence[float], seed: int, labels: np.ndarray | None = None
) -> list[np.ndarray]:
    """Row indices of len(fractions) + 1 disjoint parts covering range(n_rows): part i holds a
    fraction fractions[i] of the rows, the last part the rest. With labels the split is
    stratified (each class is split with the same fractions), so every part keeps the class
    balance; rounding is per class, by the cumulative fraction."""
    rng = np.random.default_rng(seed)
    groups = (
        [np.arange(n_rows)]
        if labels is None
        else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    )
    bounds = np.cumsum(fractions)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for rows in groups:
        rows = rng.permutation(rows)
        cuts = np.round(bounds * len(rows)).astype(int)
        for part, chunk in zip(parts, np.split(rows, cuts), strict=True):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def draw_without_replacement(
    part: np.ndarray, replicates: int, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Row indices (replicates, n) of `part`, distinct within each replicate, in random order."""
    keys = rng.random((replicates, len(part)))
    first = np.argpartition(keys, n - 1, axis=1)[:, :n] if n < len(part) else np.argsort(keys, 1)
    order = np.argsort(np.take_along_axis(keys, first, axis=1), axis=1)
    return part[np.take_along_axis(first, order, axis=1)]


def check_fits(key: str, n: int, part: np.ndarray, what: str) -> None:
    """ConfigError naming `key` when n rows are asked of a part holding fewer (or none)."""
    if n > len(part):
        raise ConfigError(f"{key}: {n} asked but the {what} holds {len(part)} rows")
