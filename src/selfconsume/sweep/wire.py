"""What travels between the writer and its workers: resume states out, generation records back.

Both are `store.checkpoint` files (an npz without pickle), so bytes from a worker can never execute
on the client, and every array comes back bit for bit. A record carries the checkpoint and pool
batch already encoded, exactly as the store writes them, so the writer does not re-encode them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from selfconsume.loop.run import Resume
from selfconsume.store.checkpoint import from_bytes, to_bytes


@dataclass(frozen=True)
class Record:
    """One finished generation of one run, as the writer commits it."""

    run_id: str
    generation: int
    metrics: dict[str, np.ndarray]
    checkpoint: bytes
    samples: np.ndarray | None
    pool_batch: bytes | None


def _raw(data: bytes | None) -> np.ndarray | None:
    return None if data is None else np.frombuffer(data, np.uint8)


def encode_record(
    run_id: str,
    generation: int,
    metrics: dict[str, np.ndarray],
    checkpoint: dict[str, Any],
    samples: np.ndarray | None = None,
    pool_batch: dict[str, np.ndarray] | None = None,
) -> bytes:
    """The bytes a worker sends for one finished generation."""
    return to_bytes(
        {
            "run_id": run_id,
            "generation": generation,
            "metrics": {k: np.asarray(v, dtype=np.float64) for k, v in metrics.items()},
            "checkpoint": _raw(to_bytes(checkpoint)),
            "samples": None if samples is None else np.asarray(samples),
            "pool_batch": _raw(None if pool_batch is None else to_bytes(dict(pool_batch))),
        }
    )


def decode_record(data: bytes) -> Record:
    """A worker's generation record (CheckpointError if the bytes are damaged or foreign)."""
    d = from_bytes(data)
    pool = d["pool_batch"]
    return Record(
        str(d["run_id"]),
        int(d["generation"]),
        dict(d["metrics"]),
        d["checkpoint"].tobytes(),
        d["samples"],
        None if pool is None else pool.tobytes(),
    )


def encode_resume(resume: Resume) -> bytes:
    return to_bytes({"start": resume.start, "checkpoint": resume.checkpoint, "pool": resume.pool})


def decode_resume(data: bytes) -> Resume:
    d = from_bytes(data)
    return Resume(d["start"], d["checkpoint"], d["pool"])


class SendingSink:
    """A worker's sink: encodes each generation and hands it to `send` (a queue's put)."""

    def __init__(self, send: Callable[[bytes], object]) -> None:
        self.send = send
        self.last = -1  # the last generation sent
        self.sent_bytes = 0

    def commit_generation(
        self,
        run_id: str,
        generation: int,
        metrics: dict[str, np.ndarray],
        checkpoint: dict[str, Any],
        samples: np.ndarray | None = None,
        pool_batch: dict[str, np.ndarray] | None = None,
    ) -> None:
        data = encode_record(run_id, generation, metrics, checkpoint, samples, pool_batch)
        self.send(data)
        self.last = generation
        self.sent_bytes += len(data)
