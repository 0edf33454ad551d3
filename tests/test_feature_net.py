"""The feature metrics on a network from a local file (`data.params.features`): a TorchScript
module the test exports gives exactly the features the metrics use, images reach it resized and
repeated to its channels, and a missing, unreadable or misshapen network is bad input (exit 2,
one line naming the key and the file, nothing stored)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.data.base import DATA
from selfconsume.errors import ConfigError
from selfconsume.metrics import features
from selfconsume.metrics.base import METRICS, MetricContext
from selfconsume.plan import resolve
from selfconsume.seeding import Streams

GROUPS = ["fd", "feature_prd", "fls", "memorization"]
pytestmark = pytest.mark.filterwarnings("ignore:.torch.jit.*:DeprecationWarning")


class Linear(nn.Module):
    """Features W x + b of the flattened image (a known map to compare the metrics with)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.as_tensor(weight, dtype=torch.float32))
        self.bias = nn.Parameter(torch.as_tensor(bias, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


class ChannelMeans(nn.Module):
    """Features: each channel's mean pixel, (B, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class Unflattened(nn.Module):
    """A network whose output keeps spatial axes (B, C, 1, 1): not features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


def export(module: nn.Module, path: Path, trace: tuple[int, ...] | None = None) -> Path:
    """Save module as TorchScript (scripted, or traced on zeros of shape `trace`)."""
    scripted = torch.jit.trace(module, torch.zeros(trace)) if trace else torch.jit.script(module)
    torch.jit.save(scripted, str(path))
    return path


def digits_with(path: Path, **spec) -> object:
    return DATA.make("digits", {"features": {"path": str(path), **spec}})


class Fixed:
    """A stand-in model whose samples are given images (R, n, dim)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def sample(self, n: int, rng, generation: int) -> np.ndarray:
        return self.x[:, :n]


def test_the_feature_metrics_use_the_files_network(tmp_path, digits):
    """fd, feature_prd, fls and memorization equal their functions of W x + b, the features the
    exported network gives (float32 inside the network: rtol 1e-4)."""
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(6, 64)) / 8, rng.normal(size=6)
    source = digits_with(export(Linear(weight, bias), tmp_path / "linear.pt"))
    real = source.sample(2, 60, Streams(0).per_replicate("real", 0))
    test = source.sample_test(2, 50, Streams(0).per_replicate("test", 0))
    fake = real[:, :50] + 0.3 * rng.normal(size=(2, 50, 64))
    ctx = MetricContext(Fixed(fake), source, real, test, 0, Streams(0))
    f = lambda x: x @ weight.T + bias  # noqa: E731
    got = {k: v for name in GROUPS for k, v in METRICS.get(name).obj(ctx).items()}
    expected = {
        "fd": features.frechet_distance(f(fake), f(test)),
        **features.fls_scores(f(real), f(test), f(fake)),
        "memorization": features.memorization_rate(f(real), f(test), f(fake)),
    }
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-4, err_msg=key)
    plain = MetricContext(Fixed(fake), digits, real, test, 0, Streams(0))
    assert not np.allclose(METRICS.get("fd").obj(plain)["fd"], got["fd"])  # not the classifier
    assert set(got) >= {"precision", "recall", "density", "coverage"}


def test_images_are_resized_and_repeated_to_the_networks_input(tmp_path):
    """A constant grey 8x8 image, resized to 16x16 and repeated to 3 channels, has mean v in
    each channel; a traced network sees exactly the input_size it was traced with."""
    path = export(ChannelMeans(), tmp_path / "means.pt", trace=(2, 3, 16, 16))
    net = digits_with(path, input_size=[3, 16, 16]).feature_network()
    v = np.array([-0.5, 0.25, 1.0])
    images = np.broadcast_to(v[:, None], (3, 64))[None]
    np.testing.assert_allclose(net.features(images), np.repeat(v[None, :, None], 3, -1), atol=1e-6)


def run(tmp_path: Path, spec: dict, data: dict | None = None) -> tuple[object, Path]:
    """`selfconsume run` of a one-generation KDE on `data` (digits) with the feature groups and
    the feature network `spec`."""
    data = data or {"kind": "digits", "params": {}}
    raw = {
        "name": "features-from-a-file",
        "replicates": 2,
        "generations": 1,
        "data": {**data, "n_real": 60, "n_test": 40},
        "model": {"kind": "kde", "params": {"bandwidth": 0.3}},
        "metrics": GROUPS,
    }
    raw["data"]["params"] = {**data["params"], "features": spec}
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(raw))
    store = tmp_path / "store.sqlite"
    return CliRunner().invoke(app, ["run", str(config), "--store", str(store)]), store


def test_a_run_with_a_feature_network_stores_every_group(tmp_path):
    path = export(Linear(np.eye(4, 64), np.zeros(4)), tmp_path / "net.pt")
    result, store = run(tmp_path, {"kind": "torchscript", "path": str(path)})
    assert result.exit_code == 0, result.output
    assert store.exists()


def test_unlabelled_images_take_the_feature_groups_from_a_file_network(tmp_path):
    """Without labels there is no data classifier: a file network is what the groups need."""
    images = tmp_path / "images.npz"
    np.savez(images, x=np.random.default_rng(0).integers(0, 256, (400, 4, 4)))
    data = {"kind": "image_file", "params": {"path": str(images)}}
    path = export(Linear(np.eye(3, 16), np.zeros(3)), tmp_path / "net.pt")
    result, store = run(tmp_path, {"path": str(path)}, data)
    assert result.exit_code == 0, result.output
    raw = {"name": "x", "data": {**data, "n_real": 60, "n_test": 40}, "model": {"kind": "kde"}}
    with pytest.raises(ConfigError, match="metrics: fd needs labelled image data"):
        resolve({**raw, "metrics": ["fd"]})


BAD = {
    "missing": (None, "data.params.features.path: no file"),
    "not torchscript": (b"not a network", "is not a TorchScript file"),
    "spatial output": (Unflattened(), "not (B, f)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_feature_network_exits_2_naming_the_key_and_file(tmp_path, case):
    content, needle = BAD[case]
    path = tmp_path / "net.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        export(content, path)
    result, store = run(tmp_path, {"path": str(path)})
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2
    assert len(lines) == 1 and needle in lines[0] and str(path) in lines[0], result.output
    assert "data.params.features" in lines[0]
    assert not store.exists()


def test_channels_the_network_cannot_take_are_bad_input(tmp_path):
    path = export(ChannelMeans(), tmp_path / "means.pt")
    result, store = run(tmp_path, {"path": str(path), "input_size": [2, 8, 8]})
    assert result.exit_code == 2 and "data.params.features.input_size" in result.output
    assert not store.exists()
