"""Random streams: every draw comes from a generator keyed by (seed, arm, purpose, generation).

A stream never depends on how many workers run a sweep or where a run resumed, so a resumed run
ends with exactly the numbers of an uninterrupted one. The *arm* key makes the runs of a sweep
independent (see `arm_key`); arm 0 gives every run with one seed the same streams (common random
numbers). Per-replicate draws (`Streams.per_replicate`) give replicate r the same numbers whatever
the number of replicates, so adding replicates to a run never changes the ones it had.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from selfconsume.registry import IDENTITY

if TYPE_CHECKING:
    import torch

    from selfconsume.config import Config

ARM_BLOCKS = ("data", "model", "scheme", "curation", "cures")
"""The config blocks that name an arm: what is simulated, not how long or what is measured."""


def _purpose_key(purpose: str) -> int:
    return zlib.crc32(purpose.encode())


def arm_key(cfg: Config) -> int:
    """A stable 64-bit key of the run's data, model, scheme and curation blocks, or 0 when the
    config asks for common random numbers.

    Generations, replicates, metrics and name are left out, so extending a run or adding a metric
    keeps its numbers, while two arms of a sweep (say the unbiased and the MLE estimator) draw
    independent noise. With `common_random_numbers: true` all arms with one seed share their
    streams, for paired comparisons."""
    if cfg.common_random_numbers:
        return 0
    blocks = cfg.model_dump(mode="json", include=set(ARM_BLOCKS), context=IDENTITY)
    text = json.dumps(blocks, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") or 1


class ReplicateRandom:
    """numpy-style draws of shape (R, ...) in which replicate r's row never depends on R.

    Every call draws from its own generator, keyed by the stream and the call's index, and numpy
    fills an array element by element in C order, so row r of a (R, ...) draw is the same for every
    R > r; successive calls do not share a generator, so the first call's size cannot shift the
    second's numbers. The first axis of every `size` (and of `pvals`, `x`) is the replicate axis."""

    def __init__(self, sequence: np.random.SeedSequence) -> None:
        self._entropy = sequence.entropy
        self._calls = 0

    def _next(self) -> np.random.Generator:
        seq = np.random.SeedSequence(self._entropy, spawn_key=(self._calls,))
        self._calls += 1
        return np.random.Generator(np.random.SFC64(seq))

    def standard_normal(self, size: Any) -> np.ndarray:
        return self._next().standard_normal(size)

    def random(self, size: Any) -> np.ndarray:
        return self._next().random(size)

    def gumbel(self, size: Any) -> np.ndarray:
        return self._next().gumbel(size=size)

    def integers(self, low: Any, high: Any = None, size: Any = None) -> np.ndarray:
        return self._next().integers(low, high, size=size)

    def choice(self, a: Any, size: Any, p: Any = None) -> np.ndarray:
        """With replacement only (a draw without replacement is not row by row)."""
        return self._next().choice(a, size=size, p=p)

    def multinomial(self, n: Any, pvals: np.ndarray) -> np.ndarray:
        return self._next().multinomial(n, pvals)

    def permuted(self, x: np.ndarray, axis: int) -> np.ndarray:
        """Each row shuffled independently; `axis` must not be 0 (the replicate axis)."""
        if axis == 0:
            raise ValueError("permuted: axis 0 is the replicate axis")
        return self._next().permuted(x, axis=axis)


@dataclass(frozen=True)
class Streams:
    """Factory of independent generators for one run, derived from its master seed and arm."""

    seed: int
    arm: int = 0

    def sequence(self, purpose: str, generation: int) -> np.random.SeedSequence:
        key = [self.seed, _purpose_key(purpose), generation]
        return np.random.SeedSequence(key + [self.arm] if self.arm else key)

    def numpy(self, purpose: str, generation: int) -> np.random.Generator:
        """A numpy generator (SFC64, the fastest here) for one purpose at one generation."""
        return np.random.Generator(np.random.SFC64(self.sequence(purpose, generation)))

    def per_replicate(self, purpose: str, generation: int) -> ReplicateRandom:
        """Draws of shape (R, ...) for one purpose at one generation, replicate r's independent of
        R: what every per-replicate draw (real and test sets, sampling, curation, schemes) uses."""
        return ReplicateRandom(self.sequence(purpose, generation))

    def torch(self, purpose: str, generation: int) -> torch.Generator:
        """A CPU torch generator for one purpose at one generation."""
        import torch

        seed = int(self.sequence(purpose, generation).generate_state(1, np.uint64)[0] >> 1)
        return torch.Generator().manual_seed(seed)
