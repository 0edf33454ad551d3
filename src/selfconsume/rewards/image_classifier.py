"""The data's image classifier: a small CNN trained once on the classifier split, cached on disk.

Two 3x3 convolutions (32 and 64 channels, ReLU; a 2x2 max-pool after the first when the image is
12 pixels or more, and after the second), a 128-unit ReLU layer (the *features*: the penultimate
layer the image metrics use) and a linear head. It trains with Adam (lr 2e-3, batches of 32,
25 epochs, seeded init and shuffling) on every image of the source's classifier split, in float32
on the CPU with torch's current thread count, and its accuracy is measured on the test split,
which it never sees. A few seconds for digits.

Weights are cached as an .npz of float32 arrays (no pickle) in `cache_dir()`: $SELFCONSUME_CACHE,
else ~/.cache/selfconsume; the processes of a sweep that need it at once train it once (the others
wait for it). The file name is a hash of the data's content key (its classifier and
test splits), the architecture and training settings and the seed, so a sweep trains once, a
changed dataset or split trains anew, and an unreadable cache file is retrained and replaced.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from selfconsume.cache import cache_dir, locked, write_atomic

ARCH = {"widths": (32, 64), "features": 128, "epochs": 25, "batch_size": 32, "lr": 2e-3, "v": 1}
"""Architecture and training settings; part of the cache key."""
POOL_FIRST_FROM = 12
"""Images at least this many pixels high and wide are pooled after the first convolution too."""
INFERENCE_BATCH = 4096
_LOADED: dict[str, ImageClassifier] = {}


class ConvNet(nn.Module):
    """conv-ReLU(-pool) conv-ReLU-pool, flatten, linear-ReLU (features), linear (logits)."""

    def __init__(self, image_shape: tuple[int, int, int], n_classes: int) -> None:
        super().__init__()
        c, h, w = image_shape
        c1, c2 = ARCH["widths"]
        layers: list[nn.Module] = [nn.Conv2d(c, c1, 3, padding=1), nn.ReLU()]
        if min(h, w) >= POOL_FIRST_FROM:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        layers += [nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
        h, w = h // 2, w // 2
        layers += [nn.Linear(c2 * h * w, ARCH["features"]), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(ARCH["features"], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass
class ImageClassifier:
    """A trained ConvNet with numpy in and out: images flattened (..., C*H*W) -> (..., k)."""

    net: ConvNet
    image_shape: tuple[int, int, int]
    n_classes: int
    accuracy: float
    """Accuracy on the data's test split (held out from training)."""
    train_seconds: float
    """Training time when it was trained (the cached value when loaded)."""

    def _apply(self, x: np.ndarray, layer: nn.Module) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float32).reshape(-1, *self.image_shape)
        outs = []
        with torch.no_grad():
            for start in range(0, len(flat), INFERENCE_BATCH):
                outs.append(layer(torch.from_numpy(flat[start : start + INFERENCE_BATCH])))
        out = torch.cat(outs).double().numpy()
        return out.reshape(*np.shape(x)[:-1], out.shape[-1])

    def features(self, x: np.ndarray) -> np.ndarray:
        """Penultimate-layer features (..., 128) of images (..., C*H*W)."""
        return self._apply(x, self.net.body)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self._apply(x, self.net)

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (..., n_classes), by a stable softmax of the logits."""
        z = self.logits(x)
        z = np.exp(z - z.max(-1, keepdims=True))
        return z / z.sum(-1, keepdims=True)


def train(
    x: np.ndarray, y: np.ndarray, image_shape: tuple[int, int, int], n_classes: int, seed: int
) -> tuple[ConvNet, float]:
    """A ConvNet fitted to images x (n, C*H*W) with labels y (n,); returns it and the seconds."""
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ConvNet(image_shape, n_classes)
    gen = torch.Generator().manual_seed(seed)
    images = torch.from_numpy(np.asarray(x, dtype=np.float32).reshape(-1, *image_shape))
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=ARCH["lr"])
    batch = ARCH["batch_size"]
    for _ in range(ARCH["epochs"]):
        order = torch.randperm(len(images), generator=gen)
        for i in range(0, len(images), batch):
            idx = order[i : i + batch]
            loss = nn.functional.cross_entropy(net(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return net, time.perf_counter() - start


def cache_key(source: object, seed: int) -> str:
    """The cache file's key: the data's content key, the settings and the seed."""
    text = json.dumps({"data": source.content_key, "arch": ARCH, "seed": seed}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _save(path: Path, clf: ImageClassifier) -> None:
    arrays = {f"w.{k}": v.numpy() for k, v in clf.net.state_dict().items()}
    arrays["meta"] = np.array([clf.accuracy, clf.train_seconds])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(path, buf.getvalue())


def _load(path: Path, image_shape: tuple[int, int, int], n_classes: int) -> ImageClassifier:
    net = ConvNet(image_shape, n_classes)
    with np.load(path, allow_pickle=False) as data:
        state = {k[2:]: torch.from_numpy(data[k]) for k in data.files if k.startswith("w.")}
        accuracy, seconds = (float(v) for v in data["meta"])
    net.load_state_dict(state)
    net.eval()
    return ImageClassifier(net, image_shape, n_classes, accuracy, seconds)


def data_classifier(source: object, seed: int = 0) -> ImageClassifier:
    """The classifier of a labelled image source (data.images.LabelledImageSet), trained on its
    classifier split with `seed`: from this process's memory, else the cache, else trained and
    cached."""
    key = cache_key(source, seed)
    if key in _LOADED:
        return _LOADED[key]
    shape, k = tuple(source.image_shape), source.n_classes
    path = cache_dir() / f"classifier-{key}.npz"
    with locked(path):  # a sweep's processes train it once; the others wait and load it
        try:
            clf = _load(path, shape, k)
        except (OSError, ValueError, KeyError, RuntimeError, EOFError, zipfile.BadZipFile):
            clf = _train_and_cache(source, seed, path)
    _LOADED[key] = clf
    return clf


def _train_and_cache(source: object, seed: int, path: Path) -> ImageClassifier:
    shape, k = tuple(source.image_shape), source.n_classes
    x, y = source.classifier_split()
    net, seconds = train(x, y, shape, k, seed)
    clf = ImageClassifier(net, shape, k, 0.0, seconds)
    x_test, y_test = source.test_split()
    clf.accuracy = float((clf.proba(x_test).argmax(-1) == y_test).mean())
    try:
        _save(path, clf)
    except OSError as exc:
        warnings.warn(f"classifier cache {path} not written ({exc})", stacklevel=2)
    return clf
