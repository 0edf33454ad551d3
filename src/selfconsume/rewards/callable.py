"""A user's reward: `module:function` taking samples (m, dim) and returning one score each (m,)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
from pydantic import Field, field_validator

from selfconsume.errors import ConfigError
from selfconsume.registry import Example, reading_stored
from selfconsume.rewards.base import REWARDS, Params, Reward


def _split(target: str) -> tuple[str, str]:
    """(module, function) of `module:function`; ValueError if it has another form."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'module:function', got {target!r}")
    return module_name, attr


def resolve(target: str) -> Callable[[np.ndarray], np.ndarray]:
    """Import `module:function` (dots allowed on both sides); ValueError says why it failed."""
    module_name, attr = _split(target)
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (Exception, SystemExit) as exc:  # any failure to import (sys.exit too) is bad input
        reason = (str(exc).splitlines() or [""])[0]
        raise ValueError(f"cannot import {target!r} ({type(exc).__name__}: {reason})") from None
    if not callable(obj):
        raise ValueError(f"{target!r} is not callable")
    return obj


class CallableParams(Params):
    target: str
    batch_size: int = Field(default=65536, ge=1)

    @field_validator("target")
    @classmethod
    def _importable(cls, target: str) -> str:
        """Importable when a run is planned; read back from a store, only of the right form."""
        if reading_stored():
            _split(target)
        else:
            resolve(target)
        return target


@REWARDS.register(
    "callable", CallableParams, example=Example({"target": "selfconsume.testing:sample_norm"})
)
def user_callable(params: CallableParams, source: object) -> Reward:
    """r = target(samples) evaluated in batches of `batch_size`; each batch must give (m,) finite."""
    fn = resolve(params.target)

    def reward(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(-1, x.shape[-1])
        out = np.empty(flat.shape[0])
        for start in range(0, flat.shape[0], params.batch_size):
            batch = flat[start : start + params.batch_size]
            scores = np.asarray(fn(batch), dtype=float)
            if scores.shape != (batch.shape[0],):
                raise ConfigError(
                    f"curation.reward.params.target: {params.target} returned shape {scores.shape} "
                    f"for {batch.shape[0]} samples, expected ({batch.shape[0]},)"
                )
            out[start : start + batch.shape[0]] = scores
        return out.reshape(x.shape[:-1])

    return reward
