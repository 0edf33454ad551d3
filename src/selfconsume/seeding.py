"""Random streams: every draw comes from a generator keyed by (master seed, arm, purpose, generation).

A stream never depends on how many workers run a sweep or where a run resumed, so a resumed run ends
with exactly the numbers of an uninterrupted one. The arm key makes the arms of a sweep independent
unless the config asks for common random numbers (then arm 0, shared).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from selfconsume.config import Config


def _purpose_key(purpose: str) -> int:
    return zlib.crc32(purpose.encode())


def arm_key(cfg: Config) -> int:
    """A stable key of what makes an arm (data, model, scheme, curation), 0 with common random
    numbers. Seed, replicates, generations, metrics and name are left out: extending a run or
    adding a metric keeps its numbers."""
    if cfg.common_random_numbers:
        return 0
    blocks = cfg.model_dump(mode="json", include={"data", "model", "scheme", "curation"})
    text = json.dumps(blocks, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little") | 1


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

    def torch(self, purpose: str, generation: int) -> torch.Generator:
        """A CPU torch generator for one purpose at one generation."""
        import torch

        seed = int(self.sequence(purpose, generation).generate_state(1, np.uint64)[0] >> 1)
        return torch.Generator().manual_seed(seed)
