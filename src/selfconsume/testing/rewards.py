"""The contract of a reward: one finite score per sample for samples of any leading shape
(..., dim) -> (...), each sample scored on its own (the same alone as in a batch), the same
for the same samples."""

from __future__ import annotations

import numpy as np

from selfconsume.data.base import DATA
from selfconsume.rewards.base import REWARDS, build_reward
from selfconsume.testing.base import Case, assert_finite, assert_same, check_params_round_trip


def scored(case: Case) -> tuple[np.ndarray, object]:
    """Samples (2, 3, 4, dim) of the example's data and the reward built on that data."""
    data = case.run()["data"]
    source = DATA.make(data["kind"], data.get("params"))
    x = source.sample(2, 12, np.random.default_rng(0)).reshape(2, 3, 4, source.dim)
    return x, build_reward(case.kind, case.raw_params(), source)


def check_scores_each_sample(case: Case) -> None:
    """(..., dim) -> (...), finite; a sample scores the same alone, in a batch, and twice."""
    x, reward = scored(case)
    out = np.asarray(reward(x))
    assert out.shape == x.shape[:-1], f"scores have shape {out.shape}, expected {x.shape[:-1]}"
    assert_finite(out, "a score")
    assert_same(reward(x), out, "the same samples scored twice differ")
    np.testing.assert_allclose(
        reward(x[1, 2]), out[1, 2], rtol=1e-6, atol=1e-9, err_msg="a sample scored alone differs"
    )


REGISTRY = REWARDS
"""The registry of the kinds these checks are for."""
CHECKS = (check_params_round_trip, check_scores_each_sample)
