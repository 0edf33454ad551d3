"""Experiment configuration, as pure schema: the pydantic models of a config, YAML reading,
`--set` overrides and sweep expansion. Validation against the kinds (typed params, capabilities)
is `selfconsume.plan`'s.

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
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from selfconsume import flat
from selfconsume.errors import ConfigError
from selfconsume.registry import IDENTITY
from selfconsume.regular import read_regular

MAX_SWEEP_RUNS = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, ser_json_inf_nan="strings")


class DataConfig(_Strict):
    kind: str
    n_real: int = Field(ge=2)
    n_test: int = Field(default=1000, ge=1)
    params: Any = Field(default_factory=dict)
    """The kind's params: a mapping as written, the kind's typed `Params` once resolved."""


class ModelConfig(_Strict):
    kind: str
    params: Any = Field(default_factory=dict)
    warm_start: bool = False
    population: bool = False


class SchemeConfig(_Strict):
    """The `scheme:` block, `{kind, params}`: the rule that builds each generation's training set
    (`selfconsume.loop.schemes`, which fills what is derived). A flat block of earlier versions
    (`{kind: mix, lam: 0.5}`) still loads and names the same run (`selfconsume.flat`)."""

    kind: str
    params: Any = Field(default_factory=dict)
    """The kind's params: a mapping as written, the kind's typed `Params` once resolved."""

    @model_validator(mode="before")
    @classmethod
    def _read_flat(cls, data: Any) -> Any:
        return (
            flat.scheme_from_flat(data)
            if isinstance(data, dict) and flat.is_flat_scheme(data)
            else data
        )

    @model_serializer(mode="wrap")
    def _identity(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        out = handler(self)
        if info.context == IDENTITY and self.kind in flat.FLAT_SCHEMES:
            return flat.flat_scheme(out)
        return out


class RewardConfig(_Strict):
    kind: str
    params: Any = Field(default_factory=dict)


class CurationConfig(_Strict):
    """The `curation:` block, `{kind, params, reward}`: a selection rule between sampling p_t and
    training p_{t+1} (`selfconsume.loop.selection`). A rule that keeps samples by a reward
    (bradley_terry, top_fraction, threshold) needs `reward`; a reward-free kind (discriminator,
    likelihood, verifier) scores samples itself and keeps them by the rule in its `params.select`. A flat
    block of earlier versions still loads and names the same run (`selfconsume.flat`)."""

    kind: str
    params: Any = Field(default_factory=dict)
    """The kind's params: a mapping as written, the kind's typed `Params` once resolved."""
    reward: RewardConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and flat.is_flat_curation(data):
            return flat.curation_from_flat(data)
        return data

    @model_serializer(mode="wrap")
    def _identity(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        out = handler(self)
        if info.context == IDENTITY and self.kind in (*flat.FLAT_RULES, *flat.FLAT_FILTERS):
            return flat.flat_curation(out)
        return out


class Config(_Strict):
    name: str = Field(min_length=1, max_length=200)
    seed: int = Field(default=0, ge=0, lt=2**63)
    replicates: int = Field(default=1, ge=1)
    generations: int = Field(default=10, ge=0)
    data: DataConfig
    model: ModelConfig
    scheme: SchemeConfig = SchemeConfig(kind="replace")
    curation: CurationConfig | None = None
    metrics: list[str] = Field(default_factory=list)
    common_random_numbers: bool = False
    """Share random streams across the arms of a sweep (paired comparisons); off, every arm has
    its own streams."""
    cures: dict[str, Any] = Field(default_factory=dict)
    """Interventions on the loop: kind -> params (`selfconsume.loop.cures`), typed once resolved."""
    sweep: dict[str, list[Any]] | None = None
    quick: dict[str, Any] | None = None
    description: str = ""

    @model_serializer(mode="wrap")
    def _without_empty_cures(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """No cures serialise as no `cures` key, as before cures existed: run ids and random
        streams stay what they were."""
        data = handler(self)
        if not self.cures:
            data.pop("cures", None)
        return data

    @property
    def run_id(self) -> str:
        """A short hash of the resolved config (name included, sweep and quick excluded)."""
        return config_hash(self)


def config_hash(cfg: Config) -> str:
    payload = cfg.model_dump(
        mode="json", exclude={"sweep", "quick", "description"}, context=IDENTITY
    )
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


# --- loading ---------------------------------------------------------------------------------


MAX_CONFIG_BYTES = 1 << 20
"""Largest config file read (a config is a few lines; data belongs in a data file)."""
MAX_YAML_NODES = 100_000
"""Most values and collections in one config or `--set` value (parsing is linear in them)."""
MAX_YAML_DEPTH = 64
"""Deepest nesting of collections (deeper ones would exhaust the constructor's recursion)."""
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""The safe loader, with libyaml's parser where PyYAML has it (the pure one is 10x slower)."""


def safe_yaml(text: str) -> Any:
    """Parse YAML with the safe loader, refusing aliases (`*name` could expand a few lines into
    gigabytes), more than MAX_YAML_NODES nodes, nesting deeper than MAX_YAML_DEPTH, and integers
    longer than Python converts (ValueError): each a yaml.YAMLError saying which."""
    _check_events(text)
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506  (a safe loader)
    except ValueError as exc:  # int() of more digits than sys.get_int_max_str_digits()
        raise yaml.YAMLError(f"a number too long to read ({str(exc).split(':')[0]})") from None


def _check_events(text: str) -> None:
    """Scan the YAML's events (without building anything) for aliases, size and depth."""
    nodes = depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise yaml.YAMLError(f"aliases (*name) are not allowed (line {line})")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"nested more than {MAX_YAML_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_YAML_NODES:
                raise yaml.YAMLError(f"more than {MAX_YAML_NODES} values")


def apply_overrides(
    raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), quick: bool = False
) -> dict[str, Any]:
    """A copy of raw with the `quick:` settings (if asked) and `--set` overrides applied; `--set`
    on a swept key pins it."""
    raw = copy.deepcopy(raw)
    if quick and raw.get("quick"):
        if not isinstance(raw["quick"], dict):
            raise ConfigError("quick: expected a mapping of key.path: value")
        for key, value in raw["quick"].items():
            set_path(raw, str(key), value)
    for item in overrides:
        key, value = parse_override(item)
        set_path(raw, key, value)
        sweep = raw.get("sweep")
        if isinstance(sweep, dict) and key in sweep:
            raw["sweep"] = {k: v for k, v in sweep.items() if k != key} or None
    return raw


