"""The flat scheme and curation blocks of configs written before they became `{kind, params}`
(bdb15ed and earlier): read as the `{kind, params}` blocks they mean, and written back in their
flat form for a run's identity, so every run recorded before keeps its run id and random streams.

Flat blocks set a kind's keys beside `kind`: `scheme: {kind: mix, lam: 0.5}`, `curation: {kind:
bradley_terry, k: 4, beta: 1.0, reward: ...}`, and for the reward-free kinds `curation: {kind:
discriminator, select: bradley_terry, k: 4, params: {...}}`. The kinds of that time (`FLAT_SCHEMES`,
`FLAT_RULES`, `FLAT_FILTERS`) keep the flat form as their identity; a kind added since is identified
by its `{kind, params}` block as written by the resolved config.
"""

from __future__ import annotations

from typing import Any

from selfconsume.errors import ConfigError

FLAT_SCHEMES = ("replace", "mix", "accumulate", "accumulate_subsample", "fresh")
FLAT_SCHEME_KEYS = ("lam", "n_synthetic", "size")
"""Every key of the flat scheme block, each None when the kind does not take it."""
FLAT_RULES = {
    "bradley_terry": ("k", "beta"),
    "top_fraction": ("fraction",),
    "threshold": ("threshold",),
}
"""The selection rules of the flat curation block, with the keys each read."""
FLAT_DEFAULTS = {"k": 4.0, "beta": 1.0, "fraction": 0.5, "threshold": 0.0}
"""The flat curation block's keys and defaults: every one of them was part of a run's identity,
read by its rule or not."""
FLAT_FILTERS = {
    "discriminator": "top_fraction",
    "likelihood": "top_fraction",
    "verifier": "threshold",
}
"""The reward-free kinds of the flat curation block, each with the rule it kept by when `select`
was not given (`select` named the rule)."""


def is_flat_scheme(block: dict[str, Any]) -> bool:
    return any(key in block for key in FLAT_SCHEME_KEYS)


def scheme_from_flat(block: dict[str, Any]) -> dict[str, Any]:
    """`{kind, lam, n_synthetic, size}` as `{kind, params}` (None is a key not given)."""
    if "params" in block:
        key = next(k for k in FLAT_SCHEME_KEYS if k in block)
        raise ConfigError(f"scheme.{key}: the block has params; set scheme.params.{key}")
    params = {k: block[k] for k in FLAT_SCHEME_KEYS if block.get(k) is not None}
    return {**{k: v for k, v in block.items() if k not in FLAT_SCHEME_KEYS}, "params": params}


def flat_scheme(block: dict[str, Any]) -> dict[str, Any]:
    """The identity of a dumped `{kind, params}` scheme block of a flat-era kind."""
    return {"kind": block["kind"], **dict.fromkeys(FLAT_SCHEME_KEYS), **block["params"]}


def is_flat_curation(block: dict[str, Any]) -> bool:
    return any(key in block for key in (*FLAT_DEFAULTS, "select"))


def curation_from_flat(block: dict[str, Any]) -> dict[str, Any]:
    """A flat curation block as `{kind, params, reward}`: a rule's keys become its params; a
    reward-free kind's `select` and keys become its params' `select: {kind, params}`. A key the
    rule does not read is accepted at its flat default only (it changed nothing)."""
    block = dict(block)
    knobs = {key: block.pop(key) for key in FLAT_DEFAULTS if key in block}
    select, kind = block.pop("select", None), block.get("kind")
    if kind in FLAT_RULES and select is not None:
        raise ConfigError(f"curation.select: only the reward-free kinds take it, not {kind}")
    rule = select or (kind if kind in FLAT_RULES else FLAT_FILTERS.get(kind, "top_fraction"))
    if rule not in FLAT_RULES:
        known = ", ".join(FLAT_RULES)
        raise ConfigError(f"curation.select: unknown rule {rule!r} (known: {known})")
    for key, value in knobs.items():
        if key not in FLAT_RULES[rule] and value != FLAT_DEFAULTS[key]:
            raise ConfigError(f"curation.{key}: rule {rule} does not read it")
    rule_params = {key: knobs[key] for key in FLAT_RULES[rule] if key in knobs}
    if kind in FLAT_RULES:
        if block.get("params"):
            raise ConfigError(f"curation.params: set {kind}'s keys in curation.params only")
        return {**block, "params": rule_params}
    params = block.get("params") or {}
    if not isinstance(params, dict) or "select" in params:
        raise ConfigError("curation.select: set it in curation.params.select only")
    return {**block, "params": {**params, "select": {"kind": rule, "params": rule_params}}}


def flat_curation(block: dict[str, Any]) -> dict[str, Any]:
    """The identity of a dumped `{kind, params, reward}` curation block of a flat-era kind."""
    params = dict(block["params"])
    if block["kind"] in FLAT_RULES:
        return {"kind": block["kind"], "reward": block["reward"], **FLAT_DEFAULTS, **params}
    select = params.pop("select")
    return {
        "kind": block["kind"],
        "reward": block["reward"],
        "select": select["kind"],
        "params": params,
        **FLAT_DEFAULTS,
        **select["params"],
    }
