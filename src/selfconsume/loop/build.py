"""The live objects of one run (`Plan`), built from a resolved config: the data source, the
model family, the scheme, the curation's reward or score, the cures and the random streams.

Part of the loop (the loop builds its plan from the config it is handed); `selfconsume.plan`
validates a config before any of this runs. What a family is built with follows from the
capabilities it declares (`ShapedImageModel`, `ReadsTruth`, `Conditional` in `models.base`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from selfconsume.config import Config
from selfconsume.data.base import DATA, DataSource, Images
from selfconsume.loop.cures import Cure, build_cures
from selfconsume.loop.schemes import Scheme, scheme_of
from selfconsume.loop.selection import Selection, build_selection
from selfconsume.models.base import MODELS, Conditional, Model, ReadsTruth, ShapedImageModel
from selfconsume.rewards.base import Reward, build_reward
from selfconsume.seeding import Streams, arm_key


@dataclass
class Plan:
    """The live objects of one run."""

    cfg: Config
    source: DataSource
    model: Model
    scheme: Scheme
    reward: Reward | None
    streams: Streams
    selection: Selection | None = None
    """The curation's selection rule (None: no curation)."""
    cures: list[Cure] = field(default_factory=list)
    """The interventions of the config's `cures:` block."""
    conditional: bool = False
    """Whether the model trains on labels and samples for prompts (a `Conditional` family whose
    params ask for it): found here, once, not looked up during the run."""


def image_shape(family: type, source: DataSource) -> dict[str, Any]:
    """The `image_shape` keyword for a `ShapedImageModel` family on images."""
    if issubclass(family, ShapedImageModel) and isinstance(source, Images):
        return {"image_shape": tuple(source.image_shape)}
    return {}


def truth(family: type, source: DataSource) -> dict[str, Any]:
    """The `truth` keyword (the data source) for a `ReadsTruth` family, say a regression family
    sampling with the data's true noise."""
    return {"truth": source} if issubclass(family, ReadsTruth) else {}


def is_conditional(model: object) -> bool:
    """Whether a built model trains on labels: a `Conditional` family that says it does."""
    return isinstance(model, Conditional) and model.conditional


def make_model(cfg: Config, source: DataSource, streams: Streams) -> Model:
    """A fresh instance of the run's model family (the run's model, or a frozen copy of p_0)."""
    family = MODELS.get(cfg.model.kind).obj
    return family(
        cfg.model.params,
        dim=source.dim,
        replicates=cfg.replicates,
        streams=streams,
        **image_shape(family, source),
        **truth(family, source),
    )


def build(cfg: Config) -> Plan:
    """Instantiate the data source, the model family, the scheme, the reward or score and the
    cures of a run."""
    source = DATA.get(cfg.data.kind).obj(cfg.data.params)
    streams = Streams(cfg.seed, arm_key(cfg))
    model = make_model(cfg, source, streams)
    scheme = scheme_of(cfg.scheme, cfg.data.n_real)
    reward, selection = None, None
    if cfg.curation is not None:
        selection = build_selection(cfg.curation.kind, cfg.curation.params, source)
        if selection.rewarded:
            reward = build_reward(cfg.curation.reward.kind, cfg.curation.reward.params, source)
    cures = build_cures(cfg, source)
    return Plan(
        cfg, source, model, scheme, reward, streams, selection, cures, is_conditional(model)
    )
