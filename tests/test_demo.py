"""The demo's schedule: every run once, each shared generation-0 model's first fit before the arms
that load it, grouped as `loop.first_model` shares them."""

from __future__ import annotations

import pytest

from selfconsume.demo import DEMO_PRESETS, first_model, schedule
from selfconsume.loop.first_model import cache_path
from selfconsume.plan import build, load


def test_the_schedule_runs_every_first_fit_before_any_arm_that_waits_for_one():
    cfgs = [cfg for name in DEMO_PRESETS for cfg in load(name, [], quick=True)]
    order = schedule(cfgs)
    assert sorted(c.run_id for c in order) == sorted(c.run_id for c in cfgs)
    keys = [first_model(c) for c in order]
    firsts = [keys.index(k) for k in dict.fromkeys(keys)]
    loaders = [i for i in range(len(keys)) if i not in firsts]
    assert max(firsts) < min(loaders)  # no worker waits while a first fit is still queued
    assert len(loaders) >= 10  # the digits, 8-Gaussians and flow arms share their first models


@pytest.mark.parametrize(
    ("a", "b", "shared"),
    [
        ("eight-gaussians-collapse", "stability-lambda", True),
        ("stability-lambda", "stability-lambda-flow", False),
        ("warmup-gaussian", "warmup-gaussian", False),  # no common random numbers: its own
    ],
)
def test_the_demo_groups_runs_as_the_first_model_cache_does(a, b, shared, tmp_path, monkeypatch):
    monkeypatch.setenv("SELFCONSUME_CACHE", str(tmp_path))
    x, y = load(a, [], quick=True)[0], load(b, [], quick=True)[-1]
    same_cache = (cache_path(build(x)) or x.run_id) == (cache_path(build(y)) or y.run_id)
    assert same_cache == shared
    assert (first_model(x) == first_model(y)) == shared
