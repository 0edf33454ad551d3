"""The one step that validates a config against the kinds; `build` (from `loop.build`) then
makes the objects a run needs.

`resolve` turns a raw mapping into the resolved `Config`: the schema, then every `params` block
into its kind's typed model (defaults filled), the scheme's derived keys, and every capability a
metric, reward, curation, scheme or population update needs of the data and the model. It runs
before any store is opened, so bad input writes nothing. The resolved config is the run's identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import ValidationError

from selfconsume.config import Config, CurationConfig, apply_overrides, expand_sweep, read_raw
from selfconsume.data.base import DATA, DataSource, HeldOut, Images
from selfconsume.errors import ConfigError
from selfconsume.limits import check_memory
from selfconsume.loop.build import Plan, build, image_shape, truth
from selfconsume.loop.cures import check_cures, resolve_cures
from selfconsume.loop.schemes import resolve_scheme
from selfconsume.metrics.base import METRICS
from selfconsume.models.base import (
    MODELS,
    ChecksData,
    ChecksFitSize,
    HasPopulation,
    ImageModel,
    PopulationOnlyParams,
)
from selfconsume.registry import Need, error_line
from selfconsume.rewards.base import REWARDS, build_reward
from selfconsume.seeding import Streams

__all__ = ["Plan", "build", "check", "from_json", "image_shape", "load", "resolve", "truth"]
"""The plan's API: load and resolve a config, then build its live objects (`loop.build`)."""

PROBE_SAMPLES = 4
"""Samples of the real data on which a reward is probed (shape, finiteness) before a run starts."""


def load(source: str, overrides: Sequence[str] = (), quick: bool = False) -> list[Config]:
    """Load a config file or preset, apply quick settings and overrides, expand the sweep.

    Returns one resolved Config per run of the sweep (one if there is no sweep)."""
    raw, label = read_raw(source)
    raw = apply_overrides(raw, tuple(overrides), quick)
    base = resolve(raw, label)
    return [resolve(r, label) for r in expand_sweep(raw, base.sweep)]


def resolve(raw: dict[str, Any] | Config, label: str = "config") -> Config:
    """The resolved Config of a raw mapping (or of a Config read back from JSON); every error is a
    one-line ConfigError naming the key path."""
    cfg = typed(raw, label)
    check(cfg)
    return cfg


def typed(raw: dict[str, Any] | Config, label: str = "config") -> Config:
    """The resolution of `resolve` less its cross-key `check`: the schema, every params block
    typed, the scheme's derived keys. It builds no data source and calls no reward, so a store's
    reader resolves its configs with it (under `registry.stored_config`, it imports nothing)."""
    try:
        cfg = raw if isinstance(raw, Config) else Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(": ".join(filter(None, (label, error_line(exc, ""))))) from None
    data = DATA.parse_params(cfg.data.kind, cfg.data.params, "data.params")
    model = MODELS.parse_params(cfg.model.kind, cfg.model.params, "model.params")
    update: dict[str, Any] = {
        "data": cfg.data.model_copy(update={"params": data}),
        "model": cfg.model.model_copy(update={"params": model}),
        "scheme": resolve_scheme(cfg.scheme, cfg.data.n_real),
    }
    if cfg.curation is not None:
        update["curation"] = _resolve_curation(cfg.curation)
    if cfg.cures:
        update["cures"] = resolve_cures(cfg.cures)
    return cfg.model_copy(update=update)


def _resolve_curation(curation: CurationConfig) -> CurationConfig:
    """Typed selection and reward params; a rule by a reward needs one, a reward-free kind
    refuses one."""
    from selfconsume.loop.selection import SELECTIONS

    kind = curation.kind
    params = SELECTIONS.parse_params(kind, curation.params, "curation.params")
    reward = curation.reward
    if not SELECTIONS.get(kind).obj.rewarded:
        if reward is not None:
            raise ConfigError(f"curation.reward: curation kind {kind} is reward-free (drop it)")
        return curation.model_copy(update={"params": params})
    if reward is None:
        raise ConfigError(f"curation.reward: curation kind {kind} needs a reward")
    reward_params = REWARDS.parse_params(reward.kind, reward.params, "curation.reward.params")
    typed = reward.model_copy(update={"params": reward_params})
    return curation.model_copy(update={"params": params, "reward": typed})


def from_json(text: str) -> Config:
    """A resolved Config sent as JSON (to a worker) back into its typed form."""
    return resolve(Config.model_validate_json(text))


def check(cfg: Config) -> None:
    """Cross-key checks: the data source can be built (files are read and checked), every metric,
    reward and population update finds what it needs in the data and the model; the run fits in
    memory (estimated from the config, before anything is allocated)."""
    check_memory(cfg)
    source = DATA.get(cfg.data.kind).obj(cfg.data.params)
    family = MODELS.get(cfg.model.kind).obj
    _check_data_fits(cfg, source, family)
    probe = family(
        cfg.model.params,
        dim=source.dim,
        replicates=1,
        streams=Streams(cfg.seed),
        **image_shape(family, source),
        **truth(family, source),
    )
    for name in cfg.metrics:
        if name not in METRICS.names():
            known = ", ".join(METRICS.names())
            raise ConfigError(f"metrics: unknown metric {name!r} (known: {known})")
        _check_needs(f"metrics: {name}", METRICS.get(name).needs, cfg, source, probe)
    if "feature_prd" in cfg.metrics and {"prd", "density_coverage"} & set(cfg.metrics):
        raise ConfigError(
            "metrics: feature_prd stores precision, recall, density and coverage in feature space; "
            "drop prd / density_coverage (the same names in pixel space)"
        )
    if "reward" in cfg.metrics and (cfg.curation is None or cfg.curation.reward is None):
        raise ConfigError("metrics: reward needs a curation reward (curation.reward)")
    if cfg.curation is not None:
        _check_curation(cfg, source, probe)
    if cfg.model.population:
        _check_population(cfg, probe, source)
    else:
        _check_population_only(cfg.model.params)
    check_cures(cfg, source, probe)


