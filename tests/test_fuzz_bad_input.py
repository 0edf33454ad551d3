"""Fuzz: at least 300 generated bad inputs over every registered kind's params, the data files and
the `--set` guards. Each must exit 2 with one line on stderr (no warning either), create no
store, and take at most 5 s of CPU.

The cases come from a seeded generator (the same list on every run, so a failure reproduces by
its id). A base run per kind is the contract suite's example (`selfconsume.testing`); each case
breaks it in one way that is bad input whatever the kind does: an unknown key, a value of the
wrong type, a value past a declared bound, a kind that does not exist, a damaged or special data
file, a malformed override. The CLI runs in-process (CliRunner), so the whole file takes seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.testing import ROLES, kinds
from selfconsume.testing import _role as role_module
from selfconsume.testing.base import Case

SEED = 17
CPU_SECONDS = 5.0
MIN_CASES = 300
PER_KIND = 5
"""Params mutations drawn per kind besides its unknown key (all of them: ~700 cases, 2x the time)."""
QUIET = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
"""Warning categories Python hides by default; any other warning reaches the user's terminal."""
MODELS_TO_TRY = ("gmm", "kde", "discrete", "regression", "gaussian")
"""Families tried, in order, for a data kind whose example names none."""

Mutate = Callable[[dict[str, Any], Path], list[str]]
"""Breaks a raw run config in place (writing files into the folder); returns `--set` items."""


@dataclass(frozen=True)
class Fuzz:
    id: str
    role: str
    kind: str
    mutate: Mutate


# --- base runs: one valid raw run per (role, kind), from the contract suite's examples -----------


def _block(role: str, kind: str, case: Case) -> dict[str, Any]:
    """The kind's own block of a run config, as the contract suite places it."""
    params = case.raw_params()
    if role == "data":
        return {"data": {"kind": kind, "n_real": 20, "n_test": 10, "params": params}}
    if role == "model":
        return {"model": {"kind": kind, "params": params}}
    if role == "scheme":
        return {"scheme": {"kind": kind, "params": params}}
    if role == "selection":
        return {"curation": {"kind": kind, "params": params}}
    if role == "cure":
        return {"cures": {kind: params}}
    if role == "reward":
        reward = {"kind": kind, "params": params}
        return {"curation": {"kind": "bradley_terry", "k": 2, "reward": reward}}
    return {"metrics": [kind]}


def base_run(role: str, kind: str, folder: Path) -> dict[str, Any]:
    """A valid raw run config in which the kind plays its role (its example files in folder)."""
    module = role_module(role)
    case = Case(module.REGISTRY.get(kind), module.REGISTRY, folder)
    raw = _plain(case.run(**_block(role, kind, case)))
    if role == "data" and not case.example.config.get("model"):
        raw["model"] = {"kind": _family_for(raw)}
    return raw


_FAMILIES: dict[str, str] = {}


def _family_for(raw: dict[str, Any]) -> str:
    """The first family of MODELS_TO_TRY that takes the run's data (found once per data kind)."""
    from selfconsume.plan import resolve

    kind = raw["data"]["kind"]
    if kind not in _FAMILIES:
        for model in MODELS_TO_TRY:
            try:
                resolve({**raw, "model": {"kind": model}})
            except Exception:
                continue
            _FAMILIES[kind] = model
            break
        else:
            raise AssertionError(f"no family in {MODELS_TO_TRY} takes data {kind!r}")
    return _FAMILIES[kind]


def _plain(raw: dict[str, Any]) -> dict[str, Any]:
    """JSON types only (tuples as lists), so the config writes as plain YAML."""
    return json.loads(json.dumps(raw))


