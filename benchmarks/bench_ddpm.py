"""DDPM training speed: our batched family against a plain PyTorch loop, and batched vs one-at-a-time.

Both loops do the same work per step: draw a minibatch, t and noise, the noise-prediction loss,
Adam, gradient clipping and an EMA update. Batching replicates saves the per-step Python and
dispatch overhead, not arithmetic: on a small network (the tests' size) that overhead dominates
and the target is 3x; the default network (hidden 128, depth 3, batch 256) is compute-bound on one
thread, where batching can only remove the overhead's share, so its row asks only for no loss.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from timing import best_times
from torch import nn

from selfconsume.models.ddpm import DDPM, DDPMParams, betas
from selfconsume.models.nets import time_embedding
from selfconsume.seeding import Streams

STEPS, N, REPLICATES = 300, 2000, 8
DEFAULT = DDPMParams(train_steps=STEPS)
SMALL = DDPMParams(train_steps=STEPS, hidden=64, depth=2, batch_size=128)


def data(replicates: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((replicates, N, 2))


def family_fit(p: DDPMParams, replicates: int) -> Callable[[], object]:
    """One from-scratch fit of `replicates` replicates (STEPS steps)."""
    model = DDPM(p, dim=2, replicates=replicates, streams=Streams(0))
    x = data(replicates)
    return lambda: model.fit(x, None, 0, False)


def plain_fit(p: DDPMParams) -> Callable[[], None]:
    """STEPS steps of a textbook nn.Linear DDPM loop with the same recipe."""
    sizes = [2 + p.time_dim] + [p.hidden] * p.depth + [2]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers += [nn.Linear(a, b)] + ([nn.SiLU()] if i < len(sizes) - 2 else [])
    net = nn.Sequential(*layers)
    ema = [q.detach().clone() for q in net.parameters()]
    opt = torch.optim.Adam(net.parameters(), lr=p.lr)
    x = torch.as_tensor(data(1)[0], dtype=torch.float32)
    abar = torch.as_tensor(np.cumprod(1 - betas(p.schedule, p.n_steps)), dtype=torch.float32)

    def train() -> None:
        for step in range(STEPS):
            batch = x[torch.randint(0, N, (p.batch_size,))]
            t = torch.randint(0, p.n_steps, (p.batch_size,))
            eps = torch.randn_like(batch)
            a = abar[t][:, None]
            xt = a.sqrt() * batch + (1 - a).sqrt() * eps
            inp = torch.cat([xt, time_embedding(t.float() / p.n_steps, p.time_dim)], dim=-1)
            loss = (net(inp) - eps).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), p.grad_clip)
            opt.step()
            decay = min(p.ema_decay, (2 + step) / (11 + step))
            with torch.no_grad():
                for e, q in zip(ema, net.parameters(), strict=True):
                    e.lerp_(q, 1 - decay)

    return train


def speedup_row(p: DDPMParams, label: str, target: str) -> dict:
    t = best_times({"one": family_fit(p, 1), "batched": family_fit(p, REPLICATES)})
    one, batched = t["one"], t["batched"]
    return {
        "name": f"ddpm per-replicate speed-up, {REPLICATES} batched vs one at a time ({label})",
        "value": REPLICATES * STEPS / batched,
        "baseline": STEPS / one,
        "ratio": REPLICATES * one / batched,
        "target": target,
        "unit": "replicate-steps/s",
    }


def run() -> list[dict]:
    torch.set_num_threads(1)
    t = best_times({"plain": plain_fit(DEFAULT), "one": family_fit(DEFAULT, 1)})
    plain, one = t["plain"], t["one"]
    return [
        {
            "name": "ddpm train steps/s, replicates=1, default network (vs plain nn.Linear loop)",
            "value": STEPS / one,
            "baseline": STEPS / plain,
            "ratio": plain / one,
            "target": ">= 0.9",
            "unit": "steps/s",
        },
        speedup_row(SMALL, "hidden 64, depth 2, batch 128", ">= 3"),
        speedup_row(DEFAULT, "default network, compute-bound", ">= 1"),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
