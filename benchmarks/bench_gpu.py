"""GPU benchmark (issue 19): on one CUDA device, the image presets' U-Nets trained by our batched
`Trainer` (all replicates per step, the U-Net's replicates grouped into one network:
`unet_replicates: grouped`) against a plain PyTorch loop of the same network (one replicate, one
model per step, the textbook recipe, `plain_ddpm.py`), in images/s, and against our trainer with
the replicates one after another (`loop`); the achieved TFLOP/s of our step; DDIM sampler images/s
(grouped and looped); peak GPU memory; and each digits/MNIST preset's wall time at default scale.

    python benchmarks/bench_gpu.py            # on a GPU machine: writes bench-results/gpu.json

Without CUDA it writes a record saying it skipped and why (exit 0). `--device cpu --tiny` runs the
same code at tiny sizes on the CPU, presets included at a tiny scale (a smoke test of this file;
tests/test_bench_gpu.py runs it); its numbers say nothing about a GPU. `make bench` calls `run()`,
which gives the trainer rows on a GPU and none without one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))  # the benchmarks share plain_ddpm.py
from plain_ddpm import plain_loop

from selfconsume.models.base import MODELS
from selfconsume.seeding import Streams

REPLICATES = 3
PRESETS = ("stability-digits", "curated-digits", "stability-mnist", "curated-mnist")
SIZES = {
    "digits 8x8, U-Net 16/32": {"shape": (1, 8, 8), "channels": [16, 32]},
    "MNIST 28x28, U-Net 32/64": {"shape": (1, 28, 28), "channels": [32, 64]},
}
FULL = {"steps": 200, "batch_size": 128, "samples": 1000, "ddim_steps": 100}
TINY = {"steps": 3, "batch_size": 8, "samples": 8, "ddim_steps": 3}
TINY_PRESET = [
    *("--quick", "--set", "generations=0", "--set", "model.params.train_steps=3"),
    *("--set", "model.params.ddim_steps=3", "--set", "data.n_test=20"),
]
"""A preset at tiny scale (--tiny): its quick scale, generation 0 only, 3 training steps, 20
samples of 3 DDIM steps for the metrics."""


def model(size: dict, replicates: int, scale: dict, device: str, unet_replicates: str):
    """The presets' DDPM (v-prediction, T = 1000, DDIM) with this size's U-Net, its replicates
    grouped into one network (or looped)."""
    params = {
        "net": "unet",
        "channels": size["channels"],
        "unet_replicates": unet_replicates,
        "normalize": False,
        "n_steps": 1000,
        "prediction": "v",
        "sampler": "ddim",
        "ddim_steps": scale["ddim_steps"],
        "train_steps": scale["steps"],
        "batch_size": scale["batch_size"],
        "device": device,
    }
    dim = int(np.prod(size["shape"]))
    return MODELS.make(
        "ddpm",
        params,
        dim=dim,
        replicates=replicates,
        streams=Streams(0),
        image_shape=size["shape"],
    )


def step_flops(m, batch: int) -> int:
    """FLOPs of one replicate's forward and backward pass at this batch (matmuls and
    convolutions, as torch's flop counter sees them)."""
    params = [q.detach()[:1].clone().requires_grad_() for q in m.net.params]
    x = torch.randn(1, batch, m.dim, device=m.device)
    t = torch.rand(1, batch, device=m.device)
    with FlopCounterMode(display=False) as counter:
        m.net.network(params, x, t, None).pow(2).mean().backward()
    return counter.get_total_flops()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn) -> float:
    """Wall seconds of fn() after one warm-up call (kernels chosen, caches filled)."""
    fn()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, size: dict, scale: dict, device: str) -> dict:
    """One size's numbers: ours (all replicates per step, the U-Net's grouped into one network)
    vs the plain loop, and vs our trainer with the U-Net's replicates one after another; TFLOP/s,
    sampler images/s (grouped and looped) and peak memory."""
    torch.manual_seed(0)
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    ours, looped = (model(size, REPLICATES, scale, device, how) for how in ("grouped", "loop"))
    x = np.random.default_rng(0).uniform(-1, 1, (REPLICATES, 500, ours.dim))
    steps, batch = scale["steps"], scale["batch_size"]
    ours_s = timed(lambda: ours.fit(x, None, 0, False))
    loop_s = timed(lambda: looped.fit(x, None, 0, False))
    plain_s = timed(plain_loop(ours, x, steps))

    def sampler(m) -> float:
        def sample() -> None:
            m.sample(scale["samples"], np.random.default_rng(0), 0)
            synchronize(dev)

        return scale["samples"] * REPLICATES / timed(sample)

    ours_images = steps * batch * REPLICATES / ours_s
    plain_images = steps * batch / plain_s
    flops = step_flops(ours, batch)
    return {
        "size": name,
        "replicates": REPLICATES,
        "batch_size": batch,
        "steps": steps,
        "ours_steps_per_s": steps / ours_s,
        "ours_images_per_s": ours_images,
        "plain_steps_per_s": steps / plain_s,
        "plain_images_per_s": plain_images,
        "images_per_s_ratio": ours_images / plain_images,
        "looped_images_per_s": steps * batch * REPLICATES / loop_s,
        "grouped_vs_looped_ratio": loop_s / ours_s,
        "step_gflop_per_replicate": flops / 1e9,
        "ours_tflop_per_s": flops * REPLICATES * steps / ours_s / 1e12,
        "sampler_images_per_s": sampler(ours),
        "looped_sampler_images_per_s": sampler(looped),
        "ddim_steps": scale["ddim_steps"],
        "peak_gpu_memory_gib": (
            torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
        ),
    }


