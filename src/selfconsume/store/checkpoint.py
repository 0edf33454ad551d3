"""Checkpoints that cannot execute: a JSON skeleton plus the arrays, in one `.npz` without pickle.

A payload is nested dicts (str or int keys), lists and tuples of numpy arrays and scalars, torch
tensors, int, float, bool, str and None: enough for a model's state dict and a torch optimizer's
(whose `state` has int keys). The skeleton tags what JSON cannot say (tuples, int keys, arrays,
tensors, non-finite floats); arrays sit in the npz by name and load with allow_pickle=False, so a
tampered file can at worst fail to load. Every leaf comes back bit for bit, so a resumed run is
identical to an uninterrupted one; shared references come back as separate copies. torch is
imported only when a payload holds a tensor: a numpy-only checkpoint never imports it.
"""

from __future__ import annotations

import io
import json
import math
import signal
import struct
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

FORMAT = "selfconsume-checkpoint"
VERSION = 1
SKELETON = "__skeleton__"
RAW_INTS = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}
"""Tensors whose dtype numpy lacks (bfloat16, float8) travel as same-width ints, reinterpreted."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read back: truncated, tampered, or not one of ours."""


def to_bytes(payload: Any) -> bytes:
    """The checkpoint file of `payload`; TypeError names a leaf the format cannot hold."""
    arrays: dict[str, np.ndarray] = {}
    skeleton = {"format": FORMAT, "version": VERSION, "payload": _encode(payload, arrays)}
    text = json.dumps(skeleton, allow_nan=False, separators=(",", ":")).encode()
    buf = io.BytesIO()
    with _signals_deferred():
        np.savez(buf, allow_pickle=False, **{SKELETON: np.frombuffer(text, np.uint8)}, **arrays)
    return buf.getvalue()


STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the zip is whole: an interrupt inside numpy's writer leaves a
    ZipFile whose close raises a ValueError, which would replace the interrupt (and a worker would
    record an interrupted run as failed). A signal that came meanwhile is raised again at the end,
    to the handler that was in place. Python runs handlers in the main thread only, so elsewhere
    there is nothing to defer; nor is there when a handler from outside Python is in place (it
    could not be put back)."""
    in_main = threading.current_thread() is threading.main_thread()
    if not in_main or None in map(signal.getsignal, STOPPING_SIGNALS):
        yield
        return
    pending: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, _frame: pending.append(signum)) for s in STOPPING_SIGNALS
    }
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])


def from_bytes(data: bytes) -> Any:
    """The payload of a checkpoint file; CheckpointError (one line) if it is damaged or foreign."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        skeleton = json.loads(arrays.pop(SKELETON).tobytes())
    except Exception as exc:  # whatever a damaged zip, npy header or JSON text raises
        raise CheckpointError(_reason(exc)) from None
    if not isinstance(skeleton, dict) or skeleton.get("format") != FORMAT:
        raise CheckpointError("not a selfconsume checkpoint")
    if skeleton.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint format version {skeleton.get('version')}, this selfconsume reads {VERSION}"
        )
    try:
        return _decode(skeleton.get("payload"), arrays)
    except CheckpointError:
        raise
    except Exception as exc:  # a skeleton that parses but does not fit its arrays
        raise CheckpointError(f"malformed checkpoint ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


# --- encoding ------------------------------------------------------------------------------


def _encode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    kind = type(obj)
    if obj is None or kind in (bool, int, str):
        return obj
    if kind is float:
        return obj if math.isfinite(obj) else {"float": struct.pack("<d", obj).hex()}
    if isinstance(obj, np.ndarray | np.generic):
        tag = "array" if isinstance(obj, np.ndarray) else "scalar"
        return {tag: _put(np.asarray(obj), arrays)}
    if kind is list:
        return [_encode(v, arrays) for v in obj]
    if kind is tuple:
        return {"tuple": [_encode(v, arrays) for v in obj]}
    if kind is dict:
        for key in obj:
            if type(key) not in (str, int):
                raise TypeError(
                    f"checkpoint dict keys must be str or int, not {type(key).__name__}"
                )
        return {"dict": [[k, _encode(v, arrays)] for k, v in obj.items()]}
    if _is_tensor(obj):
        return _encode_tensor(obj, arrays)
    raise TypeError(f"a checkpoint cannot hold a {kind.__module__}.{kind.__qualname__}")


def _put(array: np.ndarray, arrays: dict[str, np.ndarray]) -> str:
    if array.dtype.hasobject:
        raise TypeError(f"a checkpoint cannot hold an array of dtype {array.dtype} (objects)")
    name = f"a{len(arrays)}"
    arrays[name] = array
    return name


def _is_tensor(obj: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor exists only if torch is already imported
    return torch is not None and isinstance(obj, torch.Tensor)


def _encode_tensor(tensor: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    node = {
        "dtype": str(tensor.dtype).removeprefix("torch."),
        "grad": tensor.requires_grad,
        "device": str(tensor.device),
    }
    cpu = tensor.detach().cpu().resolve_conj().resolve_neg()
    try:
        array = cpu.numpy()
    except TypeError:  # no numpy dtype: keep the bits as ints of the same width
        array = cpu.view(getattr(sys.modules["torch"], RAW_INTS[cpu.element_size()])).numpy()
        node["raw"] = True
    return {"tensor": _put(array, arrays), **node}


# --- decoding ------------------------------------------------------------------------------


def _decode(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    kind = type(node)
    if node is None or kind in (bool, int, float, str):
        return node
    if kind is list:
        return [_decode(v, arrays) for v in node]
    if kind is not dict:
        raise CheckpointError(f"malformed checkpoint (a {kind.__name__} node)")
    if "tensor" in node:
        return _decode_tensor(node, arrays)
    (tag, value), *extra = node.items()
    if extra:
        raise CheckpointError(f"malformed checkpoint (node {sorted(node)})")
    if tag == "tuple" and type(value) is list:
        return tuple(_decode(v, arrays) for v in value)
    if tag == "dict" and type(value) is list:
        return {_key(k): _decode(v, arrays) for k, v in value}
    if tag == "array":
        return arrays[value]
    if tag == "scalar" and arrays[value].ndim == 0:
        return arrays[value][()]
    if tag == "float" and type(value) is str:
        return struct.unpack("<d", bytes.fromhex(value))[0]
    raise CheckpointError(f"malformed checkpoint (node {tag!r})")


def _key(key: Any) -> str | int:
    if type(key) not in (str, int):
        raise CheckpointError(f"malformed checkpoint (dict key {key!r})")
    return key


def _decode_tensor(node: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    import torch

    dtype = getattr(torch, str(node.get("dtype")), None)
    if not isinstance(dtype, torch.dtype):
        raise CheckpointError(f"malformed checkpoint (tensor dtype {node.get('dtype')!r})")
    tensor = torch.from_numpy(arrays[node["tensor"]])
    if node.get("raw"):
        tensor = tensor.view(dtype)
    if tensor.dtype != dtype:
        raise CheckpointError(f"malformed checkpoint (tensor of {tensor.dtype}, not {dtype})")
    if str(node.get("device", "cpu")).startswith("cuda") and torch.cuda.is_available():
        tensor = tensor.to(node["device"])
    return tensor.requires_grad_(bool(node.get("grad")))