def block_of(role: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The block of a raw run that holds the kind and its `params` (a cure's block is `cures`)."""
    if role in ("data", "model", "scheme"):
        return raw[role]
    if role == "reward":
        return raw["curation"]["reward"]
    return raw["cures"] if role == "cure" else raw["curation"]


def params_of(role: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The kind's params mapping inside a raw run (created if absent)."""
    if role == "cure":
        return next(iter(raw["cures"].values()))
    return block_of(role, raw).setdefault("params", {})


# --- mutations of a kind's params ---------------------------------------------------------------


def _violations(info: Any) -> list[Any]:
    """Values past each numeric bound a field declares (ge, gt, le, lt)."""
    out = []
    for bound in info.metadata:
        if isinstance(bound, annotated_types.Ge):
            out.append(bound.ge - 1)
        elif isinstance(bound, annotated_types.Gt):
            out.append(bound.gt - (1 if isinstance(bound.gt, int) else 0.5))
        elif isinstance(bound, annotated_types.Le):
            out.append(bound.le + max(1, abs(bound.le)))  # +1 is lost on 1e100
        elif isinstance(bound, annotated_types.Lt):
            out.append(bound.lt)
        if isinstance(bound, annotated_types.Le | annotated_types.Lt) and out[-1] < 10**30:
            out.append(10**30)
    return out


def _takes(info: Any, *names: str) -> bool:
    text = str(info.annotation)
    return any(name in text for name in names)


def set_value(role: str, key: str, value: Any) -> Mutate:
    def mutate(raw: dict[str, Any], folder: Path) -> list[str]:
        params_of(role, raw)[key] = value
        return []

    return mutate


def param_mutations(role: str, kind: str) -> list[tuple[str, Mutate]]:
    """Ways to break one kind's params, each bad input for any kind."""
    if role == "metric":
        return [("not-a-list", lambda raw, folder: raw.update(metrics=kind) or [])]
    out: list[tuple[str, Mutate]] = [
        ("unknown-key", set_value(role, "no_such_param", 1)),
        ("params-a-list", _params_as_list(role)),
    ]
    for name, info in role_module(role).REGISTRY.get(kind).params.model_fields.items():
        if not _takes(info, "Any", "dict", "Mapping"):  # one value of a wrong type per field
            out.append((f"{name}-a-mapping", set_value(role, name, {"not": "a value"})))
        elif not _takes(info, "str"):
            out.append((f"{name}-a-string", set_value(role, name, "garbage")))
        if _takes(info, "float") and not _takes(info, "str", "Any"):
            out.append((f"{name}-nan", set_value(role, name, float("nan"))))
        for i, value in enumerate(_violations(info)):
            out.append((f"{name}-bound{i}", set_value(role, name, value)))
    return out


def _params_as_list(role: str) -> Mutate:
    def mutate(raw: dict[str, Any], folder: Path) -> list[str]:
        if role == "cure":
            raw["cures"] = {kind: [1, 2, 3] for kind in raw["cures"]}
        else:
            block_of(role, raw)["params"] = [1, 2, 3]
        return []

    return mutate


def unknown_kind(role: str) -> Mutate:
    def mutate(raw: dict[str, Any], folder: Path) -> list[str]:
        if role == "metric":
            raw["metrics"] = ["no_such_metric"]
        elif role == "cure":
            raw["cures"] = {"no_such_cure": {}}
        else:
            block_of(role, raw)["kind"] = "no_such_kind"
        return []

    return mutate


# --- data files ---------------------------------------------------------------------------------


def _path_of(raw: dict[str, Any]) -> Path:
    return Path(raw["data"]["params"]["path"])


def _replace_file(write: Callable[[Path], None], suffix: str | None = None) -> Mutate:
    """Write another file in place of the example's (with another suffix if given)."""

    def mutate(raw: dict[str, Any], folder: Path) -> list[str]:
        path = _path_of(raw)
        if suffix is not None:
            path = path.with_suffix(suffix)
            raw["data"]["params"]["path"] = str(path)
        if path.exists() or path.is_symlink():
            path.unlink()
        write(path)
        return []

    return mutate


def _truncate(fraction: float) -> Mutate:
    def mutate(raw: dict[str, Any], folder: Path) -> list[str]:
        path = _path_of(raw)
        data = path.read_bytes()
        path.write_bytes(data[: max(1, int(len(data) * fraction))])
        return []

    return mutate


def _npy_header_claiming(shape: tuple[int, ...]) -> Callable[[Path], None]:
    """A .npy whose header claims `shape` of float64 but holds 16 bytes."""

    def write(path: Path) -> None:
        from numpy.lib import format as fmt

        with path.open("wb") as f:
            fmt.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": shape})
            f.write(b"\0" * 16)

    return write


def _npz(**arrays: np.ndarray) -> Callable[[Path], None]:
    return lambda path: np.savez(path, **arrays)


def _garbage(rng: random.Random, n: int) -> Callable[[Path], None]:
    data = bytes(rng.randrange(256) for _ in range(n))
    return lambda path: path.write_bytes(data)


def file_mutations(kind: str, rng: random.Random) -> list[tuple[str, Mutate]]:
    """Damaged, special and wrong files as a data kind's path."""
    x = np.random.default_rng(0).random((60, 4, 4))
    y = np.arange(60) % 3
    common: list[tuple[str, Mutate]] = [
        ("missing", _replace_file(lambda p: None)),
        ("empty", _replace_file(lambda p: p.write_bytes(b""))),
        ("fifo", _replace_file(lambda p: os.mkfifo(p))),
        ("folder", _replace_file(lambda p: p.mkdir())),
        ("dev-zero", _replace_file(lambda p: p.symlink_to("/dev/zero"))),
        ("dev-null", _replace_file(lambda p: p.symlink_to("/dev/null"))),
        ("wrong-suffix", _replace_file(lambda p: p.write_text("1,2\n3,4\n"), ".txt")),
    ]
    for i in range(6):
        common.append((f"garbage{i}", _replace_file(_garbage(rng, rng.randrange(1, 400)))))
    for i, fraction in enumerate(sorted(rng.uniform(0.05, 0.95) for _ in range(6))):
        common.append((f"truncated{i}", _truncate(fraction)))
    if kind == "image_file":
        bad_y = {"negative": -y, "fraction": y + 0.5, "huge": y * 1e300, "short": y[:10]}
        return common + [
            ("no-x", _replace_file(_npz(y=y))),
            ("x-2d", _replace_file(_npz(x=x[:, 0]))),
            ("x-5-channels", _replace_file(_npz(x=x[..., None].repeat(5, -1)))),
            ("x-constant", _replace_file(_npz(x=np.ones((60, 4, 4))))),
            ("x-inf", _replace_file(_npz(x=np.where(x > 0.99, np.inf, x)))),
            ("x-complex", _replace_file(_npz(x=x + 1j))),
            ("one-image", _replace_file(_npz(x=x[:1]))),
            *[(f"y-{name}", _replace_file(_npz(x=x, y=v))) for name, v in bad_y.items()],
            ("npy-not-npz", _replace_file(lambda p: np.save(p, x), ".npy")),
        ]
    return common + [
        ("csv-word", _replace_file(lambda p: p.write_text("1,2\n3,x\n5,6\n"), ".csv")),
        ("csv-nan", _replace_file(lambda p: p.write_text("1,2\nnan,4\n5,6\n"), ".csv")),
        ("csv-complex", _replace_file(lambda p: p.write_text("1+2j,2\n3,4\n"), ".csv")),
        ("csv-header-only", _replace_file(lambda p: p.write_text("a,b\n"), ".csv")),
        ("csv-ragged", _replace_file(lambda p: p.write_text("1,2\n3\n5,6\n"), ".csv")),
        ("npy-1d", _replace_file(lambda p: np.save(p, np.arange(10.0)))),
        ("npy-3d", _replace_file(lambda p: np.save(p, np.zeros((4, 2, 2))))),
        ("npy-one-row", _replace_file(lambda p: np.save(p, np.zeros((1, 2))))),
        ("npy-object", _replace_file(lambda p: np.save(p, np.array([{}, 1]), allow_pickle=True))),
        ("npy-complex", _replace_file(lambda p: np.save(p, np.ones((5, 2)) * 1j))),
        ("npy-strings", _replace_file(lambda p: np.save(p, np.array([["a", "b"]] * 5)))),
        ("npy-inf", _replace_file(lambda p: np.save(p, np.full((5, 2), np.inf)))),
        ("npy-claims-4e11", _replace_file(_npy_header_claiming((400_000_000_000, 1)))),
        ("npy-claims-2e9x1e9", _replace_file(_npy_header_claiming((2_000_000_000, 10**9)))),
    ]


# --- --set guards and config text --------------------------------------------------------------

BAD_SETS = [
    "=1",
    "noequals",
    "name.x=1",
    "seed=-1",
    "seed=9223372036854775808",
    "seed=1.5",
    "replicates=0",
    "replicates=many",
    "generations=-1",
    "name=",
    "name=[1]",
    "data=5",
    "model=[1]",
    "data.n_real=1",
    "data.n_real=1.0e400",
    "data.n_real=1e400",
    "data.n_test=0",
    "metrics=w2",
    "metrics=[no_such_metric]",
    "metrics=[[1]]",
    "sweep=5",
    "sweep=[1]",
    "sweep.seed=5",
    "sweep.seed=[]",
    "sweep.seed={a: 1}",
    "sweep.no_such_key=[1, 2]",
    "data.kind=[1]",
    "data.params=[1]",
    "model.params=5",
    "model.warm_start=maybe",
    "model.population=7",
    "scheme=5",
    "scheme.kind=no_such_scheme",
    "scheme.lam=-1",
    "curation=5",
    "curation.kind=no_such_rule",
    "common_random_numbers=perhaps",
    "data.n_real=[",
    "data.n_real={a:",
    "data.n_real=&x 1",
    "data.n_real=!!python/object:os.system",
    "name=" + "x" * 300,
    "description=[1, 2]",
    "quick=5",
]
"""Overrides that are bad for any base run (the `--set` guards)."""


def set_mutation(item: str, *more: str) -> Mutate:
    return lambda raw, folder: [item, *more]


def random_sets(rng: random.Random, n: int) -> list[str]:
    """Overrides of unknown keys at random depths under each block, with random values."""
    blocks = ["", "data.", "data.params.", "model.", "model.params.", "scheme."]
    values = ["1", "-3.5", "[1, 2]", "{a: b}", ".inf", "null", "'text'", "true"]
    out = []
    for _ in range(n):
        name = "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randrange(3, 12))
        )
        out.append(f"{rng.choice(blocks)}zz_{name}={rng.choice(values)}")
    return out


def text_mutation(corrupt: Callable[[bytes], bytes]) -> Mutate:
    """Damage the config file's text itself (written after the raw config)."""

    def mutate(raw: dict[str, Any], folder: Path) -> list[str]:
        raw["__text__"] = corrupt
        return []

    return mutate


def text_mutations(rng: random.Random) -> list[tuple[str, Mutate]]:
    out: list[tuple[str, Mutate]] = []
    for i in range(8):
        byte = rng.randrange(0x80, 0x100)
        out.append(
            (
                f"byte-{byte:02x}-{i}",
                text_mutation(lambda t, b=byte, i=i: t[: i * 7] + bytes([b]) + t[i * 7 :]),
            )
        )
    out += [
        ("utf16", text_mutation(lambda t: t.decode().encode("utf-16"))),
        ("nul", text_mutation(lambda t: t + b"\0")),
        ("alias", text_mutation(lambda t: t + b"a: &a [1]\nb: *a\n")),
        ("deep", text_mutation(lambda t: t + b"z: " + b"[" * 80 + b"]" * 80 + b"\n")),
        ("unbalanced", text_mutation(lambda t: t + b"z: [1, 2\n")),
        ("tab-indent", text_mutation(lambda t: t + b"z:\n\t- 1\n")),
        ("list-not-mapping", text_mutation(lambda t: b"- 1\n- 2\n")),
        ("empty", text_mutation(lambda t: b"")),
        ("scalar", text_mutation(lambda t: b"42\n")),
        ("long-int", text_mutation(lambda t: t + b"z: " + b"7" * 4400 + b"\n")),
    ]
    return out


# --- the generated cases ------------------------------------------------------------------------


def available(role: str) -> list[str]:
    """The role's kinds whose example runs here (not those needing a missing optional extra)."""
    module = role_module(role)
    return [
        kind
        for kind in kinds(role)
        if all(
            importlib.util.find_spec(name) for name in module.REGISTRY.get(kind).example.requires
        )
    ]


def generate() -> list[Fuzz]:
    rng = random.Random(SEED)
    cases: list[Fuzz] = []
    for role in ROLES:
        for kind in available(role):
            mutations = param_mutations(role, kind)
            picked = mutations[:1] + rng.sample(mutations[1:], min(PER_KIND, len(mutations) - 1))
            for name, mutate in picked:
                cases.append(Fuzz(f"{role}-{kind}-{name}", role, kind, mutate))
        cases.append(Fuzz(f"{role}-unknown-kind", role, kinds(role)[0], unknown_kind(role)))
    for kind in ("file", "image_file"):
        for name, mutate in file_mutations(kind, rng):
            cases.append(Fuzz(f"file-{kind}-{name}", "data", kind, mutate))
    for i, item in enumerate(BAD_SETS + random_sets(rng, 40)):
        cases.append(Fuzz(f"set{i}", "model", "gmm", set_mutation(item)))
    cases.append(Fuzz("set-quick-5", "model", "gmm", set_mutation("quick=5", "--quick")))
    for name, mutate in text_mutations(rng):
        cases.append(Fuzz(f"text-{name}", "model", "gmm", mutate))
    return cases


CASES = generate()


def test_there_are_at_least_300_cases_over_every_role():
    assert len(CASES) >= MIN_CASES
    assert {c.role for c in CASES} == set(ROLES)
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.fixture(scope="module", autouse=True)
def warm_imports():
    """Import the heavy libraries once, so no case is charged for them."""
    import sklearn.mixture  # noqa: F401
    import torch  # noqa: F401


@pytest.mark.parametrize("fuzz", CASES, ids=[c.id for c in CASES])
def test_a_generated_bad_input_exits_2_with_one_line_and_no_store(tmp_path, fuzz):
    raw = base_run(fuzz.role, fuzz.kind, tmp_path)
    sets = fuzz.mutate(raw, tmp_path)
    corrupt = raw.pop("__text__", None)
    text = yaml.safe_dump(raw).encode()
    config = tmp_path / "fuzz.yaml"
    config.write_bytes(corrupt(text) if corrupt else text)
    args = ["run", str(config), "--store", str(tmp_path / "runs" / "store.sqlite")]
    for item in sets:
        args += [item] if item.startswith("--") else ["--set", item]
    start = time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, args)
    cpu = time.process_time() - start
    shown = [str(w.message) for w in caught if not issubclass(w.category, QUIET)]
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and not shown, (lines, shown)
    assert not (tmp_path / "runs").exists()
    assert cpu <= CPU_SECONDS, f"{cpu:.1f} s of CPU"
