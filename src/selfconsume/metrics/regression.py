"""Metrics of a fitted linear model against the regression truth: excess test error and sigma_hat^2."""

from __future__ import annotations

import numpy as np

from selfconsume.data.base import data_is
from selfconsume.data.regression import RegressionTruth
from selfconsume.metrics.base import METRICS, MetricContext, MetricValues
from selfconsume.models.base import model_is
from selfconsume.models.regression import HasCoefficients
from selfconsume.registry import Example


def excess_error(coef: np.ndarray, w_star: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """||w_hat - w*||^2_Sigma = E_x[(x . w_hat - x . w*)^2] for x ~ (0, Sigma): (R, d) -> (R,)."""
    diff = coef - w_star
    return np.einsum("rd,de,re->r", diff, cov, diff)


@METRICS.register(
    "regression",
    needs=[
        model_is(HasCoefficients, "a linear model (model.kind regression)"),
        data_is(RegressionTruth, "a regression truth (data.kind regression)"),
    ],
    example=Example(
        config={
            "data": {"kind": "regression", "params": {"dim": 3}},
            "model": {"kind": "regression"},
        }
    ),
    outputs=("test_error", "sigma_hat_sq"),
)
def regression(ctx: MetricContext) -> MetricValues:
    """test_error = ||w_hat - w*||^2_Sigma (the excess risk) and sigma_hat_sq, the noise estimate."""
    truth = ctx.source
    return {
        "test_error": excess_error(ctx.model.coef, truth.w_star, truth.design_cov),
        "sigma_hat_sq": ctx.model.sigma2,
    }
