"""Image DDPM speed on a CPU (one thread): on 8x8 digits, our training step against a plain PyTorch
loop over the same network, replicates batched vs one at a time, and sampling throughput; then
the presets' U-Nets (digits 8x8, MNIST 28x28) with their replicates run three ways: one after
another (`unet_replicates: loop`), as one network of grouped convolutions (`grouped`), and with
torch.func.vmap over the stacked parameters.

The plain loop (`plain_ddpm.py`) does what ours does per step (minibatch, t and noise, the
v-prediction loss, Adam, gradient clipping, EMA) with torch's global generator; the target is ours
>= 0.9 of its speed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from plain_ddpm import plain_loop
from timing import best_times

from selfconsume.data.base import DATA
from selfconsume.models.base import MODELS
from selfconsume.models.nets import UNet, embed
from selfconsume.seeding import Streams

STEPS, REPLICATES, SAMPLES = 40, 3, 500
NETS = {
    "U-Net 16/32": {"net": "unet", "channels": [16, 32]},
    "U-Net 32/64": {"net": "unet", "channels": [32, 64]},
    "MLP 3x512": {"net": "mlp", "hidden": 512, "depth": 3},
}
GROUPING = {
    "digits 8x8, U-Net 16/32, 3 replicates": ((1, 8, 8), (16, 32), 3),
    "digits 8x8, U-Net 16/32, 5 replicates": ((1, 8, 8), (16, 32), 5),
    "MNIST 28x28, U-Net 32/64, 3 replicates": ((1, 28, 28), (32, 64), 3),
}
"""The U-Nets of the digits and MNIST presets, timed with their replicates grouped vs looped."""
TRAIN_BATCH, SAMPLER_BATCH = 128, 500
COMMON = {
    "train_steps": STEPS,
    "batch_size": 128,
    "n_steps": 1000,
    "prediction": "v",
    "sampler": "ddim",
    "ddim_steps": 100,
    "normalize": False,
    "device": "cpu",
}


def model(spec: dict, replicates: int):
    p = MODELS.parse_params("ddpm", {**COMMON, **spec}, "model.params")
    return MODELS.get("ddpm").obj(
        p, dim=64, replicates=replicates, streams=Streams(0), image_shape=(1, 8, 8)
    )


def run() -> list[dict]:
    """Rows for benchmarks/run.py: per network, our step vs the plain loop, batched vs one at a
    time, sampling throughput; then the U-Net's replicates grouped vs looped (and vmapped)."""
    torch.set_num_threads(1)
    source = DATA.get("digits").obj(DATA.parse_params("digits", {}, "data.params"))
    x = source.sample(REPLICATES, 500, np.random.default_rng(0))
    rows = [row for name, spec in NETS.items() for row in bench(name, spec, x)]
    return rows + [row for name, case in GROUPING.items() for row in grouping(name, *case)]


def bench(name: str, spec: dict, x: np.ndarray) -> list[dict]:
    """One network's rows."""
    one, many = model(spec, 1), model(spec, REPLICATES)
    alone = [model(spec, 1) for _ in range(REPLICATES)]
    times = best_times(
        {
            "ours": lambda: one.fit(x[:1], None, 0, False),
            "plain": plain_loop(one, x, STEPS),
            "batched": lambda: many.fit(x, None, 0, False),
            "one at a time": lambda: [
                a.fit(x[i : i + 1], None, 0, False) for i, a in enumerate(alone)
            ],
            "sample": lambda: one.sample(SAMPLES, np.random.default_rng(0), 0),
        },
        repeats=3,
    )
    rows = [
        {
            "name": f"image ddpm {name}: training steps/s vs a plain PyTorch loop",
            "value": STEPS / times["ours"],
            "baseline": STEPS / times["plain"],
            "ratio": times["plain"] / times["ours"],
            "target": ">= 0.9",
            "unit": "steps/s",
        },
        {
            "name": f"image ddpm {name}: {REPLICATES} replicates batched vs one at a time",
            "value": times["batched"],
            "baseline": times["one at a time"],
            "ratio": times["one at a time"] / times["batched"],
            "target": ">= 1",
            "unit": "s",
        },
        {
            "name": f"image ddpm {name}: sampling throughput (DDIM 100 steps)",
            "value": SAMPLES / times["sample"],
            "baseline": SAMPLES / times["sample"],
            "ratio": 1.0,
            "target": "",
            "unit": "images/s",
        },
    ]
    return rows


def vmapped(unet: UNet, params: list[torch.Tensor], x: torch.Tensor, t: torch.Tensor):
    """The U-Net's forward over all replicates with torch.func.vmap over its one-replicate
    function (the third way to batch them)."""
    e = embed(t, None, unet.time_dim, unet.classes)
    images = x.reshape(x.shape[0], x.shape[1], *unet.shape)
    return torch.func.vmap(unet.one)(params, images, e)


def grouping(
    name: str, shape: tuple[int, int, int], channels: tuple[int, int], replicates: int
) -> list[dict]:
    """Forward+backward at the training batch and a no-grad sampler step at SAMPLER_BATCH (one
    DDIM step), the U-Net's replicates looped vs grouped (and vmapped, at 3 replicates), in CPU
    seconds of this process: one thread, so load from other processes barely moves them."""
    loop, grouped = (UNet(shape, channels, 16, 0, g) for g in (False, True))
    gens = [torch.Generator().manual_seed(r) for r in range(replicates)]
    params = [q.requires_grad_() for q in loop.init(gens)]
    d = math.prod(shape)
    x, t = torch.randn(replicates, TRAIN_BATCH, d), torch.rand(replicates, TRAIN_BATCH)
    xs, ts = torch.randn(replicates, SAMPLER_BATCH, d), torch.rand(replicates, SAMPLER_BATCH)

    def train(net) -> Callable[[], None]:
        return lambda: net(params, x, t, None).pow(2).mean().backward()

    def step(net) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                net(params, xs, ts, None)

        return run

    fns = {
        "loop": train(loop),
        "grouped": train(grouped),
        "loop step": step(loop),
        "grouped step": step(grouped),
    }
    if replicates == 3 and shape[1] == 8:
        fns["vmap"] = lambda: vmapped(loop, params, x, t).pow(2).mean().backward()
    times = best_times(fns, repeats=5, clock=time.process_time)
    rows = [
        {
            "name": f"U-Net {name}: forward+backward at batch {TRAIN_BATCH}, grouped vs loop",
            "value": times["grouped"],
            "baseline": times["loop"],
            "ratio": times["loop"] / times["grouped"],
            "target": "",
            "unit": "CPU s",
        },
        {
            "name": f"U-Net {name}: sampler step at batch {SAMPLER_BATCH}, grouped vs loop",
            "value": times["grouped step"],
            "baseline": times["loop step"],
            "ratio": times["loop step"] / times["grouped step"],
            "target": "",
            "unit": "CPU s",
        },
    ]
    if "vmap" in times:
        rows.append(
            {
                "name": f"U-Net {name}: forward+backward at batch {TRAIN_BATCH}, vmap vs loop",
                "value": times["vmap"],
                "baseline": times["loop"],
                "ratio": times["loop"] / times["vmap"],
                "target": "",
                "unit": "CPU s",
            }
        )
    return rows
