"""Metrics of curated retraining: reward statistics, mass per state, divergence to the data,
entropy and the states lost (at probability 0).

For the discrete family every value is exact, computed from p_t's probabilities (in population mode
and in the sampled loop alike: E_{p_t} of the fitted p_t); other families use ctx.samples (n_test
draws of p_t per replicate).
"""

from __future__ import annotations

import numpy as np

from selfconsume.data.base import Categorical, data_is
from selfconsume.errors import ConfigError
from selfconsume.metrics.base import METRICS, MetricContext, MetricValues
from selfconsume.models.base import HasProbs, model_is
from selfconsume.registry import Example

QUANTILES = (0.1, 0.5, 0.9)
DISCRETE_RUN = Example(
    config={
        "data": {"kind": "discrete", "params": {"probs": [0.4, 0.3, 0.2, 0.1]}},
        "model": {"kind": "discrete"},
    }
)
"""The run the contract suite checks the discrete metrics in."""
CURATED_RUN = Example(
    config={
        "curation": {
            "kind": "bradley_terry",
            "k": 2,
            "reward": {"kind": "distance", "params": {"point": [0.0, 0.0]}},
        }
    }
)
"""The run the contract suite checks `reward` in: 8 Gaussians curated by distance to 0."""


def exp_reward_moments(p: np.ndarray, r: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """E[e^{beta r}] and Var[e^{beta r}] under weights p (R, n) over rewards r (R, n) or (n,),
    computed as e^{beta m} E[e^{beta (r - m)}] with m the largest reward of p's support: +inf
    where e^{beta r} itself overflows (a large beta), never NaN; 0 variance for a point mass."""
    r = np.broadcast_to(r, p.shape)
    m = np.max(np.where(p > 0, r, -np.inf), axis=-1, keepdims=True)
    e = np.exp(beta * (np.minimum(r, m) - m))
    mean = (p * e).sum(-1)
    var = (p * (e - mean[:, None]) ** 2).sum(-1)
    scale = beta * m[..., 0]
    with np.errstate(over="ignore", invalid="ignore"):  # 0 * inf lands in the discarded branch
        exp_mean = mean * np.exp(scale)
        exp_var = np.where(var > 0, var * np.exp(2 * scale), 0.0)
    return exp_mean, exp_var


def _with_exp_stats(out: MetricValues, p: np.ndarray, r: np.ndarray, beta: float) -> MetricValues:
    """Add exp_reward_mean and exp_reward_var, the talk's E[e^{beta r}] and Var[e^{beta r}];
    at beta = inf they are infinite and left out (the reward quantiles carry the argmax limit)."""
    if not np.isinf(beta):
        out["exp_reward_mean"], out["exp_reward_var"] = exp_reward_moments(p, r, beta)
    return out


def exact_reward_stats(p: np.ndarray, r: np.ndarray, beta: float) -> MetricValues:
    """Reward statistics under categorical p (R, S) with state rewards r (S,), exactly."""
    out = _with_exp_stats({"reward_mean": p @ r}, p, r, beta)
    order = np.argsort(r, kind="stable")
    cdf = np.cumsum(p[:, order], axis=1)
    for q in QUANTILES:  # the inverted-CDF quantile: smallest r with P(R <= r) >= q
        first = np.argmax(cdf >= q - 1e-12, axis=1)
        out[f"reward_q{round(100 * q)}"] = r[order][first]
    return out


def sample_reward_stats(r: np.ndarray, beta: float) -> MetricValues:
    """The same statistics estimated from rewards of samples, r (R, n)."""
    uniform = np.full(r.shape, 1.0 / r.shape[1])
    out = _with_exp_stats({"reward_mean": r.mean(axis=1)}, uniform, r, beta)
    for q in QUANTILES:
        out[f"reward_q{round(100 * q)}"] = np.quantile(r, q, axis=1, method="inverted_cdf")
    return out


def model_probs(ctx: MetricContext) -> np.ndarray | None:
    """p_t (R, S) of a discrete model, padded to the source's number of states; None otherwise."""
    if not isinstance(ctx.model, HasProbs):
        return None
    probs = ctx.model.probs
    states = max(probs.shape[1], ctx.source.n_states if isinstance(ctx.source, Categorical) else 0)
    return np.pad(probs, ((0, 0), (0, states - probs.shape[1])))


@METRICS.register(
    "reward",
    example=CURATED_RUN,
    outputs=(
        "reward_mean",
        "exp_reward_mean",
        "exp_reward_var",
        "reward_q10",
        "reward_q50",
        "reward_q90",
    ),
)
def reward(ctx: MetricContext) -> MetricValues:
    """reward_mean, exp_reward_mean (E[e^{beta r}]), exp_reward_var, reward_q10/q50/q90 under p_t."""
    if ctx.reward is None:
        raise ConfigError("metrics: reward needs a curation reward (curation.reward)")
    p = model_probs(ctx)
    if p is not None:
        r = ctx.reward(np.arange(p.shape[1], dtype=np.int64)[:, None])
        return exact_reward_stats(p, r, ctx.beta)
    return sample_reward_stats(ctx.reward(ctx.samples), ctx.beta)


@METRICS.register(
    "mass",
    needs=[model_is(HasProbs, "a discrete model (use `modes` for mixtures)")],
    example=DISCRETE_RUN,
    outputs=("mass_{i}",),
)
def mass(ctx: MetricContext) -> MetricValues:
    """mass_i: p_t's probability of state i, exact (discrete models; for mixtures see `modes`)."""
    p = model_probs(ctx)
    return {f"mass_{i}": p[:, i] for i in range(p.shape[1])}


@METRICS.register(
    "divergence",
    needs=[
        model_is(HasProbs, "a discrete model"),
        data_is(Categorical, "a discrete data source"),
    ],
    example=DISCRETE_RUN,
    outputs=("kl_data", "tv_data"),
)
def divergence(ctx: MetricContext) -> MetricValues:
    """kl_data = KL(p_t || p_data) (finite while p_t stays in the data's support), tv_data."""
    p, truth = model_probs(ctx), ctx.source.probs
    q = np.pad(truth, (0, p.shape[1] - truth.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q), 0.0)
    return {"kl_data": terms.sum(-1), "tv_data": 0.5 * np.abs(p - q).sum(-1)}


DISCRETE_MODEL = model_is(HasProbs, "a discrete model")


@METRICS.register("entropy", needs=[DISCRETE_MODEL], example=DISCRETE_RUN, outputs=("entropy",))
def entropy(ctx: MetricContext) -> MetricValues:
    """entropy = H(p_t) = -sum_i p_i log p_i in nats, exact (discrete models); it falls as states die."""
    p = model_probs(ctx)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"entropy": -np.where(p > 0, p * np.log(p), 0.0).sum(-1)}


@METRICS.register(
    "states_lost", needs=[DISCRETE_MODEL], example=DISCRETE_RUN, outputs=("states_lost",)
)
def states_lost(ctx: MetricContext) -> MetricValues:
    """states_lost: how many states of the data's support p_t gives probability 0 (discrete models).

    Under replace such a state is never sampled again; without a discrete source every state counts."""
    p = model_probs(ctx)
    support = (
        np.pad(ctx.source.probs, (0, p.shape[1] - ctx.source.n_states)) > 0
        if isinstance(ctx.source, Categorical)
        else np.ones(p.shape[1], bool)
    )
    return {"states_lost": ((p == 0) & support).sum(-1).astype(float)}
