"""Metrics of a fitted Gaussian family: its parameters and its closed-form W2 to a Gaussian truth."""

from __future__ import annotations

import numpy as np

from selfconsume.data.base import GaussianTruth
from selfconsume.metrics.base import METRICS, MetricContext, MetricValues
from selfconsume.models.base import HasMoments, model_is
from selfconsume.registry import Example


def gaussian_w2_sq(
    mean: np.ndarray, cov: np.ndarray, true_mean: np.ndarray, true_cov: np.ndarray
) -> np.ndarray:
    """Squared W2 between N(mean_r, cov_r) (R, d), (R, d, d) and N(true_mean, true_cov).

    W2^2 = |m - m0|^2 + tr(S + S0 - 2 (S0^1/2 S S0^1/2)^1/2) (Bures); in 1-D, (m-m0)^2 + (s-s0)^2."""
    shift = ((mean - true_mean) ** 2).sum(-1)
    if mean.shape[-1] == 1:
        return shift + (np.sqrt(cov[:, 0, 0]) - np.sqrt(true_cov[0, 0])) ** 2
    w, v = np.linalg.eigh(true_cov)  # symmetric square root of the truth's covariance
    root0 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root0 @ cov @ root0
    eig = np.clip(np.linalg.eigvalsh(inner), 0, None)
    bures = np.trace(cov, axis1=1, axis2=2) + np.trace(true_cov) - 2 * np.sqrt(eig).sum(-1)
    return shift + np.clip(bures, 0, None)


@METRICS.register(
    "gaussian_params",
    needs=[model_is(HasMoments, "a Gaussian model (mean, cov)")],
    example=Example(
        config={"data": {"kind": "gaussian", "params": {"dim": 2}}, "model": {"kind": "gaussian"}}
    ),
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


@METRICS.register("w2")
def w2(ctx: MetricContext) -> MetricValues:
    """W2 between p_t and the truth: closed form for a Gaussian fit of Gaussian data, otherwise
    exact optimal transport between n_test samples of p_t and the test set."""
    if isinstance(ctx.model, HasMoments) and isinstance(ctx.source, GaussianTruth):
        sq = gaussian_w2_sq(ctx.model.mean, ctx.model.cov, ctx.source.mean, ctx.source.cov)
    else:
        from selfconsume.metrics.transport import w2_empirical

        sq = w2_empirical(ctx.samples, ctx.test) ** 2
    return {"w2": np.sqrt(sq), "w2_sq": sq}
