"""What the store says of a run: its row (`RunStatus`) and, with its resolved typed config,
`RunRecord`. A store may come from anyone, so a stored config is untrusted input: it is read back
through the same resolution as `selfconsume run` (less the checks that open files or call a
reward), and whatever does not fit is a one-line `ConfigError` naming the run and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from selfconsume.config import Config
from selfconsume.errors import ConfigError

STORED_EXCLUDE = {"sweep", "quick"}
"""Config keys a run's stored `config_json` leaves out (they describe the sweep, not the run)."""


@dataclass(frozen=True)
class RunStatus:
    """A run's row less its config: what `selfconsume runs` lists and a writer checks."""

    run_id: str
    name: str
    status: str  # running | done | failed | interrupted
    error: str | None
    created_at: str
    finished_at: str | None
    generations_done: int
    replicates: int
    traceback: str | None = None
    owner: str | None = None  # the lease holder while a process computes the run
    heartbeat: float | None = None


@dataclass(frozen=True)
class RunRecord(RunStatus):
    """A run with its resolved, typed config (what the report and export read)."""

    config: Config = field(kw_only=True)

    @cached_property
    def flat(self) -> dict[str, Any]:
        """The config as stored, as {dotted.key.path: leaf}."""
        return flatten(stored_json(self.config))


def stored_json(cfg: Config) -> dict[str, Any]:
    """The mapping a run's `config_json` holds: the resolved config less sweep and quick."""
    return cfg.model_dump(mode="json", exclude=STORED_EXCLUDE)


def typed_config(text: object, where: str) -> Config:
    """The resolved Config of a stored `config_json` (`where` names the run in errors); it opens
    no file and imports nothing the config names."""
    from selfconsume.plan import typed
    from selfconsume.registry import stored_config

    try:
        raw = json.loads(text)  # type: ignore[arg-type]
    except (TypeError, ValueError, RecursionError):
        raise ConfigError(f"{where}: config_json: not JSON text") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: config_json: a JSON {type(raw).__name__}, not a mapping")
    try:
        with stored_config():
            return typed(raw, "")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except Exception as exc:  # a validator's own error on input no config file could hold
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise ConfigError(f"{where}: config_json: {reason}") from None


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted.key.path: leaf}; lists are leaves."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def swept_keys(records: list[RunRecord]) -> list[str]:
    """The config key paths whose values differ between runs of one experiment name (the sweep),
    in first-seen order; the name and description are never swept keys."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_name.setdefault(r.name, []).append(r.flat)
    keys: dict[str, None] = {}
    for flats in by_name.values():
        for key in dict.fromkeys(k for f in flats for k in f):
            seen = {json.dumps(f.get(key), sort_keys=True) for f in flats}
            if len(seen) > 1 and key not in ("name", "description"):
                keys[key] = None
    return list(keys)
