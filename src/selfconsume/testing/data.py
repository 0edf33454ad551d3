"""The contract of a data source: real sets of shape (R, n, dim) drawn per replicate, the same for
the same stream, replicate r's the same whatever R; and what each capability it declares promises
(held-out test sets, labels, images in [-1, 1], a density)."""

from __future__ import annotations

import numpy as np

from selfconsume.data.base import DATA, HasDensity, HasLabels, HeldOut, Images
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


def source(case: Case) -> object:
    return DATA.make(case.kind, case.raw_params())


def draw(src: object, replicates: int = R, seed: int = 0) -> np.ndarray:
    return src.sample(replicates, N, Streams(seed).per_replicate("real", 0))


def check_sample_shapes(case: Case) -> None:
    """sample(R, n, rng) is an array (R, n, dim) of finite values (int64 states when discrete)."""
    src = source(case)
    assert isinstance(src.dim, int) and src.dim >= 1, f"dim {src.dim!r} is not a positive int"
    x = draw(src)
    assert x.shape == (R, N, src.dim), f"sample gave shape {x.shape}, expected {(R, N, src.dim)}"
    if getattr(src, "discrete", False):
        assert x.dtype == np.int64, f"a discrete source gave dtype {x.dtype}, expected int64"
    assert_finite(x, "a real set")


def check_deterministic(case: Case) -> None:
    """The same stream gives the same real sets, also from a second source built alike."""
    assert_same(draw(source(case)), draw(source(case)), "two draws from one stream differ")
    assert not np.array_equal(draw(source(case)), draw(source(case), seed=1)), (
        "two seeds gave the same real sets"
    )


def check_replicates_independent(case: Case) -> None:
    """Replicate r's real set does not depend on how many replicates are drawn."""
    src = source(case)
    assert_first_replicates(draw(src, 2), draw(src, 4), "replicates 0-1 changed with R")


def check_capabilities(case: Case) -> None:
    """Held-out test sets, labels, images and densities have the shapes their protocols say."""
    src = source(case)
    rng = lambda: Streams(0).per_replicate("test", 0)  # noqa: E731
    if isinstance(src, HeldOut):
        test = src.sample_test(R, N, rng())
        assert test.shape == (R, N, src.dim), f"sample_test gave shape {test.shape}"
        assert_first_replicates(src.sample_test(2, N, rng()), test, "test sets changed with R")
    if isinstance(src, HasLabels):
        x, y = src.sample_labelled(R, N, Streams(0).per_replicate("real", 0))
        assert_same(x, draw(src), "sample_labelled's rows differ from sample's")
        assert y.shape == (R, N) and np.all((y >= 0) & (y < src.n_classes)), "labels out of range"
    if isinstance(src, Images):
        assert int(np.prod(src.image_shape)) == src.dim, f"image_shape {src.image_shape} != dim"
        x = draw(src)
        assert x.min() >= -1 and x.max() <= 1, "image pixels outside [-1, 1]"
    if isinstance(src, HasDensity):
        logp = src.log_prob(draw(src))
        assert logp.shape == (R, N), f"log_prob gave shape {logp.shape}, expected {(R, N)}"
        assert not np.any(np.isnan(logp)), "log_prob gave NaN"


REGISTRY = DATA
"""The registry of the kinds these checks are for."""
CHECKS = (
    check_params_round_trip,
    check_sample_shapes,
    check_deterministic,
    check_replicates_independent,
    check_capabilities,
)
