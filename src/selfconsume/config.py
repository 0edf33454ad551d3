"""Experiment configuration: YAML validated by pydantic, `--set` overrides, sweeps and presets.

Every error is a `ConfigError` whose one-line message names the offending key path or file.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from selfconsume.errors import ConfigError

SCHEMES = ("replace", "mix", "accumulate", "accumulate_subsample", "fresh")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    kind: str
    n_real: int = Field(ge=2)
    n_test: int = Field(default=1000, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(_Strict):
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    warm_start: bool = False
    population: bool = False


class SchemeConfig(_Strict):
    kind: Literal["replace", "mix", "accumulate", "accumulate_subsample", "fresh"]
    lam: float | None = Field(default=None, ge=0)
    n_synthetic: int | None = Field(default=None, ge=1)


class RewardConfig(_Strict):
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class CurationConfig(_Strict):
    """`bradley_terry` uses k and beta; `top_fraction` uses fraction; `threshold` uses threshold."""

    kind: Literal["bradley_terry", "top_fraction", "threshold"]
    reward: RewardConfig
    k: float = Field(default=4, ge=1)
    beta: float = Field(default=1.0, ge=0)
    fraction: float = Field(default=0.5, gt=0, le=1)
    threshold: float = 0.0

    @field_validator("k")
    @classmethod
    def _k_integer_or_inf(cls, k: float) -> float:
        if not (math.isinf(k) or float(k).is_integer()):
            raise ValueError("k must be an integer >= 1 or .inf")
        return k


class Config(_Strict):
    name: str = Field(min_length=1)
    seed: int = Field(default=0, ge=0)
    common_random_numbers: bool = False
    """Arms of a sweep share their streams (paired comparisons); else they are independent."""
    replicates: int = Field(default=1, ge=1)
    generations: int = Field(default=10, ge=0)
    data: DataConfig
    model: ModelConfig
    scheme: SchemeConfig = SchemeConfig(kind="replace")
    curation: CurationConfig | None = None
    metrics: list[str] = Field(default_factory=list)
    sweep: dict[str, list[Any]] | None = None
    quick: dict[str, Any] | None = None
    description: str = ""

    @property
    def run_id(self) -> str:
        """A short hash of the resolved config (name included, sweep and quick excluded)."""
        return config_hash(self)


def config_hash(cfg: Config) -> str:
    payload = cfg.model_dump(mode="json", exclude={"sweep", "quick", "description"})
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


# --- loading ---------------------------------------------------------------------------------


def preset_names() -> list[str]:
    folder = resources.files("selfconsume") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_raw(source: str) -> tuple[dict[str, Any], str]:
    """Read a YAML file or a preset by name; return the mapping and a label for messages."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{source}: no such config file")
        text, label = path.read_text(), str(path)
    else:
        if source not in preset_names():
            raise ConfigError(f"{source}: no such preset or file (see `selfconsume presets`)")
        text = (resources.files("selfconsume") / "presets" / f"{source}.yaml").read_text()
        label = f"preset {source}"
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: the config must be a YAML mapping")
    return raw, label


def parse_override(item: str) -> tuple[str, Any]:
    """Parse `key.path=value`; the value is read as YAML (numbers, lists, .inf, null)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected key.path=value")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"--set {key}: value {value!r} is not valid YAML") from None


def set_path(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key path in a nested mapping, creating intermediate mappings.

    Under `sweep` the rest of the path is one key (`sweep.scheme.lam` sets the sweep over scheme.lam)."""
    if key.startswith("sweep."):
        raw["sweep"] = {**(raw.get("sweep") or {}), key[len("sweep.") :]: value}
        return
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part} is not a mapping")
        node = child
    node[parts[-1]] = value


def validate(raw: dict[str, Any], label: str = "config") -> Config:
    """Validate a raw mapping (schema, then each kind's params); errors name the key path."""
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{label}: {loc}: {err['msg']}") from None
    from selfconsume.plan import check_config  # registries load lazily

    check_config(cfg)
    return cfg


def load(
    source: str, overrides: list[str] | tuple[str, ...] = (), quick: bool = False
) -> list[Config]:
    """Load a config file or preset, apply quick settings and overrides, expand the sweep.

    Returns one validated Config per run of the sweep (one if there is no sweep)."""
    raw, label = read_raw(source)
    raw = copy.deepcopy(raw)
    if quick and raw.get("quick"):
        for key, value in raw["quick"].items():
            set_path(raw, key, value)
    for item in overrides:
        key, value = parse_override(item)
        set_path(raw, key, value)
        if key in (raw.get("sweep") or {}):  # --set on a swept key pins it
            raw["sweep"] = {k: v for k, v in raw["sweep"].items() if k != key} or None
    base = validate(raw, label)
    return [validate(r, label) for r in expand_sweep(raw, base.sweep)]


def expand_sweep(raw: dict[str, Any], sweep: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """The Cartesian product of the sweep's values, each as a raw config without `sweep`."""
    base = {k: v for k, v in raw.items() if k != "sweep"}
    if not sweep:
        return [base]
    keys = list(sweep)
    for key in keys:
        if not isinstance(sweep[key], list) or not sweep[key]:
            raise ConfigError(f"sweep.{key}: expected a non-empty list of values")
    out = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        one = copy.deepcopy(base)
        for key, value in zip(keys, values, strict=True):
            set_path(one, key, value)
        out.append(one)
    return out
