"""docs/adding-a-kind.md's worked example, as the page prints it: its metric and its scheme, each
one file, pass the contract suite and run through the API with the page's config. A page that
drifts from the code fails here."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from selfconsume.api import results, run_experiment
from selfconsume.loop.schemes import SCHEMES
from selfconsume.metrics.base import METRICS
from selfconsume.testing import check_kind

PAGE = Path(__file__).parents[1] / "docs" / "adding-a-kind.md"


def blocks(language: str) -> list[str]:
    """The page's fenced code blocks in `language`, in order."""
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.S)


def block_after(path: str) -> str:
    """The python block the page introduces with the file name `path`."""
    text = PAGE.read_text()
    after = text[text.index(f"`{path}`:") :]
    return re.search(r"```python\n(.*?)```", after, flags=re.S).group(1)


@pytest.fixture
def page_modules(tmp_path, monkeypatch) -> Path:
    """The page's two files written as the user's modules `quartiles` and `half_real`, imported
    into registries copied for this test only."""
    for registry in (METRICS, SCHEMES):
        registry.kinds()  # the built-in kinds imported first: none registers into the copy
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    (tmp_path / "quartiles.py").write_text(block_after("src/selfconsume/metrics/quartiles.py"))
    (tmp_path / "half_real.py").write_text(block_after("src/selfconsume/loop/half_real.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("quartiles", "half_real"):
        monkeypatch.delitem(sys.modules, name, raising=False)
        __import__(name)
    return tmp_path


def test_the_pages_metric_and_scheme_keep_their_contracts(page_modules):
    check_kind("metric", "quartiles")
    check_kind("scheme", "half_real")


def test_the_pages_config_runs_with_its_kinds(page_modules, tmp_path):
    (config,) = blocks("yaml")
    path = tmp_path / "half-real.yaml"
    path.write_text(config)
    (outcome,) = run_experiment(path, store=tmp_path / "half-real.sqlite")
    assert outcome.status == "done"
    values = results(tmp_path / "half-real.sqlite")
    spread = values[values.metric == "quartile_spread"]
    assert sorted(spread.generation.unique()) == [0, 1, 2, 3]
    assert (spread.value > 0).all()
