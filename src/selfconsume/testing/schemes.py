"""The contract of a scheme: resolved in a run, it says how many synthetic samples it asks for,
its population lam and its label; over generations (fresh real sets, a growing pool) it builds a training set
(R, m, d) of rows of the real set and the synthetic batches, with weights (R, m) or None, the same
for the same stream and replicate r's independent of R."""

from __future__ import annotations

from typing import Any

import numpy as np

from selfconsume.loop.schemes import SCHEMES, Pool, Scheme
from selfconsume.plan import build
from selfconsume.seeding import Streams
from selfconsume.testing.base import (
    Case,
    N,
    R,
    assert_first_replicates,
    assert_same,
    check_params_round_trip,
)

GENERATIONS = 3
DIM = 2


def scheme_block(case: Case) -> dict[str, Any]:
    """The `scheme:` block of the kind with its example params."""
    return {"kind": case.kind, "params": case.raw_params()}


def scheme(case: Case, replicates: int = R) -> Scheme:
    return build(case.config(replicates, scheme=scheme_block(case))).scheme


def batch(purpose: str, t: int, replicates: int, n: int) -> np.ndarray:
    """Generation t's real set or synthetic batch (replicates, n, DIM): every row distinct."""
    return Streams(0).per_replicate(purpose, t).standard_normal((replicates, n, DIM))


def training_sets(case: Case, replicates: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The training sets of generations 1..3, built as the run loop builds them from real sets
    and synthetic batches whose rows are all distinct (half the batches weighted 0/1)."""
    s = scheme(case, replicates)
    real, pool, out = batch("real", 0, replicates, N), Pool(), []
    for t in range(1, GENERATIONS + 1):
        if s.fresh_real:
            real = batch("real", t, replicates, N)
        synthetic = batch("synthetic", t, replicates, s.n_synthetic)
        weights = None
        if t % 2 == 0:
            weights = (Streams(0).per_replicate("w", t).random(synthetic.shape[:2]) < 0.5) * 1.0
        if s.accumulates:
            pool.append(synthetic, weights)
        out.append(s.build(real, synthetic, weights, pool, Streams(0).per_replicate("scheme", t)))
    return out


def check_resolves(case: Case) -> None:
    """The resolved scheme asks for a whole number of synthetic samples, has a population lam
    that is None (fully synthetic) or >= 0, and a label, curated or not."""
    s = scheme(case)
    assert isinstance(s.n_synthetic, int) and s.n_synthetic >= 0, f"n_synthetic {s.n_synthetic!r}"
    lam = s.population_lam()
    assert lam is None or lam >= 0, f"population lam {lam!r}"
    for curated in (False, True):
        label = s.label(curated)
        assert isinstance(label, str) and label, f"label {label!r} (curated: {curated})"


def check_builds_training_sets(case: Case) -> None:
    """Each training set is (R, m, d) with weights (R, m) >= 0 or None, made of rows of the real
    sets and synthetic batches drawn so far."""
    for x, w in training_sets(case, R):
        assert x.ndim == 3 and x.shape[0] == R and x.shape[2] == DIM, f"shape {x.shape}"
        assert w is None or (w.shape == x.shape[:2] and np.all(w >= 0)), "weights malformed"
    rows = lambda a: {tuple(v) for v in a.reshape(-1, DIM)}  # noqa: E731
    s, drawn = scheme(case), set()
    for t in range(GENERATIONS + 1):
        drawn |= rows(batch("real", t, R, N)) | rows(batch("synthetic", t, R, s.n_synthetic))
    for x, _ in training_sets(case, R):
        assert rows(x) <= drawn, "a training row is neither real nor synthetic"


def check_deterministic_and_replicates_independent(case: Case) -> None:
    """The same streams give the same training sets; replicates 0-1's do not depend on R."""
    four, again, two = (training_sets(case, r) for r in (4, 4, 2))
    for (x4, w4), (xa, wa), (x2, w2) in zip(four, again, two, strict=True):
        assert_same(xa, x4, "two builds from one stream differ")
        assert_first_replicates(x2, x4, "replicates 0-1's training set changed with R")
        assert (w4 is None) == (w2 is None) == (wa is None), "weights came and went"
        if w4 is not None:
            assert_first_replicates(w2, w4, "replicates 0-1's weights changed with R")


REGISTRY = SCHEMES
"""The registry of the kinds these checks are for."""
CHECKS = (
    check_params_round_trip,
    check_resolves,
    check_builds_training_sets,
    check_deterministic_and_replicates_independent,
)
