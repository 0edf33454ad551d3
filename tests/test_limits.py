"""Memory refusals: each names the key with the largest factor and the direction that helps, and
a family's own terms come from the family (`memory_terms`). The machine's memory refuses; the
memory free at the moment only warns."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.config import Config
from selfconsume.errors import ConfigError
from selfconsume.limits import check_memory, terms
from selfconsume.memory import Term
from selfconsume.models.base import MODELS
from selfconsume.store.sqlite import Store

BASE = {
    "name": "limits",
    "replicates": 3,
    "generations": 2,
    "data": {"kind": "gaussian", "n_real": 10, "n_test": 4, "params": {"dim": 2}},
    "model": {"kind": "gaussian"},
    "scheme": {"kind": "replace"},
    "metrics": [],
}
BT = {"kind": "bradley_terry", "k": 4, "beta": 1.0, "reward": {"kind": "linear"}}
NET = {"kind": "ddpm", "params": {"hidden": 16, "batch_size": 8}}
DIGITS = {"kind": "digits", "n_real": 10, "n_test": 4}


def config(**changes) -> Config:
    return Config.model_validate({**BASE, **changes})


def csv(tmp_path, columns: int) -> str:
    path = tmp_path / "wide.csv"
    np.savetxt(path, np.ones((3, columns)), delimiter=",")
    return str(path)


REFUSALS = {
    "replicates": ({"replicates": 10**9}, "lower replicates"),
    "data.params.dim": (
        {"data": {**BASE["data"], "params": {"dim": 10**6}}},
        "lower data.params.dim",
    ),
    "data.n_real": ({"data": {**BASE["data"], "n_real": 10**12}}, "lower data.n_real"),
    "data.n_test": ({"data": {**BASE["data"], "n_test": 10**12}}, "lower data.n_test"),
    "scheme.params.lam": ({"scheme": {"kind": "mix", "lam": 1e15}}, "lower scheme.params.lam"),
    "scheme.params.n_synthetic": (
        {"scheme": {"kind": "replace", "n_synthetic": 10**13}},
        "lower scheme.params.n_synthetic",
    ),
    "generations": (
        {"generations": 10**12, "scheme": {"kind": "accumulate", "lam": 1.0}},
        "lower generations",
    ),
    "curation.params.k": ({"curation": {**BT, "k": 10**13}}, "lower curation.params.k"),
    "curation.params.fraction": (
        {"curation": {**BT, "kind": "top_fraction", "fraction": 1e-13}},
        "raise curation.params.fraction",
    ),
    "model.params.n_components": (
        {"model": {"kind": "gmm", "params": {"n_components": 10**12}}},
        "lower model.params.n_components",
    ),
    "model.params.hidden": (
        {"model": {**NET, "params": {"hidden": 10**6, "batch_size": 8}}},
        "lower model.params.hidden",
    ),
    "model.params.batch_size": (
        {"model": {**NET, "params": {"hidden": 16, "batch_size": 10**12}}},
        "lower model.params.batch_size",
    ),
    "model.params.channels": (
        {"model": {"kind": "ddpm", "params": {"net": "unet", "channels": [10**6, 10**6]}}},
        "lower model.params.channels",
    ),
}


@pytest.mark.parametrize("key", sorted(REFUSALS))
def test_every_memory_refusal_names_its_key_and_the_direction_that_helps(key):
    changes, advice = REFUSALS[key]
    if key == "curation.params.fraction":
        changes = {
            **changes,
            "curation": {k: v for k, v in changes["curation"].items() if k != "k"},
        }
    with pytest.raises(ConfigError, match=rf"^{key}: this run needs .*; {advice}$"):
        check_memory(config(**changes), machine=10**9)


def test_a_top_fraction_too_small_for_memory_says_raise_it():
    # memory grows as 1 / fraction: lowering it, as the refusal used to advise, makes it worse
    curation = {"kind": "top_fraction", "fraction": 1e-9, "reward": {"kind": "linear"}}
    changes = {"replicates": 100, "data": {**BASE["data"], "n_real": 10**4}, "curation": curation}
    with pytest.raises(
        ConfigError, match=r"^curation.params.fraction: .*; raise curation.params.fraction$"
    ):
        check_memory(config(**changes), machine=10**9)
    check_memory(config(**{**changes, "curation": {**curation, "fraction": 0.5}}), machine=10**9)


def test_keys_that_are_not_numbers_say_what_to_change(tmp_path):
    wide = {"kind": "file", "n_real": 2, "n_test": 1, "params": {"path": csv(tmp_path, 4000)}}
    with pytest.raises(ConfigError, match=r"^data.params.path: .*; use a data file of fewer col"):
        check_memory(config(data=wide), machine=10**7)
    with pytest.raises(ConfigError, match=r"^data.kind: .*; use data of fewer dimensions"):
        check_memory(config(data=DIGITS, model={"kind": "kde"}), machine=10**4)
    with pytest.raises(ConfigError, match=r"^metrics: .*; drop metrics"):
        check_memory(config(metrics=["w2"]), machine=10**6)


def test_a_term_in_an_inverse_key_says_raise():
    term = Term(
        "t", {"replicates": 3.0, "curation.fraction": 1e9}, 1.0, frozenset({"curation.fraction"})
    )
    assert term.advice == "raise curation.fraction"
    assert Term("t", {"replicates": 3.0}, 1.0).advice == "lower replicates"


@pytest.mark.parametrize("kind", ["gaussian", "kde", "gmm", "ddpm", "flow"])
def test_the_family_declares_its_terms_and_limits_adds_them(kind):
    cfg = config(model={"kind": kind})
    family = MODELS.get(kind).obj
    params = MODELS.parse_params(kind, {}, "model.params")
    own = family.memory_terms(params, 3.0, ("data.params.dim", 2.0))
    assert own and all(t in terms(cfg) for t in own)


def test_the_unet_is_estimated_from_its_own_layers_not_the_mlps():
    unet = MODELS.parse_params("ddpm", {"net": "unet", "channels": [8, 16]}, "model.params")
    wide = MODELS.parse_params("ddpm", {"net": "unet", "channels": [16, 32]}, "model.params")
    family = MODELS.get("ddpm").obj
    small, big = (family.memory_terms(p, 1.0, ("data.kind", 64.0)) for p in (unet, wide))
    assert [t.key for t in small] == ["model.params.channels", "model.params.batch_size"]
    weights = [t.bytes for t in small], [t.bytes for t in big]
    assert 3.5 < weights[1][0] / weights[0][0] < 4.1  # 3x3 convolutions: ~ channels squared
    assert weights[1][1] / weights[0][1] == pytest.approx(2.0)  # activations ~ channels


# --- the machine's memory refuses, the memory free right now only warns ----------------------------

GB = 10**9
SMALL = """
name: small
replicates: 3
generations: 2
data: {kind: gaussian, n_real: 10, n_test: 4, params: {dim: 2}}
model: {kind: gaussian}
scheme: {kind: mix, params: {lam: 1.0}}
metrics: [gaussian_params, w2]
"""
"""A tiny run whose estimate (~0.4 GB: the metrics' workspace) is small beside any machine."""


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """Sets this machine's memory: `machine(total, available)` in bytes, no cgroup limit."""
    import psutil

    from selfconsume import memory

    monkeypatch.setattr(memory, "CGROUP", tmp_path / "no-cgroup")

    def set_memory(total: int, available: int) -> None:
        monkeypatch.setattr(
            psutil, "virtual_memory", lambda: SimpleNamespace(total=total, available=available)
        )

    return set_memory


def run_small(tmp_path, *sets: str):
    config = tmp_path / "small.yaml"
    config.write_text(SMALL)
    args = ["run", str(config), "--store", str(tmp_path / "s.sqlite")]
    return CliRunner().invoke(app, [*args, *(a for s in sets for a in ("--set", s))])


def test_a_small_run_is_not_refused_while_other_processes_hold_the_memory(
    machine, tmp_path, caplog
):
    # it used to be refused (exit 2) when the memory free at start-up fell below its estimate
    machine(total=16 * GB, available=GB // 10)
    result = run_small(tmp_path)
    assert result.exit_code == 0, result.output
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (
        warning.startswith("warning: the largest run needs")
        and "than the 0.1 GB free now" in warning
    )
    assert [r.status for r in Store(tmp_path / "s.sqlite").runs()] == ["done"]


def test_a_run_without_the_pressure_gives_no_warning(machine, tmp_path, caplog):
    machine(total=16 * GB, available=8 * GB)
    result = run_small(tmp_path)
    assert result.exit_code == 0, result.output
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_run_larger_than_the_machine_is_refused_even_with_its_memory_free(machine, tmp_path):
    machine(total=GB, available=GB)
    result = run_small(tmp_path, "replicates=100000000")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "replicates: this run needs" in lines[0]
    assert lines[0].endswith("more than the 1 GB this machine has; lower replicates")
    assert not (tmp_path / "s.sqlite").exists()


def test_a_small_data_file_loads_while_other_processes_hold_the_memory(machine, tmp_path):
    from selfconsume.data.files import load_points

    machine(total=16 * GB, available=1000)
    assert load_points(csv(tmp_path, 400)).shape == (3, 400)  # 9.6 kB of float64
    machine(total=1000, available=1000)
    with pytest.raises(ConfigError, match="more than the 1e-06 GB this machine has"):
        load_points(csv(tmp_path, 400))


@pytest.mark.parametrize("limit", ["2000000000", "max"])
def test_a_containers_limit_caps_the_machine_and_its_use_the_memory_free(tmp_path, limit, machine):
    from selfconsume import memory

    machine(total=16 * GB, available=8 * GB)
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text(limit + "\n")
    (cgroup / "memory.current").write_text("1500000000\n")
    memory.CGROUP = cgroup  # the fixture's monkeypatch restores it
    if limit == "max":
        assert (memory.machine_bytes(), memory.available_bytes()) == (16 * GB, 8 * GB)
    else:
        assert (memory.machine_bytes(), memory.available_bytes()) == (2 * GB, GB // 2)
