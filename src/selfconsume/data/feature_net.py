"""A feature network loaded from a local file: the feature metrics' features, in place of the
data's classifier (`data.params.features`, image data only).

`{kind: torchscript, path, input_size: [C, H, W], device}` names a TorchScript module (saved with
`torch.jit.save` of a scripted or traced module) whose output (B, f) for images (B, C, H, W) is the
features, e.g. Inception-v3's 2048 pool features for FID. The images it gets are the data's, with
pixels in [-1, 1], resized bilinearly to `input_size` (None: the data's shape), a grey image
repeated to 3 channels when `input_size` asks for 3; anything else a network expects (its own
input normalisation) belongs inside the exported module. It runs in float32 on `device` (`auto`:
CUDA when present) and is loaded with `map_location` on it, once per process. Nothing is
downloaded: the file is the user's. ONNX is not read (onnxruntime is not a dependency).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from selfconsume.errors import ConfigError
from selfconsume.registry import Params

KEY = "data.params.features"
PROBE_IMAGES = 2
"""Images of zeros the network maps when it is loaded: its output must be (2, f), finite."""
_LOADED: dict[tuple, FeatureNet] = {}
Channels = Annotated[int, Field(ge=1, le=4)]
Side = Annotated[int, Field(ge=1, le=1024)]
"""Bounds of `input_size`: images of at most 4 channels and 1024 x 1024 pixels."""


class FeatureNetParams(Params):
    """The feature network file and how images reach it (see the module docstring)."""

    kind: Literal["torchscript"] = "torchscript"
    path: str = Field(min_length=1)
    input_size: tuple[Channels, Side, Side] | None = None
    """(C, H, W) the network takes; None: the data's image shape."""
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    batch_size: int = Field(default=256, ge=1, le=4096)


@dataclass
class FeatureNet:
    """A loaded feature network with numpy in and out: images (..., C*H*W) -> (..., f)."""

    module: Any
    image_shape: tuple[int, int, int]
    input_size: tuple[int, int, int]
    device: Any
    batch_size: int

    def features(self, x: np.ndarray) -> np.ndarray:
        """The network's output (..., f), float64, for images (..., C*H*W) in [-1, 1]."""
        import torch
        import torch.nn.functional as F

        flat = np.asarray(x, dtype=np.float32).reshape(-1, *self.image_shape)
        c, h, w = self.input_size
        outs = []
        with torch.no_grad():
            for start in range(0, len(flat), self.batch_size):
                batch = torch.from_numpy(flat[start : start + self.batch_size]).to(self.device)
                if batch.shape[-2:] != (h, w):
                    batch = F.interpolate(batch, size=(h, w), mode="bilinear", align_corners=False)
                if batch.shape[1] != c:
                    batch = batch.expand(-1, c, -1, -1)
                out = self.module(batch)
                if not isinstance(out, torch.Tensor) or out.shape[:1] != batch.shape[:1]:
                    raise ValueError("the output is not a tensor (B, f)")
                if out.dim() != 2:
                    raise ValueError(f"the output has shape {list(out.shape)}, not (B, f)")
                outs.append(out.double().cpu())
        feats = torch.cat(outs).numpy()
        return feats.reshape(*np.shape(x)[:-1], feats.shape[-1])


def _device(name: str) -> Any:
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{KEY}.device: cuda, but torch sees no CUDA device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_feature_net(spec: FeatureNetParams, image_shape: tuple[int, int, int]) -> FeatureNet:
    """The network `spec` names for images of `image_shape`, loaded once per process (per file
    version); a missing file, one torch cannot load, channels it cannot take or an output that is
    not (B, f) is bad input: one line naming the key and the file."""
    import torch

    path = Path(spec.path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{KEY}.path: no file {path}")
    input_size = tuple(spec.input_size or image_shape)
    if input_size[0] != image_shape[0] and not (image_shape[0] == 1 and input_size[0] == 3):
        raise ConfigError(
            f"{KEY}.input_size: {input_size[0]} channels, but the images have {image_shape[0]} "
            "(only grey images are repeated to 3 channels)"
        )
    device = _device(spec.device)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(device), input_size)
    key += (tuple(image_shape), spec.batch_size)
    if key in _LOADED:
        return _LOADED[key]
    try:
        module = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError, OSError) as exc:
        raise ConfigError(
            f"{KEY}.path: {path} is not a TorchScript file torch can load ({_first_line(exc)})"
        ) from None
    module.eval()
    net = FeatureNet(module, tuple(image_shape), input_size, device, spec.batch_size)
    try:
        out = net.features(np.zeros((PROBE_IMAGES, int(np.prod(image_shape)))))
    except Exception as exc:  # noqa: BLE001  (any failure of the user's network is bad input)
        raise ConfigError(
            f"{KEY}.path: {path} fails on images {list(input_size)} ({_first_line(exc)})"
        ) from None
    if not np.isfinite(out).all():
        raise ConfigError(f"{KEY}.path: {path} gives features that are not finite")
    _LOADED[key] = net
    return net
