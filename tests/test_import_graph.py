"""No import circle: the packages of selfconsume (and their modules) import one another in one
direction only. An ast walk over the import statements, so a new circle fails here with its path:

- between modules, every import counts, a lazy one inside a function too (it is still a
  dependency); only `if TYPE_CHECKING:` blocks, which never run, are left out;
- between packages (data, models, loop, plan, ...), the imports that run when a module is
  imported: a lazy import is how a package defers a dependency on a later one."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import selfconsume

ROOT = Path(selfconsume.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def statements(node: ast.AST, lazy: bool) -> Iterator[ast.stmt]:
    """Every statement under `node` that can run: not `if TYPE_CHECKING:` bodies, and not
    function bodies unless `lazy`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
            yield from (s for e in child.orelse for s in [e, *statements(e, lazy)])
            continue
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and not lazy:
            continue
        if isinstance(child, ast.stmt):
            yield child
        yield from statements(child, lazy)


def imported(path: Path, name: str, modules: set[str], lazy: bool) -> set[str]:
    """The selfconsume modules that `path` (module `name`) imports (`from a import b` names a.b
    when b is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in statements(ast.parse(path.read_text(), str(path)), lazy):
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


def graph(unit: Callable[[str], str], lazy: bool) -> dict[str, set[str]]:
    """Who imports whom, each module mapped to its `unit` (itself, or its top-level package)."""
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    edges: dict[str, set[str]] = {unit(m): set() for m in paths}
    for name, path in paths.items():
        for target in imported(path, name, set(paths), lazy):
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


@pytest.mark.parametrize(
    ("unit", "lazy", "level"), [(package, False, "packages"), (str, True, "modules")]
)
def test_selfconsume_has_no_import_circle(unit, lazy, level):
    found = cycle(graph(unit, lazy))
    assert found is None, f"import circle between {level}: {' -> '.join(found)}"


def test_the_walk_finds_a_circle_where_there_is_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    edges = graph(package, lazy=False)
    assert {"data", "models"} <= edges["plan"] and "plan" not in edges["loop"]


def test_the_walk_skips_what_never_runs_and_sees_lazy_imports_only_when_asked(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import selfconsume.a\n"
        "if TYPE_CHECKING:\n    import selfconsume.b\n"
        "def f():\n    import selfconsume.c\n"
    )
    known = {"selfconsume.a", "selfconsume.b", "selfconsume.c"}
    assert imported(source, "selfconsume.m", known, lazy=False) == {"selfconsume.a"}
    assert imported(source, "selfconsume.m", known, lazy=True) == {"selfconsume.a", "selfconsume.c"}
