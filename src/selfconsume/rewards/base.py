"""The reward registry: a reward is a function of samples, (..., dim) -> (...), evaluated in batches.

`build_reward` wraps the registered function so that every call is checked: the result must have one
finite value per sample, or a `ConfigError` names the reward.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from selfconsume.errors import ConfigError
from selfconsume.kinds import REWARD_KINDS
from selfconsume.registry import Params, Registry

Reward = Callable[[np.ndarray], np.ndarray]

REWARDS: Registry[Callable[..., Reward]] = Registry("curation.reward", REWARD_KINDS)
"""Reward factories by kind: `factory(params, source) -> reward`, source being the data source."""


def checked(reward: Reward, label: str) -> Reward:
    """Wrap a reward so that a wrong shape or a non-finite value is a clear error."""

    def call(x: np.ndarray) -> np.ndarray:
        out = np.asarray(reward(x), dtype=float)
        if out.shape != x.shape[:-1]:
            raise ConfigError(
                f"curation.reward ({label}): returned shape {out.shape}, expected {x.shape[:-1]}"
            )
        if not np.all(np.isfinite(out)):
            raise ConfigError(f"curation.reward ({label}): returned a non-finite value")
        return out

    return call


def build_reward(kind: str, params: dict, source: object) -> Reward:
    params_obj = REWARDS.parse_params(kind, params, "curation.reward.params")
    entry = REWARDS.get(kind)
    for need in entry.needs:
        if not need.check(source, None):
            raise ConfigError(f"curation.reward.kind: {kind} needs {need.what}")
    return checked(entry.obj(params_obj, source), kind)


__all__ = ["REWARDS", "Params", "Reward", "build_reward", "checked"]
