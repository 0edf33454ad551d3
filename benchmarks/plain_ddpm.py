"""The baseline the image benchmarks time our DDPM trainer against: the same recipe (minibatch, t
and noise, the v-prediction loss, Adam, gradient clipping, EMA) on one replicate of the same
network, written as a textbook PyTorch loop with torch's global generator, on the model's device."""

from __future__ import annotations

import copy

import numpy as np
import torch

from selfconsume.models.nets import UNet


def plain_loop(m, x: np.ndarray, steps: int):
    """A function running `steps` steps of the recipe on replicate 0 of DDPM `m` (data x[0]),
    starting from its parameters; a U-Net runs as one network (not grouped)."""
    device = m.device
    net = m.net.network
    if isinstance(net, UNet):
        net = copy.copy(net)
        net.grouped = False
    params = [q.detach()[:1].clone().requires_grad_() for q in m.net.params]
    opt = torch.optim.Adam(params, lr=m.p.lr)
    ema = [q.detach().clone() for q in params]
    data = torch.as_tensor(x[:1], dtype=torch.float32, device=device)
    abar, batch = m.abar_t, m.p.batch_size

    def run() -> None:
        for _ in range(steps):
            idx = torch.randint(0, data.shape[1], (1, batch), device=device)
            x0 = data[:, idx[0]]
            t = torch.randint(0, m.p.n_steps, (1, batch), device=device)
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
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return run
