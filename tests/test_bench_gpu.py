"""benchmarks/bench_gpu.py is ready for a GPU: without CUDA it writes a record saying it skipped
and why, and its whole measuring path (trainer vs plain loop, FLOPs, sampler, a preset's wall
time) runs at tiny sizes on the CPU."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).parents[1] / "benchmarks" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_writes_a_skip_record_and_gives_no_rows(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu.json"
    assert bench.main(["--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["skipped"] is True and "no CUDA device" in record["reason"]
    assert bench.run() == []


@pytest.mark.slow
def test_its_measuring_path_runs_at_tiny_sizes_on_the_cpu(bench, tmp_path):
    out = tmp_path / "gpu.json"
    assert (
        bench.main(
            ["--device", "cpu", "--tiny", "--out", str(out)] + ["--presets", "stability-digits"]
        )
        == 0
    )
    record = json.loads(out.read_text())
    assert record["skipped"] is False and len(record["sizes"]) == len(bench.SIZES)
    for row in record["sizes"]:
        for key in (
            "ours_images_per_s",
            "plain_images_per_s",
            "ours_tflop_per_s",
            "sampler_images_per_s",
        ):
            assert math.isfinite(row[key]) and row[key] > 0, key
        # a 3x3 convolution's multiply-adds alone: 2 * 9 * c1 * c1 per pixel and image, forward
        c1 = 16 if row["size"].startswith("digits") else 32
        pixels = 64 if row["size"].startswith("digits") else 784
        assert row["step_gflop_per_replicate"] * 1e9 > 2 * 9 * c1 * c1 * pixels * row["batch_size"]
    (preset,) = record["presets"]
    assert preset["preset"] == "stability-digits" and preset["exit_code"] == 0, preset