def _check_population_only(params: Any) -> None:
    """A param the family reads only in population mode (its `population_only`), set away from
    its default in a sampled run, would change nothing: bad input."""
    if not isinstance(params, PopulationOnlyParams):
        return
    for key in params.population_only:
        if getattr(params, key) != type(params).model_fields[key].default:
            raise ConfigError(
                f"model.params.{key}: only read in population mode (model.population)"
            )


def _check_data_fits(cfg: Config, source: DataSource, family: type) -> None:
    """Image data needs a family declared an `ImageModel`; a finite source's parts must hold
    data.n_real and data.n_test rows; the real set must be large enough for the family's first
    fit (`ChecksFitSize`); the feature network the data names must load and work."""
    if isinstance(source, Images) and not issubclass(family, ImageModel):
        raise ConfigError(
            f"model.kind: family {cfg.model.kind!r} cannot take images (data.kind {cfg.data.kind!r})"
        )
    if isinstance(source, HeldOut):
        source.check_sizes(cfg.data.n_real, cfg.data.n_test)
    if getattr(source, "feature_net", None) is not None:  # a bad network file is bad input
        source.feature_network()
    if isinstance(cfg.model.params, ChecksData):  # what the params ask of the data (labels, images)
        cfg.model.params.check_data(source)
    if isinstance(cfg.model.params, ChecksFitSize):  # generation 0 fits the real set
        cfg.model.params.check_fit_size(cfg.data.n_real, "data.n_real")


def _check_needs(
    where: str, needs: tuple[Need, ...], cfg: Config, source: object, model: object
) -> None:
    for need in needs:
        if not need.check(source, model):
            raise ConfigError(
                f"{where} needs {need.what} (data.kind {cfg.data.kind!r}, "
                f"model.kind {cfg.model.kind!r})"
            )


def _check_population(cfg: Config, probe: object, source: DataSource) -> None:
    if not isinstance(probe, HasPopulation):
        raise ConfigError(
            f"model.population: family {cfg.model.kind!r} has no exact infinite-sample update"
        )
    if cfg.scheme.kind not in probe.population_schemes:
        supported = ", ".join(sorted(probe.population_schemes)) or "none"
        raise ConfigError(
            f"model.population: family {cfg.model.kind!r} has no exact update for scheme "
            f"{cfg.scheme.kind!r} (supported: {supported})"
        )
    if cfg.curation is not None and not probe.population_curation:
        raise ConfigError(
            f"curation: family {cfg.model.kind!r} has no exact curated update (drop curation "
            "or model.population)"
        )
    # p_0 on the probe: a population target the source cannot give is found here
    probe.population_start(source.sample(1, cfg.data.n_real, np.random.default_rng(0)), source)


def _check_curation(cfg: Config, source: DataSource, probe: object) -> None:
    """The selection finds what it needs in the data, runs in this mode, and its reward (if it
    keeps by one) fits the data."""
    from selfconsume.loop.selection import SELECTIONS, ExactSelection

    kind = cfg.curation.kind
    entry = SELECTIONS.get(kind)
    _check_needs(f"curation.kind: {kind}", entry.needs, cfg, source, probe)
    if cfg.model.population and not issubclass(entry.obj, ExactSelection):
        raise ConfigError(f"curation.kind: {kind} has no exact infinite-sample update")
    entry.obj.check(cfg.curation.params, cfg.model.population, "curation.params")
    if entry.obj.rewarded:
        reward = cfg.curation.reward.kind
        needs = REWARDS.get(reward).needs
        _check_needs(f"curation.reward.kind: {reward}", needs, cfg, source, probe)
        _probe_reward(cfg, source)


def _probe_reward(cfg: Config, source: DataSource) -> None:
    """Call the reward on a few real samples, before the store is opened: a reward that cannot
    score the data (wrong shape, or it raises, or it calls sys.exit) is bad input naming the key
    and the callable. (A user callable that fails later, on a model's samples, fails its run.)"""
    spec = cfg.curation.reward
    reward = build_reward(spec.kind, spec.params, source)
    try:
        reward(source.sample(1, PROBE_SAMPLES, np.random.default_rng(0)))
    except ConfigError:
        raise
    except (Exception, SystemExit) as exc:
        target = getattr(spec.params, "target", None)
        where = (
            f"curation.reward.params.target: {target}"
            if target
            else f"curation.reward: {spec.kind}"
        )
        raise ConfigError(
            f"{where} raised {_one_line(exc)} on {PROBE_SAMPLES} real samples (before any run)"
        ) from None


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
