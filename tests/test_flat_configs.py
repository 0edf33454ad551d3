"""Configs with flat scheme and curation blocks, and a store written by bdb15ed (the last main
that had only those), keep their run ids and numbers (tests/data/make_flat_store.py made them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from selfconsume.config import Config
from selfconsume.loop.run import run_config
from selfconsume.plan import load, resolve
from selfconsume.store.reader import StoreReader
from selfconsume.store.sqlite import Store

DATA = Path(__file__).parent / "data"
FIXTURE = json.loads((DATA / "flat_run_ids.json").read_text())
RUNS = FIXTURE["runs"]


def _label(run: dict) -> str:
    block = run["raw"].get("curation") or run["raw"]["scheme"]
    return f"{run['raw']['name']}-{block['kind']}-{run['run_id']}"


@pytest.fixture
def flat_store(tmp_path) -> Path:
    """A copy of the flat store (opening a store may write to it)."""
    shutil.copytree(DATA / "flat-store", tmp_path / "flat")
    return tmp_path / "flat" / "store.sqlite"


@pytest.mark.parametrize("run", RUNS, ids=_label)
def test_a_flat_config_resolves_to_the_run_id_bdb15ed_gave_it(run):
    assert resolve(run["raw"]).run_id == run["run_id"]


DIGITS_AT_BDB15ED = [
    "data.n_real=500",
    "data.n_test=500",
    "model.params.train_steps=2000",
    "model.params.finetune_steps=250",
    "model.params.ddim_steps=100",
]
QUICK_AT_BDB15ED = {
    "stability-digits": DIGITS_AT_BDB15ED,
    "curated-digits": [
        *DIGITS_AT_BDB15ED,
        "sweep={scheme: [{kind: replace}, {kind: mix, params: {lam: 0.5}}],"
        " model.params.conditional: [false, true]}",
    ],
}
"""Quick blocks cut on purpose since bdb15ed (the demo's time budget): these overrides restore
what they were, so the test still checks that the same config names the same runs."""


@pytest.mark.parametrize("preset", sorted(FIXTURE["presets"]))
def test_every_preset_keeps_the_run_ids_bdb15ed_gave_it(preset):
    name, _, quick = preset.partition(" ")
    overrides = QUICK_AT_BDB15ED.get(name, []) if quick else []
    cfgs = load(name, overrides, quick=bool(quick))
    assert [c.run_id for c in cfgs] == FIXTURE["presets"][preset]


def test_the_flat_store_opens_and_each_stored_config_resolves_to_its_run_id(flat_store):
    store = Store(flat_store)
    records = {r.run_id: r for r in store.runs()}
    assert sorted(records) == sorted({run["run_id"] for run in RUNS})
    for run_id, record in records.items():
        assert record.status == "done"
        assert resolve(Config.model_validate(record.config)).run_id == run_id
    reader = StoreReader(flat_store)
    assert sorted(r.run_id for r in reader.runs()) == sorted(records)


def test_rerunning_a_flat_config_on_the_flat_store_finds_it_done(flat_store):
    store = Store(flat_store)
    for run in RUNS:
        assert run_config(resolve(run["raw"]), store).status == "done"
    assert sorted(r.run_id for r in store.runs()) == sorted({run["run_id"] for run in RUNS})


@pytest.mark.parametrize("run", RUNS, ids=_label)
def test_a_flat_config_run_today_gives_the_numbers_bdb15ed_stored(run, flat_store, tmp_path):
    old = Store(flat_store)
    new = Store(tmp_path / "new.sqlite")
    cfg = resolve(run["raw"])
    assert run_config(cfg, new).status == "done"
    old_values = {(g, m): v for g, m, v in old.metric_arrays(run["run_id"])}
    new_values = {(g, m): v for g, m, v in new.metric_arrays(cfg.run_id)}
    assert old_values.keys() == new_values.keys() and old_values
    for key, value in old_values.items():
        np.testing.assert_array_equal(new_values[key], value, err_msg=str(key))
