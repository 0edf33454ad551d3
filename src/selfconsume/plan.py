"""From a validated Config to the objects a run needs; also the cross-key checks of a config."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from selfconsume import kinds  # noqa: F401  (fills the registries)
from selfconsume.config import Config
from selfconsume.data.base import DATA
from selfconsume.errors import ConfigError
from selfconsume.metrics.base import METRICS
from selfconsume.models.base import MODELS
from selfconsume.rewards.base import REWARDS, Reward, build_reward
from selfconsume.seeding import Streams, arm_key


@dataclass
class Plan:
    """The live objects of one run."""

    cfg: Config
    source: Any
    model: Any
    reward: Reward | None
    streams: Streams


def check_config(cfg: Config) -> None:
    """Checks that span several keys: kinds exist, params validate, the data source can be built
    (files are read and checked), population support, k = inf."""
    DATA.get(cfg.data.kind).obj(DATA.parse_params(cfg.data.kind, cfg.data.params, "data.params"))
    MODELS.parse_params(cfg.model.kind, cfg.model.params, "model.params")
    for name in cfg.metrics:
        if name not in {e.kind for e in METRICS.kinds()}:
            known = ", ".join(e.kind for e in METRICS.kinds())
            raise ConfigError(f"metrics: unknown metric {name!r} (known: {known})")
    if "reward" in cfg.metrics and cfg.curation is None:
        raise ConfigError("metrics: reward needs a curation reward (curation.reward)")
    if cfg.scheme.kind == "mix" and cfg.scheme.lam is None:
        raise ConfigError("scheme.lam: the mix scheme needs lam (any value >= 0)")
    if cfg.curation is not None:
        REWARDS.parse_params(
            cfg.curation.reward.kind, cfg.curation.reward.params, "curation.reward.params"
        )
        if math.isinf(cfg.curation.k) and not cfg.model.population:
            raise ConfigError("curation.k: k = .inf is only defined in population mode")
    if cfg.model.population:
        family = MODELS.get(cfg.model.kind).obj
        schemes = getattr(family, "population_schemes", frozenset())
        if cfg.scheme.kind not in schemes:
            raise ConfigError(
                f"model.population: family {cfg.model.kind!r} has no exact update for scheme "
                f"{cfg.scheme.kind!r} (supported: {', '.join(sorted(schemes)) or 'none'})"
            )
        if cfg.curation is not None and not getattr(family, "population_curation", False):
            raise ConfigError(
                f"curation: family {cfg.model.kind!r} has no exact curated update (drop curation "
                "or model.population)"
            )


def build(cfg: Config) -> Plan:
    """Instantiate the data source, the model family and the reward of a run."""
    entry = DATA.get(cfg.data.kind)
    source = entry.obj(DATA.parse_params(cfg.data.kind, cfg.data.params, "data.params"))
    streams = Streams(cfg.seed, arm_key(cfg))
    model_entry = MODELS.get(cfg.model.kind)
    params = MODELS.parse_params(cfg.model.kind, cfg.model.params, "model.params")
    model = model_entry.obj(params, dim=source.dim, replicates=cfg.replicates, streams=streams)
    reward = None
    if cfg.curation is not None:
        reward = build_reward(cfg.curation.reward.kind, cfg.curation.reward.params, source)
    return Plan(cfg, source, model, reward, streams)
