"""Small registries keyed by a config's `kind`, each entry carrying the pydantic model of its
`params` and what it needs of the data and the model (`Need`, checked before a run starts).

Kinds load lazily: a registry knows every kind's module by name (`selfconsume.kinds`) and imports
it the first time the kind is asked for."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from selfconsume.errors import ConfigError

T = TypeVar("T")


IDENTITY = {"identity": True}
"""Serialization context of a run's identity (run id and random streams), see `Params.LATER`."""
_STORED: ContextVar[bool] = ContextVar("stored", default=False)


@contextmanager
def stored_config() -> Iterator[None]:
    """Validate a config read back from a store: a params validator that would import what the
    config names (a user's callable) checks only its form, so reading a store runs no user code."""
    token = _STORED.set(True)
    try:
        yield
    finally:
        _STORED.reset(token)


def reading_stored() -> bool:
    """Whether the params being validated come from a store (see `stored_config`)."""
    return _STORED.get()


class Params(BaseModel):
    """Base of every `params` model: unknown keys are errors, NaN and infinities are refused
    (a field that means something at infinity says so), values are validated strictly."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, ser_json_inf_nan="strings"
    )
    LATER: ClassVar[dict[str, Any]] = {}
    """Fields added after runs were recorded, with their defaults: at its default such a field is
    left out of a run's identity (`IDENTITY`), so those runs keep their ids and numbers, while
    the stored resolved config still names it."""

    @model_serializer(mode="wrap")
    def _identity(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        out = handler(self)
        if info.context == IDENTITY:
            for name, default in self.LATER.items():
                if getattr(self, name) == default:
                    out.pop(name, None)
        return out


@dataclass(frozen=True)
class Need:
    """A capability asked of the data source and/or the model: `check(source, model) -> bool`,
    run before the run starts on the source and a one-replicate probe of the model; `what`
    completes "needs ..." in the error message."""

    what: str
    check: Callable[[Any, Any], bool]


@dataclass(frozen=True)
class Example:
    """How the contract suite (`selfconsume.testing.check_kind`) builds a kind: cheap params and
    the run it is checked in, declared where the kind is registered."""

    params: Mapping[str, Any] | Callable[[Path], Mapping[str, Any]] = field(default_factory=dict)
    """The kind's params, or a function that writes what they refer to (a file) into the given
    folder and returns them."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """Blocks of a run config (data, model, curation) that the kind needs, over the suite's
    default run: 8 Gaussians fitted by a gmm."""
    requires: tuple[str, ...] = ()
    """Modules of an optional extra the kind imports; without them its check is skipped."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    kind: str
    obj: T
    params: type[Params]
    doc: str
    needs: tuple[Need, ...] = ()
    example: Example = Example()
    outputs: tuple[str, ...] = ()
    """The value names a metric group outputs (`metrics.base.MetricRegistry`; empty elsewhere)."""
    reference: bool = False
    """Whether a metric group reads the frozen generation-0 model (`metrics.base`; else False)."""


def error_line(exc: ValidationError, where: str) -> str:
    """One line naming the key path of pydantic's first error (`where` prefixes the path); a
    ConfigError raised by a validator already names its key path in full."""
    err = exc.errors()[0]
    if isinstance(err.get("ctx", {}).get("error"), ConfigError):
        return str(err["ctx"]["error"])
    loc = ".".join(str(p) for p in err["loc"])
    path = ".".join(p for p in (where, loc) if p)
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path}: {msg}" if path else msg


class Registry(Generic[T]):
    """Maps a `kind` string to an object (class or function), its params model and its needs."""

    def __init__(self, role: str, modules: dict[str, str]) -> None:
        self.role = role
        self._modules = modules
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        kind: str,
        params: type[Params] = Params,
        needs: Sequence[Need] = (),
        example: Example | None = None,
        outputs: Sequence[str] = (),
    ) -> Callable[[T], T]:
        """Register `obj` as `kind`; `example` is what the contract suite checks it with (its
        default params in the suite's default run when not given); `outputs` the value names a
        metric declares."""

        def wrap(obj: T) -> T:
            doc = (getattr(obj, "__doc__", None) or "").strip().split("\n\n")[0]
            self._entries[kind] = Entry(
                kind,
                obj,
                params,
                " ".join(doc.split()),
                tuple(needs),
                example or Example(),
                tuple(outputs),
            )
            return obj

        return wrap

    def names(self) -> list[str]:
        """Every kind's name, without importing any module: the built-in kinds and every kind
        registered since (a plug-in registered from a user's module)."""
        return sorted(set(self._modules) | set(self._entries))

    def get(self, kind: str) -> Entry[T]:
        if kind not in self._entries and kind in self._modules:
            importlib.import_module(self._modules[kind])
        try:
            return self._entries[kind]
        except KeyError:
            known = ", ".join(self.names())
            raise ConfigError(f"{self.role}.kind: unknown kind {kind!r} (known: {known})") from None

    def parse_params(self, kind: str, params: dict[str, Any] | Params | None, where: str) -> Params:
        """Validate `params` against the kind's model; errors name the offending key path."""
        entry = self.get(kind)
        if isinstance(params, entry.params):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump()
        try:
            return entry.params.model_validate(params or {})
        except ValidationError as exc:
            raise ConfigError(error_line(exc, where)) from None

    def make(
        self, kind: str, params: Mapping[str, Any] | Params | None = None, **kwargs: Any
    ) -> Any:
        """The kind's object built from validated params: `obj(params, **kwargs)`."""
        return self.get(kind).obj(self.parse_params(kind, params, f"{self.role}.params"), **kwargs)

    def kinds(self) -> list[Entry[T]]:
        """Every entry (imports every kind's module)."""
        return [self.get(k) for k in self.names()]
