"""Image DDPM speed on 8x8 digits (one thread): our U-Net training step against a plain PyTorch loop
over the same network, replicates batched vs one at a time (and torch.func.vmap over stacked
U-Net parameters, the alternative to the U-Net's loop over replicates), and sampling throughput.

The plain loop does what ours does per step (minibatch, t and noise, the v-prediction loss, Adam,
gradient clipping, EMA) with torch's global generator; the target is ours >= 0.9 of its speed.
"""

from __future__ import annotations

import numpy as np
import torch
from timing import best_times

from selfconsume.data.base import DATA
from selfconsume.models.base import MODELS
from selfconsume.models.nets import embed
from selfconsume.seeding import Streams

STEPS, REPLICATES, SAMPLES = 40, 3, 500
NETS = {
    "U-Net 16/32": {"net": "unet", "channels": [16, 32]},
    "U-Net 32/64": {"net": "unet", "channels": [32, 64]},
    "MLP 3x512": {"net": "mlp", "hidden": 512, "depth": 3},
}
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


def plain_fit(m, x: np.ndarray):
    """STEPS steps of the same recipe on replicate 0, written as a textbook loop."""
    net, params = m.net.network, [q.detach().clone().requires_grad_() for q in m.net.params]
    opt = torch.optim.Adam(params, lr=m.p.lr)
    ema = [q.detach().clone() for q in params]
    data = torch.as_tensor(x[:1], dtype=torch.float32)
    abar = m.abar_t

    def run() -> None:
        for _ in range(STEPS):
            idx = torch.randint(0, data.shape[1], (1, m.p.batch_size))
            x0 = data[:, idx[0]]
            t = torch.randint(0, m.p.n_steps, (1, m.p.batch_size))
            z = torch.randn_like(x0)
            a, s = abar[t].sqrt()[..., None], (1 - abar[t]).sqrt()[..., None]
            out = net(params, a * x0 + s * z, t.float() / m.p.n_steps, None)
            loss = (out - (a * z - s * x0)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, m.p.grad_clip)
            opt.step()
            with torch.no_grad():
                for e, q in zip(ema, params, strict=True):
                    e.lerp_(q, 1 - m.p.ema_decay)

    return run


def vmapped_forward(m, x: torch.Tensor, t: torch.Tensor):
    """The U-Net's forward over all replicates with torch.func.vmap instead of its loop."""
    unet = m.net.network
    e = embed(t, None, unet.time_dim, unet.classes)
    images = x.reshape(x.shape[0], x.shape[1], *unet.shape)
    return torch.func.vmap(unet.one)(m.net.params, images, e)


def run() -> list[dict]:
    """Rows for benchmarks/run.py: per network, our step vs the plain loop, batched vs one at a
    time, sampling throughput (and, for the U-Net, vmap vs the loop over replicates)."""
    torch.set_num_threads(1)
    source = DATA.get("digits").obj(DATA.parse_params("digits", {}, "data.params"))
    x = source.sample(REPLICATES, 500, np.random.default_rng(0))
    return [row for name, spec in NETS.items() for row in bench(name, spec, x)]


def bench(name: str, spec: dict, x: np.ndarray) -> list[dict]:
    """One network's rows."""
    one, many = model(spec, 1), model(spec, REPLICATES)
    alone = [model(spec, 1) for _ in range(REPLICATES)]
    times = best_times(
        {
            "ours": lambda: one.fit(x[:1], None, 0, False),
            "plain": plain_fit(one, x),
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
    if spec["net"] == "unet":
        xb = torch.randn(REPLICATES, 128, 64)
        tb = torch.rand(REPLICATES, 128)
        fwd = best_times(
            {
                "loop": lambda: many.net.network(many.net.params, xb, tb, None).sum().backward(),
                "vmap": lambda: vmapped_forward(many, xb, tb).sum().backward(),
            },
            repeats=5,
        )
        rows.append(
            {
                "name": f"image ddpm {name}: forward+backward of {REPLICATES} replicates, vmap vs loop",
                "value": fwd["loop"],
                "baseline": fwd["vmap"],
                "ratio": fwd["vmap"] / fwd["loop"],
                "target": "",
                "unit": "s",
            }
        )
    return rows
