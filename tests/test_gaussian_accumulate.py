"""The Gaussian family's `accumulate` fit from running moment stats equals a refit on the pool."""

from __future__ import annotations

import numpy as np
import pytest

from selfconsume.models.gaussian import GaussianModel, GaussianModelParams, weighted_moments
from selfconsume.seeding import Streams


@pytest.mark.parametrize("estimator", ["unbiased", "mle"])
def test_running_stats_match_a_refit_on_the_whole_pool(estimator):
    rng = np.random.default_rng(0)
    r, d = 4, 2
    real = 3.0 + rng.standard_normal((r, 10, d))
    model = GaussianModel(GaussianModelParams(estimator=estimator), d, r, Streams(0))
    model.fit(real, None, 0, False)
    x, w = real, np.ones((r, 10))
    for t, size in enumerate([5, 0, 7, 5, 3]):
        batch = rng.standard_normal((r, size, d)) * (t + 1)
        weights = (rng.random((r, size)) < 0.6).astype(float)
        weights[0] = 0.0  # replicate 0 keeps nothing: it still fits its real set and pool
        x, w = np.concatenate([x, batch], axis=1), np.concatenate([w, weights], axis=1)
        model.fit_more(batch, weights)
        mean, cov = weighted_moments(x, w, estimator == "unbiased")
        np.testing.assert_allclose(model.mean, mean, rtol=1e-12)
        np.testing.assert_allclose(model.cov, cov, rtol=1e-12)
        if t == 2:  # a resumed model goes on from its checkpoint
            resumed = GaussianModel(GaussianModelParams(estimator=estimator), d, r, Streams(0))
            resumed.load_state_dict(model.state_dict())
            model = resumed