def preset_wall(name: str, device: str, tiny: bool) -> dict:
    """A preset's wall time in a fresh store (its data classifier trained too), one process."""
    args = TINY_PRESET if tiny else []
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "store.sqlite"
        cli = "from selfconsume.cli import app; app()"
        cmd = [sys.executable, "-c", cli, "run", name, "--store", str(store)]
        cmd += [*args, "--set", f"model.params.device={device}"]
        env = {k: v for k, v in os.environ.items() if k != "SELFCONSUME_CACHE"}
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
    record = {"preset": name, "scale": "tiny" if tiny else "default", "wall_s": wall}
    record["exit_code"] = done.returncode
    if done.returncode:
        record["error"] = ((done.stderr or done.stdout).strip().splitlines() or [""])[-1]
    return record


def run() -> list[dict]:
    """Rows for benchmarks/run.py: on a GPU, our images/s against the plain loop's per size
    (target: >= 10x); none without CUDA."""
    if not torch.cuda.is_available():
        return []
    rows = []
    for name, size in SIZES.items():
        r = measure(name, size, FULL, "cuda")
        rows.append(
            {
                "name": f"GPU {name}: batched trainer vs plain loop, training images/s",
                "value": r["ours_images_per_s"],
                "baseline": r["plain_images_per_s"],
                "ratio": r["images_per_s_ratio"],
                "target": ">= 10",
                "unit": "images/s",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results/gpu.json")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated; '' none")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "machine": platform.machine(),
        "device": args.device,
        "tiny": args.tiny,
    }
    if args.device == "cuda" and not torch.cuda.is_available():
        record = {"meta": meta, "skipped": True, "reason": "torch sees no CUDA device"}
        out.write_text(json.dumps(record, indent=2))
        print(f"skipped: torch sees no CUDA device; wrote {out}", file=sys.stderr)
        return 0
    if args.device == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(0)
    scale = TINY if args.tiny else FULL
    sizes = [measure(name, size, scale, args.device) for name, size in SIZES.items()]
    presets = [p for p in args.presets.split(",") if p]
    walls = [preset_wall(p, args.device, args.tiny) for p in presets]
    out.write_text(
        json.dumps({"meta": meta, "skipped": False, "sizes": sizes, "presets": walls}, indent=2)
    )
    for row in sizes:
        print(json.dumps(row), file=sys.stderr)
    for row in walls:
        print(json.dumps(row), file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