def preset_names() -> list[str]:
    folder = resources.files("selfconsume") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_raw(source: str) -> tuple[dict[str, Any], str]:
    """Read a YAML file (UTF-8, at most MAX_CONFIG_BYTES) or a preset by name; return the mapping
    and a label for messages."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise ConfigError(f"{source}: no such config file")
        label = str(path)
        try:
            data = read_regular(path, MAX_CONFIG_BYTES)
        except OSError as exc:
            raise ConfigError(f"{label}: cannot read ({exc.strerror or exc})") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{label}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); "
                "save the config as UTF-8"
            ) from None
    else:
        if source not in preset_names():
            raise ConfigError(f"{source}: no such preset or file (see `selfconsume presets`)")
        text = (resources.files("selfconsume") / "presets" / f"{source}.yaml").read_text()
        label = f"preset {source}"
    try:
        raw = safe_yaml(text)
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
        return key.strip(), safe_yaml(value)
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0]
        raise ConfigError(f"--set {key}: the value is not valid YAML ({reason})") from None


def set_path(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key path in a nested mapping, creating intermediate mappings.

    Under `sweep` the rest of the path is one key (`sweep.scheme.lam` sets the sweep over scheme.lam)."""
    if key.startswith("sweep."):
        sweep = raw.get("sweep") or {}
        if not isinstance(sweep, dict):
            raise ConfigError(f"{key}: sweep is not a mapping of key.path: [values]")
        raw["sweep"] = {**sweep, key[len("sweep.") :]: value}
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


def expand_sweep(raw: dict[str, Any], sweep: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """The Cartesian product of the sweep's values, each as a raw config without `sweep`."""
    base = {k: v for k, v in raw.items() if k != "sweep"}
    if not sweep:
        return [base]
    keys = list(sweep)
    for key in keys:
        if not isinstance(sweep[key], list) or not sweep[key]:
            raise ConfigError(f"sweep.{key}: expected a non-empty list of values")
    size = math.prod(len(sweep[k]) for k in keys)
    if size > MAX_SWEEP_RUNS:
        raise ConfigError(f"sweep: {size} runs, more than {MAX_SWEEP_RUNS} in one command")
    out = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        one = copy.deepcopy(base)
        for key, value in zip(keys, values, strict=True):
            set_path(one, key, value)
        out.append(one)
    return out
