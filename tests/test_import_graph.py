"""No import circle: the packages of selfconsume (and their modules) import one another in one
direction only. An ast walk over every import statement, at module level or inside a function
(a lazy import is still a dependency), so a new circle fails here with its path."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

import selfconsume

ROOT = Path(selfconsume.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The selfconsume modules that `path` imports (`from a import b` names a.b when b is one)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in out if m in modules and m != name}


def graph(unit: Callable[[str], str]) -> dict[str, set[str]]:
    """Who imports whom, each module mapped to its `unit` (itself, or its top-level package)."""
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    edges: dict[str, set[str]] = {unit(m): set() for m in paths}
    for name, path in paths.items():
        for target in imported(path, set(paths)):
            if unit(target) != unit(name):
                edges[unit(name)].add(unit(target))
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph as a path [a, b, ..., a], or None (depth-first, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def package(module: str) -> str:
    """selfconsume.loop.run -> loop; selfconsume.plan -> plan."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


@pytest.mark.parametrize(("unit", "level"), [(package, "packages"), (str, "modules")])
def test_selfconsume_has_no_import_circle(unit, level):
    found = cycle(graph(unit))
    assert found is None, f"import circle between {level}: {' -> '.join(found)}"


def test_the_walk_finds_a_circle_where_there_is_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    edges = graph(package)
    assert {"data", "models"} <= edges["plan"] and "plan" not in edges["loop"]
