"""Analytic rewards for toy data: a value per discrete state, a distance, a mode preference, linear,
and the truth's own log density (the oracle a reward-free filter is compared with)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from selfconsume.data.base import Categorical, HasDensity, HasModes, data_is
from selfconsume.errors import ConfigError
from selfconsume.registry import Example
from selfconsume.rewards.base import REWARDS, Params, Reward


class TableParams(Params):
    values: list[float] = Field(min_length=1)


class DistanceParams(Params):
    point: list[float] = Field(min_length=1)
    squared: bool = False


class ModePreferenceParams(Params):
    weights: list[float] = Field(min_length=1)


class LinearParams(Params):
    coef: list[float] = Field(min_length=1)
    bias: float = 0.0


def _check_dim(name: str, size: int, source: object) -> None:
    dim = getattr(source, "dim", size)
    if size != dim:
        raise ConfigError(
            f"curation.reward.params.{name}: has {size} entries, the data has dim {dim}"
        )


@REWARDS.register(
    "table",
    TableParams,
    needs=[data_is(Categorical, "discrete data")],
    example=Example(
        {"values": [0.0, 1.0]},
        config={"data": {"kind": "discrete", "params": {"probs": [0.5, 0.5]}}},
    ),
)
def table(params: TableParams, source: object) -> Reward:
    """r(x) = values[x] for a discrete state x in 0..len(values)-1 (one value per state)."""
    values = np.asarray(params.values, dtype=float)
    n_states = source.n_states
    if n_states != values.size:
        raise ConfigError(
            f"curation.reward.params.values: has {values.size} entries, the data has {n_states} states"
        )

    def reward(x: np.ndarray) -> np.ndarray:
        state = np.asarray(x)[..., 0]
        bad = state[(state < 0) | (state >= values.size)]
        if bad.size:
            raise ConfigError(f"curation.reward.params.values: no value for state {bad.flat[0]}")
        return values[state]

    return reward


@REWARDS.register("distance", DistanceParams, example=Example({"point": [0.0, 0.0]}))
def distance(params: DistanceParams, source: object) -> Reward:
    """r(x) = -|x - point| (or its square): prefers samples close to a point."""
    point = np.asarray(params.point, dtype=float)
    _check_dim("point", point.size, source)

    def reward(x: np.ndarray) -> np.ndarray:
        sq = ((x - point) ** 2).sum(-1)
        return -sq if params.squared else -np.sqrt(sq)

    return reward


@REWARDS.register(
    "mode_preference",
    ModePreferenceParams,
    needs=[data_is(HasModes, "a mixture truth with modes")],
    example=Example({"weights": [1.0] * 8}),
)
def mode_preference(params: ModePreferenceParams, source: object) -> Reward:
    """r(x) = weights[m] where m is the source's mode (`modes`, (M, dim)) nearest to x."""
    modes = np.asarray(source.modes, dtype=float)
    weights = np.asarray(params.weights, dtype=float)
    if weights.size != modes.shape[0]:
        raise ConfigError(
            f"curation.reward.params.weights: has {weights.size} entries, "
            f"the data has {modes.shape[0]} modes"
        )

    def reward(x: np.ndarray) -> np.ndarray:
        return weights[nearest_mode(x, modes)]

    return reward


def nearest_mode(x: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """Index of the nearest mode (M, dim) for each sample of x (..., dim)."""
    sq = (x * x).sum(-1)[..., None] - 2 * x @ modes.T + (modes * modes).sum(-1)
    return np.argmin(sq, axis=-1)


@REWARDS.register("linear", LinearParams, example=Example({"coef": [1.0, 0.0]}))
def linear(params: LinearParams, source: object) -> Reward:
    """r(x) = coef . x + bias."""
    coef = np.asarray(params.coef, dtype=float)
    _check_dim("coef", coef.size, source)

    def reward(x: np.ndarray) -> np.ndarray:
        return x @ coef + params.bias

    return reward


@REWARDS.register(
    "log_density", needs=[data_is(HasDensity, "a data source with a known density (log_prob)")]
)
def log_density(params: Params, source: object) -> Reward:
    """r(x) = log p_data(x), the true data's log density: the oracle score of "looks real"."""
    return source.log_prob
