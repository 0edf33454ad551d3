"""Small registries keyed by a config's `kind`, each entry carrying the pydantic model of its `params`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from selfconsume.errors import ConfigError

T = TypeVar("T")


class Params(BaseModel):
    """Base of every `params` model: unknown keys are errors, values are validated strictly."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Entry(Generic[T]):
    kind: str
    obj: T
    params: type[Params]
    doc: str


class Registry(Generic[T]):
    """Maps a `kind` string to an object (class or function) and the pydantic model of its params."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._entries: dict[str, Entry[T]] = {}

    def register(self, kind: str, params: type[Params] = Params) -> Callable[[T], T]:
        def wrap(obj: T) -> T:
            doc = (getattr(obj, "__doc__", None) or "").strip().split("\n\n")[0]
            self._entries[kind] = Entry(kind, obj, params, " ".join(doc.split()))
            return obj

        return wrap

    def get(self, kind: str) -> Entry[T]:
        try:
            return self._entries[kind]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise ConfigError(f"{self.role}.kind: unknown kind {kind!r} (known: {known})") from None

    def parse_params(self, kind: str, params: dict[str, Any] | None, where: str) -> Params:
        """Validate `params` against the kind's model; errors name the offending key path."""
        entry = self.get(kind)
        try:
            return entry.params(**(params or {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{where}.{loc}: {err['msg']}") from None

    def kinds(self) -> list[Entry[T]]:
        return [self._entries[k] for k in sorted(self._entries)]
