"""The EMA of the torch families follows the generation it samples: a warm fit keeps no weight on
the previous generation's EMA, and a negligible one on the parameters it starts from."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_sampler_oracle import DEEP_PRESETS, preset_raw

from selfconsume.models.base import MODELS
from selfconsume.models.torch_batched import ema_decay, ema_start_weight
from selfconsume.seeding import Streams

SMALL = {"hidden": 16, "depth": 2, "batch_size": 32, "train_steps": 30, "finetune_steps": 20}
OFFSET = 1000.0
MAX_WEIGHT = 0.01


def build(kind: str):
    return MODELS.make(kind, {**SMALL, "ema_decay": 0.999}, dim=2, replicates=2, streams=Streams(0))


@pytest.mark.parametrize("kind", ["ddpm", "flow"])
def test_warm_fit_keeps_no_weight_on_the_previous_generations_ema(kind):
    """The EMA is linear in its starting value and does not feed back into training, so shifting
    the previous generation's EMA by OFFSET shifts the new EMA by OFFSET times its weight on it.
    (Carried over, it keeps 2% here, and 0.999^500 = 61% after 500 updates at the cap.)"""
    x = np.random.default_rng(0).normal(size=(2, 200, 2))
    base = build(kind)
    base.fit(x, None, 0, False)
    state = base.state_dict()
    shifted_state = {**state, "ema": [e + OFFSET for e in state["ema"]]}
    plain, shifted = build(kind), build(kind)
    plain.load_state_dict(state)
    shifted.load_state_dict(shifted_state)
    plain.fit(x, None, 1, True)
    shifted.fit(x, None, 1, True)
    for a, b in zip(plain.state_dict()["ema"], shifted.state_dict()["ema"], strict=True):
        assert (b - a).abs().max().item() <= MAX_WEIGHT * OFFSET


def test_ema_weight_on_the_starting_parameters_is_the_warm_up_product():
    """Below its cap the decay is (1 + k) / (10 + k), so prod_{k<=n} = 10! (n + 1)! / (n + 10)!."""
    for n in (1, 5, 50):
        closed = math.factorial(10) * math.factorial(n + 1) / math.factorial(n + 10)
        assert ema_start_weight(0.999, n) == pytest.approx(closed, rel=1e-12)
    assert ema_decay(0.9, 1000) == 0.9


@pytest.mark.parametrize("name", DEEP_PRESETS)
def test_presets_ema_forgets_the_start_of_each_fine_tuning(name):
    model = preset_raw(name)["model"]
    p = MODELS.parse_params(model["kind"], model["params"], "model.params")
    assert ema_start_weight(p.ema_decay, p.finetune_steps or p.train_steps) < MAX_WEIGHT
