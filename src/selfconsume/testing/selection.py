"""The contract of a selection kind (curation between sampling p_t and training p_{t+1}): in the
run its example names, it keeps rows of p_t's candidates, (R, n', d) with 0/1 weights (R, n') or
None, the same for the same streams and replicate r's independent of R. A reward-free kind's
score also has one finite value per candidate of any shape (R, ..., d) -> (R, ...); a rule with an
exact law (`population`) gives a sub-probability on the states p_t puts mass on."""

from __future__ import annotations

from typing import Any

import numpy as np

from selfconsume.loop.selection import SELECTIONS, Candidates, ExactSelection, RewardFree, curate
from selfconsume.plan import build
from selfconsume.seeding import Streams
from selfconsume.testing.base import (
    Case,
    N,
    R,
    assert_finite,
    assert_first_replicates,
    assert_same,
    check_params_round_trip,
)


def curation_block(case: Case) -> dict[str, Any]:
    """The `curation:` block of the kind with its example params (its example's run config
    names the reward of a rule that keeps by one)."""
    return {"kind": case.kind, "params": case.raw_params()}


def kept(case: Case, replicates: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Generation 1's kept samples and weights, and every candidate drawn (R, m, d), as the run
    loop draws them from a fitted generation 0."""
    cfg = case.config(replicates, curation=curation_block(case))
    plan = build(cfg)
    streams = plan.streams
    real = plan.source.sample(replicates, cfg.data.n_real, streams.per_replicate("real", 0))
    plan.model.fit(real, None, 0, False)
    score = plan.reward
    if isinstance(plan.selection, RewardFree):
        score = plan.selection.scorer(real, streams.per_replicate("filter", 1))
    rng, drawn = streams.per_replicate("synthetic", 1), []

    def sample(m: int, labels: np.ndarray | None) -> np.ndarray:
        drawn.append(plan.model.sample(m, rng, 1))
        return drawn[-1]

    out = curate(Candidates(sample), N, plan.selection, score, streams.per_replicate("curation", 1))
    return out.x, out.w, np.concatenate(drawn, axis=1)


def check_keeps_candidates(case: Case) -> None:
    """Kept samples (R, n', d) are candidates of their own replicate; weights (R, n') are 0/1."""
    x, w, cand = kept(case, R)
    assert x.ndim == 3 and x.shape[0] == R and x.shape[2] == cand.shape[2], f"shape {x.shape}"
    assert w is None or (w.shape == x.shape[:2] and np.all((w == 0) | (w == 1))), "bad weights"
    for r in range(R):
        rows = {tuple(v) for v in cand[r]}
        assert all(tuple(v) in rows for v in x[r]), f"replicate {r} kept a sample not drawn"


def check_deterministic_and_replicates_independent(case: Case) -> None:
    """The same streams keep the same samples; replicates 0-1 keep the same whatever R."""
    (x4, w4, _), (xa, wa, _), (x2, w2, _) = (kept(case, r) for r in (4, 4, 2))
    assert_same(xa, x4, "two curations from one stream differ")
    assert_first_replicates(x2, x4, "replicates 0-1 kept other samples with R")
    assert (w4 is None) == (w2 is None) == (wa is None), "weights came and went"
    if w4 is not None:
        assert_same(wa, w4, "two curations from one stream weigh differently")
        assert_first_replicates(w2, w4, "replicates 0-1's weights changed with R")


def scores(case: Case, replicates: int) -> np.ndarray:
    """A reward-free kind's scores of candidates shaped (R, 6, 4, d) given real sets (R, N, d)."""
    plan = build(case.config(replicates, curation=curation_block(case)))
    rng = lambda purpose: Streams(0).per_replicate(purpose, 1)  # noqa: E731
    real = plan.source.sample(replicates, N, rng("real"))
    cand = plan.source.sample(replicates, 24, rng("candidates"))
    cand = cand.reshape(replicates, 6, 4, plan.source.dim)
    return plan.selection.scorer(real, rng("filter"))(cand)


def check_scores_each_candidate(case: Case) -> None:
    """A reward-free score is (R, ..., d) -> (R, ...), finite, the same for the same stream and
    replicate r's independent of R."""
    if case.entry.obj.rewarded:
        return
    out = scores(case, R)
    assert out.shape == (R, 6, 4), f"scores have shape {out.shape}, expected {(R, 6, 4)}"
    assert_finite(out, "a score")
    assert_same(scores(case, R), out, "two scorings from one stream differ")
    assert_first_replicates(scores(case, 2), out, "replicates 0-1's scores changed with R")


def check_exact_law(case: Case) -> None:
    """An exact law (`population`) is a sub-probability on p_t's support, per row of p."""
    if not issubclass(case.entry.obj, ExactSelection):
        return
    rule = case.entry.obj(case.params())
    p = np.array([[0.1, 0.2, 0.3, 0.4], [0.0, 0.5, 0.5, 0.0]])
    law = np.asarray(rule.population(p, np.array([0.0, 1.0, 2.0, 3.0])))
    assert law.shape == p.shape, f"law of shape {law.shape}, expected {p.shape}"
    assert np.all(law >= 0) and np.all(law[p == 0] == 0), "mass off p_t's support or negative"
    assert np.all(law.sum(-1) <= 1 + 1e-9), f"more than all of p_t's mass kept: {law.sum(-1)}"


def check_params(case: Case) -> None:
    """A registered kind's example params survive a trip through JSON."""
    check_params_round_trip(case)


REGISTRY = SELECTIONS
"""The registry of the kinds these checks are for."""
CHECKS = (
    check_params,
    check_scores_each_candidate,
    check_exact_law,
    check_keeps_candidates,
    check_deterministic_and_replicates_independent,
)
