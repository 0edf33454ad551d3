"""Checkpoints round-trip bit for bit, cannot execute code, and fail loudly when damaged."""

from __future__ import annotations

import io
import json
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from selfconsume.store.checkpoint import CheckpointError, from_bytes, to_bytes


def adam_state() -> dict:
    """A torch Adam state_dict after two steps: int keys in `state`, tuples and None in groups."""
    params = [torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2, 2))]
    opt = torch.optim.Adam(params, lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        sum((p**2).sum() for p in params).backward()
        opt.step()
    return opt.state_dict()


def payload() -> dict:
    rng = np.random.default_rng(0)
    return {
        "arrays": [
            rng.standard_normal((3, 4)),
            rng.standard_normal(5).astype(np.float32),
            rng.standard_normal(2).astype(np.float16),
            rng.integers(-100, 100, 6, dtype=np.int8),
            rng.integers(0, 60000, 3, dtype=np.uint16),
            rng.standard_normal(3) + 1j * rng.standard_normal(3),
            rng.random(4) < 0.5,
            np.asfortranarray(rng.standard_normal((3, 2))),
            np.zeros((0, 2)),
            np.array(np.nan),
        ],
        "scalars": (np.float64(1.25), np.int64(-3), np.bool_(True), np.float32(np.inf)),
        "tensors": {
            "f32": torch.randn(4, 3),
            "i64": torch.arange(5, dtype=torch.int64),
            "bf16": torch.randn(3).to(torch.bfloat16),
            "grad": torch.randn(2).requires_grad_(),
        },
        "opt": adam_state(),
        7: None,
        "flags": [True, False, None],
        "floats": (0.1, -0.0, math.inf, -math.inf, math.nan, 1e-310),
        "ints": (0, -1, 2**70),
        "text": "ünïcode",
        "nested": {"empty_dict": {}, "empty_list": [], "empty_tuple": ()},
    }


def assert_same(a, b, where="payload"):
    """Equal structure and types, with every leaf bitwise equal."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert [(type(k), k) for k in a] == [(type(k), k) for k in b], where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert (a.dtype, a.shape, a.requires_grad) == (b.dtype, b.shape, b.requires_grad), where
        assert a.detach().reshape(-1).view(torch.uint8).equal(b.reshape(-1).view(torch.uint8)), (
            where
        )
    elif isinstance(a, np.ndarray | np.generic):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), where
    elif isinstance(a, float):
        assert np.float64(a).tobytes() == np.float64(b).tobytes(), where
    else:
        assert a == b, where


def test_round_trip_is_bitwise_for_every_leaf():
    original = payload()
    assert_same(original, from_bytes(to_bytes(original)))


def test_adam_state_loads_into_a_fresh_optimizer():
    state = from_bytes(to_bytes(adam_state()))
    assert set(state["state"]) == {0, 1}
    params = [torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2, 2))]
    opt = torch.optim.Adam(params, lr=1e-3)
    opt.load_state_dict(state)
    assert_same(opt.state_dict()["state"], state["state"])


@pytest.mark.parametrize(
    "bad",
    [np.array([object()], dtype=object), {1.5: 0}, {(1, 2): 0}, {True: 0}, object(), {1, 2}],
    ids=["object array", "float key", "tuple key", "bool key", "object", "set"],
)
def test_what_the_format_cannot_hold_is_a_type_error(bad):
    with pytest.raises(TypeError):
        to_bytes({"x": bad})


class Marker:
    """Unpickling it creates a file: the proof that a checkpoint ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def npz(skeleton: object, **arrays: np.ndarray) -> bytes:
    """An npz laid out like a checkpoint, with any skeleton."""
    buf = io.BytesIO()
    text = json.dumps(skeleton).encode()
    np.savez(buf, __skeleton__=np.frombuffer(text, np.uint8), **arrays)
    return buf.getvalue()


def damaged(marker) -> dict[str, bytes]:
    leaf = np.arange(64.0)
    good = to_bytes({"x": leaf})
    flipped = bytearray(good)
    flipped[good.index(leaf.tobytes()) + 100] ^= 0xFF
    ours = {"format": "selfconsume-checkpoint", "version": 1}
    return {
        "truncated": good[: len(good) // 2],
        "byte flipped": bytes(flipped),
        "empty": b"",
        "pickle": pickle.dumps(Marker(marker)),
        "pickled array member": npz(
            {**ours, "payload": {"array": "a0"}}, a0=np.array([Marker(marker)])
        ),
        "missing array": npz({**ours, "payload": {"array": "a9"}}),
        "unknown node": npz({**ours, "payload": {"set": [1]}}),
        "not a torch dtype": npz(
            {**ours, "payload": {"tensor": "a0", "dtype": "Tensor"}}, a0=np.zeros(2)
        ),
        "foreign": npz({"format": "other", "version": 1, "payload": None}),
        "newer format": npz({**ours, "version": 9, "payload": None}),
    }


def test_damaged_or_foreign_bytes_raise_a_one_line_checkpoint_error(tmp_path):
    marker = tmp_path / "executed"
    for name, data in damaged(marker).items():
        with pytest.raises(CheckpointError) as info:
            from_bytes(data)
        assert "\n" not in str(info.value), name
    assert not marker.exists()


def test_a_numpy_checkpoint_loads_without_importing_torch():
    data = to_bytes({"mean": np.zeros(3), "cov": np.eye(3), "n": 3, "t": (1.0, None)})
    code = (
        "import sys; from selfconsume.store.checkpoint import from_bytes; "
        "p = from_bytes(sys.stdin.buffer.read()); assert p['n'] == 3; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, check=True
    ).stdout
    assert out.strip() == b"False"


def test_an_interrupt_during_encoding_waits_until_the_zip_is_whole(monkeypatch):
    """Ctrl-C arriving inside numpy's zip writer used to surface as a ValueError (the ZipFile could
    not close) and a worker recorded the interrupted run as failed; now it is raised, intact,
    after the checkpoint is written, and no half-written ZipFile is left to complain."""
    import gc
    import os
    import signal
    import threading

    import numpy.lib.format as npformat

    write_array = npformat.write_array
    calls = []

    def interrupted_write(*args, **kwargs):
        if not calls:
            os.kill(os.getpid(), signal.SIGINT)
        calls.append(1)
        return write_array(*args, **kwargs)

    monkeypatch.setattr(npformat, "write_array", interrupted_write)
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    done = threading.Event()  # a process has other threads (a queue's feeder, torch's) that
    other = threading.Thread(target=done.wait)  # may receive the signal: it must wait all the same
    other.start()
    # Ctrl-C must raise here even under a runner started with SIGINT ignored (`nohup make test &`)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            to_bytes({"a": np.arange(3), "b": np.ones(2)})
    finally:
        signal.signal(signal.SIGINT, previous)
        done.set()
        other.join()
    gc.collect()
    assert len(calls) == 3  # the skeleton and both arrays were written before the interrupt
    assert unraisable == []
