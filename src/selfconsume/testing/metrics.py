"""The contract of a metric: in the run its example names, generation 0's metric gives named
values of shape (R,) (stable snake_case names, no NaN), the same for the same seed, and replicate
r's values do not depend on how many replicates run."""

from __future__ import annotations

import re

import numpy as np

from selfconsume.data.base import draw_test_set
from selfconsume.loop.run import frozen_copy
from selfconsume.metrics.base import METRICS, MetricContext
from selfconsume.plan import build
from selfconsume.testing.base import Case, R, assert_first_replicates, assert_same

NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def evaluate(case: Case, replicates: int = R) -> dict[str, np.ndarray]:
    """The metric of generation 0 in the example's run, as the run loop computes it."""
    cfg = case.config(replicates, metrics=[case.kind])
    plan = build(cfg)
    streams = plan.streams
    real = plan.source.sample(replicates, cfg.data.n_real, streams.per_replicate("real", 0))
    test = draw_test_set(plan.source, replicates, cfg.data.n_test, streams.per_replicate("test", 0))
    plan.model.fit(real, None, 0, False)
    reference = frozen_copy(plan, plan.model.state_dict()) if case.entry.reference else None
    ctx = MetricContext(
        model=plan.model,
        source=plan.source,
        real=real,
        test=test,
        generation=0,
        streams=streams,
        reward=plan.reward,
        beta=plan.selection.beta if plan.selection is not None else 1.0,
        reference=reference,
    )
    return {k: np.asarray(v, dtype=float) for k, v in METRICS.get(case.kind).obj(ctx).items()}


def check_names_and_shapes(case: Case) -> None:
    """At least one value; names are snake_case and declared at registration (`outputs`); each
    value has shape (R,) and no NaN."""
    values = evaluate(case)
    assert values, "the metric gave no value"
    for name, value in values.items():
        assert NAME.match(name), f"value name {name!r} is not snake_case"
        declared = METRICS.get(case.kind).outputs
        assert METRICS.declared(case.kind, name), f"{name!r} is not in its outputs {declared}"
        assert value.shape == (R,), f"{name} has shape {value.shape}, expected {(R,)}"
        assert not np.any(np.isnan(value)), f"{name} is NaN"


def check_deterministic_and_replicates_independent(case: Case) -> None:
    """The same run gives the same values; replicates 0-1 give the same whether 2 or 4 run."""
    four = evaluate(case, 4)
    again, two = evaluate(case, 4), evaluate(case, 2)
    assert again.keys() == four.keys() == two.keys(), "the value names changed between runs"
    for name in four:
        assert_same(again[name], four[name], f"{name} differs between two identical runs")
        assert_first_replicates(two[name], four[name], f"{name} of replicates 0-1 changed with R")


REGISTRY = METRICS
"""The registry of the kinds these checks are for."""
CHECKS = (check_names_and_shapes, check_deterministic_and_replicates_independent)
