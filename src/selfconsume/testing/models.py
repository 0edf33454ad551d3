"""The contract of a model family (the `Model` protocol): fit and sample with the documented
shapes, the same numbers for the same streams, a state that round-trips, a warm start from its own
samples, and replicate r's chain independent of how many replicates run."""

from __future__ import annotations

import numpy as np

from selfconsume.data.base import DATA
from selfconsume.models.base import MODELS
from selfconsume.plan import image_shape, truth
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

DRAWN = 16
"""Samples per replicate a check draws from a fitted model."""


def real_set(case: Case, replicates: int) -> tuple[object, np.ndarray]:
    """The example's data source and a real set (replicates, N, dim) from the run's stream."""
    data = case.run()["data"]
    source = DATA.make(data["kind"], data.get("params"))
    return source, source.sample(replicates, N, Streams(0).per_replicate("real", 0))


def family(case: Case, source: object, replicates: int, seed: int = 0) -> object:
    """The family built as a run builds it (with the image shape or the truth it asks for)."""
    cls = MODELS.get(case.kind).obj
    return cls(
        case.params(),
        dim=source.dim,
        replicates=replicates,
        streams=Streams(seed),
        **image_shape(cls, source),
        **truth(cls, source),
    )


def fitted(case: Case, replicates: int = R) -> tuple[object, object, dict[str, np.ndarray]]:
    source, x = real_set(case, replicates)
    model = family(case, source, replicates)
    return model, source, model.fit(x, None, 0, False)


def draw(model: object, n: int = DRAWN) -> np.ndarray:
    """n samples per replicate from the per-replicate stream the run loop uses."""
    return model.sample(n, Streams(7).per_replicate("contract", 1), 1)


def check_fit_and_sample_shapes(case: Case) -> None:
    """fit returns finite diagnostics of shape (R,); sample returns (R, n, dim), finite."""
    model, source, diagnostics = fitted(case)
    for name, value in diagnostics.items():
        assert np.shape(value) == (R,), f"diagnostic {name} has shape {np.shape(value)}"
        assert_finite(value, f"diagnostic {name}")
    x = draw(model)
    assert x.shape == (R, DRAWN, source.dim), f"sample gave shape {x.shape}"
    assert_finite(x, "a sample")


def check_deterministic_and_state_round_trip(case: Case) -> None:
    """Two fits from one seed sample alike; a model of another seed loaded with the state
    samples alike too (the state holds everything a resumed run needs)."""
    a, source, _ = fitted(case)
    b, _, _ = fitted(case)
    assert_same(draw(a), draw(b), "two fits from one seed sample differently")
    c = family(case, source, R, seed=99)
    c.load_state_dict(a.state_dict())
    assert_same(draw(a), draw(c), "a model loaded with the state samples differently")


def check_warm_start(case: Case) -> None:
    """Generation 1 fine-tunes from generation 0 on its own (weighted) samples, staying finite."""
    model, _, _ = fitted(case)
    x = draw(model, N)
    diagnostics = model.fit(x, np.ones(x.shape[:2]), 1, True)
    for name, value in diagnostics.items():
        assert_finite(value, f"warm-start diagnostic {name}")
    assert_finite(draw(model), "a sample after a warm start")


def check_replicates_independent(case: Case) -> None:
    """Replicates 0 and 1 fit and sample the same whether 2 or 4 replicates run."""
    small, _, _ = fitted(case, replicates=2)
    large, _, _ = fitted(case, replicates=4)
    assert_first_replicates(draw(small), draw(large), "replicates 0-1 changed with R")


REGISTRY = MODELS
"""The registry of the kinds these checks are for."""
CHECKS = (
    check_params_round_trip,
    check_fit_and_sample_shapes,
    check_deterministic_and_state_round_trip,
    check_warm_start,
    check_replicates_independent,
)
