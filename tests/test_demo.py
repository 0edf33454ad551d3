"""The demo's schedule: every run once, each shared generation-0 model's first fit before the arms
that load it, grouped as `loop.first_model` shares them."""

from __future__ import annotations

import pytest

from selfconsume.demo import DEMO_PRESETS, schedule
from selfconsume.loop.first_model import first_model_key
from selfconsume.plan import load


def test_the_schedule_runs_every_first_fit_before_any_arm_that_waits_for_one():
    cfgs = [cfg for name in DEMO_PRESETS for cfg in load(name, [], quick=True)]
    order = schedule(cfgs)
    assert sorted(c.run_id for c in order) == sorted(c.run_id for c in cfgs)
    keys = [first_model_key(c) or c.run_id for c in order]
    firsts = [keys.index(k) for k in dict.fromkeys(keys)]
    loaders = [i for i in range(len(keys)) if i not in firsts]
    assert max(firsts) < min(loaders)  # no worker waits while a first fit is still queued
    assert len(loaders) >= 10  # the digits, 8-Gaussians, flow and text arms share first models


def test_the_demo_computes_no_run_twice_under_two_names():
    cfgs = [cfg for name in DEMO_PRESETS for cfg in load(name, [], quick=True)]
    assert len({cfg.model_copy(update={"name": "demo"}).run_id for cfg in cfgs}) == len(cfgs)


PROMPTED = ["model.params.conditional=true"]
"""curated-digits' prompt-conditional arms (its default sweep has them, not its quick one)."""


@pytest.mark.parametrize(
    ("a", "b", "b_set", "shared"),
    [
        ("eight-gaussians-collapse", "stability-lambda", [], True),  # same data, model, seed
        ("stability-lambda", "stability-lambda-flow", [], False),  # another family
        ("curated-digits", "curated-digits", PROMPTED, False),  # unconditional vs conditional
        ("stability-digits", "curated-digits", PROMPTED, False),  # the U-Net, conditional or not
    ],
)
def test_arms_share_a_first_model_exactly_when_data_model_and_seed_agree(a, b, b_set, shared):
    x, y = load(a, [], quick=True)[0], load(b, b_set, quick=True)[-1]
    assert x.common_random_numbers and y.common_random_numbers
    assert (first_model_key(x) == first_model_key(y)) == shared


def test_the_digits_presets_share_their_unconditional_first_model_at_quick_scale():
    """The demo's costliest fit is done once: its quick blocks must keep data and model equal."""
    stability = load("stability-digits", [], quick=True)[0]
    curated = [c for c in load("curated-digits", [], quick=True) if not c.model.params.conditional]
    assert curated and {first_model_key(c) for c in curated} == {first_model_key(stability)}
