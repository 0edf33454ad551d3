"""Metrics of a fitted Gaussian family: its parameters and its closed-form W2 to a Gaussian truth."""

from __future__ import annotations

import numpy as np

from selfconsume.data.base import GaussianTruth
from selfconsume.metrics.base import METRICS, MetricContext, MetricValues
from selfconsume.models.base import HasMoments, model_is
from selfconsume.registry import Example
from selfconsume.theory.gaussian import gaussian_w2_sq


@METRICS.register(
    "gaussian_params",
    needs=[model_is(HasMoments, "a Gaussian model (mean, cov)")],
    example=Example(
        config={"data": {"kind": "gaussian", "params": {"dim": 2}}, "model": {"kind": "gaussian"}}
    ),
    outputs=("mean", "std", "mean_error", "cov_trace", "cov_logdet"),
)
def gaussian_params(ctx: MetricContext) -> MetricValues:
    """Fitted parameters: mean and std in 1-D; mean_error, cov_trace and cov_logdet in any dim."""
    mean, cov = ctx.model.mean, ctx.model.cov
    out: MetricValues = {
        "cov_trace": np.trace(cov, axis1=1, axis2=2),
        "cov_logdet": np.linalg.slogdet(cov)[1],
    }
    if mean.shape[1] == 1:
        out["mean"] = mean[:, 0]
        out["std"] = np.sqrt(cov[:, 0, 0])
    if isinstance(ctx.source, GaussianTruth):
        out["mean_error"] = np.linalg.norm(mean - ctx.source.mean, axis=-1)
    return out


@METRICS.register("w2", outputs=("w2", "w2_sq"))
def w2(ctx: MetricContext) -> MetricValues:
    """W2 between p_t and the truth: closed form for a Gaussian fit of Gaussian data, otherwise
    exact optimal transport between n_test samples of p_t and the test set."""
    if isinstance(ctx.model, HasMoments) and isinstance(ctx.source, GaussianTruth):
        sq = gaussian_w2_sq(ctx.model.mean, ctx.model.cov, ctx.source.mean, ctx.source.cov)
    else:
        from selfconsume.metrics.transport import w2_empirical

        sq = w2_empirical(ctx.samples, ctx.test) ** 2
    return {"w2": np.sqrt(sq), "w2_sq": sq}
