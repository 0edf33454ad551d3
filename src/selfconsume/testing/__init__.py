"""The public contract suite: `check_kind(role, kind)` checks one registered kind against its
role's contract (as scikit-learn's `check_estimator` and optuna's storage tests), built from the
`Example` it was registered with. A project's own test suite runs it over every kind:

    import pytest
    from selfconsume.testing import Unavailable, check_kind, registered

    @pytest.mark.parametrize(("role", "kind"), registered())
    def test_every_kind_keeps_its_contract(role, kind):
        try:
            check_kind(role, kind)
        except Unavailable as why:
            pytest.skip(str(why))

and a plug-in registered in a user's module is checked the same way, once that module is imported.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from selfconsume.errors import ConfigError
from selfconsume.testing.base import Case, sample_norm

ROLES = ("data", "model", "scheme", "selection", "cure", "metric", "reward")
"""The roles a kind can play, in the order of the flow (config -> plan -> loop)."""


MODULES = {
    "model": "models",
    "scheme": "schemes",
    "cure": "cures",
    "metric": "metrics",
    "reward": "rewards",
}
"""The module of a role's checks where its name is not the role's."""


class Unavailable(Exception):
    """A kind whose example needs an optional extra that is not installed."""


def _role(role: str) -> ModuleType:
    """The module holding a role's checks and its `REGISTRY` (imported on first use)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    return importlib.import_module(f"selfconsume.testing.{MODULES.get(role, role)}")


def kinds(role: str) -> list[str]:
    """Every kind registered for a role (without importing the kinds' modules)."""
    module = _role(role)
    return module.kinds() if hasattr(module, "kinds") else module.REGISTRY.names()


def registered() -> list[tuple[str, str]]:
    """Every (role, kind) pair there is: what a suite parametrises over."""
    return [(role, kind) for role in ROLES for kind in kinds(role)]


def checks(role: str, kind: str) -> list[Callable[[], None]]:
    """The role's checks bound to one kind, each a function that raises AssertionError naming
    the broken promise (the first line of its docstring)."""
    module = _role(role)
    registry = module.REGISTRY
    try:
        entry = registry.get(kind)
    except ConfigError as exc:  # listed in selfconsume.kinds, but its module never registers it
        raise AssertionError(f"{role} {kind!r} is not registered -- {exc}") from exc
    for name in entry.example.requires:
        if importlib.util.find_spec(name) is None:
            raise Unavailable(f"{role} {kind!r} needs {name!r} (an optional extra)")

    def bind(check: Callable[[Case], None]) -> Callable[[], None]:
        def run() -> None:
            with tempfile.TemporaryDirectory(prefix="selfconsume-check-") as folder:
                try:
                    check(Case(entry, registry, Path(folder)))
                except AssertionError as exc:
                    promise = (check.__doc__ or check.__name__).strip().splitlines()[0]
                    raise AssertionError(f"{role} {kind!r}: {promise} -- {exc}") from exc
                except ConfigError as exc:  # its example (or default) params or run are invalid
                    raise AssertionError(
                        f"{role} {kind!r}: its example does not validate -- {exc}"
                        " (declare example=Example(...) where it is registered)"
                    ) from exc

        run.__name__ = check.__name__
        return run

    return [bind(check) for check in module.CHECKS]


def check_kind(role: str, kind: str) -> None:
    """Check one kind against its role's contract; AssertionError names the first broken
    promise, `Unavailable` says which optional extra its example needs."""
    for check in checks(role, kind):
        check()


__all__ = ["ROLES", "Unavailable", "check_kind", "checks", "kinds", "registered", "sample_norm"]
