"""Random streams: every draw comes from a generator keyed by (master seed, purpose, generation).

A stream never depends on how many workers run a sweep or where a run resumed, so a resumed run ends
with exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch


def _purpose_key(purpose: str) -> int:
    return zlib.crc32(purpose.encode())


@dataclass(frozen=True)
class Streams:
    """Factory of independent generators for one run, derived from its master seed."""

    seed: int

    def sequence(self, purpose: str, generation: int) -> np.random.SeedSequence:
        return np.random.SeedSequence([self.seed, _purpose_key(purpose), generation])

    def numpy(self, purpose: str, generation: int) -> np.random.Generator:
        """A numpy generator (SFC64, the fastest here) for one purpose at one generation."""
        return np.random.Generator(np.random.SFC64(self.sequence(purpose, generation)))

    def torch(self, purpose: str, generation: int) -> torch.Generator:
        """A CPU torch generator for one purpose at one generation."""
        seed = int(self.sequence(purpose, generation).generate_state(1, np.uint64)[0] >> 1)
        return torch.Generator().manual_seed(seed)
