"""`dtype: bfloat16` autocasts the diffusion and flow families' training forward pass: it takes
effect (the losses differ from float32's) and stays close to float32 on a tiny fit, for the MLP and
both U-Net paths."""

from __future__ import annotations

import numpy as np
import pytest

from selfconsume.models.base import MODELS
from selfconsume.seeding import Streams

NETS = {
    "ddpm mlp": ("ddpm", {"hidden": 32, "depth": 2}),
    "ddpm unet loop": ("ddpm", {"net": "unet", "channels": [8, 16], "unet_replicates": "loop"}),
    "ddpm unet grouped": (
        "ddpm",
        {"net": "unet", "channels": [8, 16], "unet_replicates": "grouped"},
    ),
    "flow unet": ("flow", {"net": "unet", "channels": [8, 16]}),
}
BOUND = 2.0**-6
"""Relative bound on the final loss's change: bfloat16 keeps 8 significant bits (a relative rounding
of 2^-9 per value) and the loss averages many squared errors; 4 roundings' worth (measured: about
3e-6 to 2e-4 after 50 steps)."""


@pytest.mark.parametrize("name", sorted(NETS))
def test_bfloat16_takes_effect_and_stays_close_to_float32(name, digits):
    kind, params = NETS[name]
    x = digits.sample(2, 64, np.random.default_rng(0))
    losses = {}
    for dtype in ("float32", "bfloat16"):
        model = MODELS.make(
            kind,
            {**params, "train_steps": 50, "batch_size": 16, "normalize": False, "dtype": dtype},
            dim=64,
            replicates=2,
            streams=Streams(0),
            image_shape=(1, 8, 8),
        )
        losses[dtype] = model.fit(x, None, 0, False)["loss"]
    change = np.abs(losses["bfloat16"] / losses["float32"] - 1)
    assert np.all(change > 0), "bfloat16 changed nothing: autocast did not take effect"
    assert np.all(change < BOUND), change
