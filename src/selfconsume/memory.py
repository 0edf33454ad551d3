"""What an array costs: a `Term` (bytes = a product of config quantities times the bytes per
element and the copies alive at once), the sizes the terms use, and the memory of this machine.

Kinds declare their own terms with these (a family's `memory_terms`); `selfconsume.limits` sums
them with the loop's own arrays and refuses a run that cannot fit. A leaf module: the data
sources and families import it, so none of them imports `limits`.

Two measures, for two uses:
- `machine_bytes`, the memory this process could ever hold (the machine's RAM, capped by its
  cgroup's limit), decides bad input: a run or a data file larger than that cannot fit here
  whatever else runs, so it is refused (exit 2). It is a property of the machine, not of the
  moment, so the same config is refused or accepted every time.
- `available_bytes`, what is free right now, only warns. It moves with every other process (a
  test suite beside this one drove it from gigabytes to 0.2 GB in seconds), and a run that
  exceeds it may still fit once they are done, or the kernel reclaims caches; refusing on it
  made a tiny run's acceptance depend on the neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

FLOAT64 = 8
FLOAT32 = 4
COPIES = 3
"""Arrays alive at once per data-sized quantity: the array, its temporaries and the result."""
TORCH_STATE = 6
"""Per network parameter: the weight, its gradient, Adam's two moments, the EMA copy, one spare."""
CGROUP = Path("/sys/fs/cgroup")

Dim = tuple[str, float]
"""The sample dimension and the config key that sets it (`data.params.dim`, `data.kind`, ...)."""

ADVICE = {
    "data.kind": "use data of fewer dimensions (data.kind)",
    "data.params.path": "use a data file of fewer columns (data.params.path)",
    "metrics": "drop metrics (or free memory)",
}
"""What helps when the largest factor is not a number the config sets directly."""


@dataclass(frozen=True)
class Term:
    """One kind of array: bytes = product of the factors (config key -> value) times `scale`.

    A key in `inverse` grows the term as its config value falls (its factor is 1 / value, as
    curation.params.fraction's): raising it is what helps."""

    what: str
    factors: dict[str, float]
    scale: float
    inverse: frozenset[str] = field(default_factory=frozenset)

    @property
    def bytes(self) -> float:
        return math.prod(self.factors.values()) * self.scale

    @property
    def key(self) -> str:
        """The config key with the largest factor: the one to change."""
        return max(self.factors, key=lambda k: self.factors[k])

    @property
    def advice(self) -> str:
        """Which way to change `key` to shrink the term: "raise curation.params.fraction", "lower ..."."""
        key = self.key
        if key in self.inverse:
            return f"raise {key}"
        return ADVICE.get(key, f"lower {key}")


def _cgroup_limit() -> tuple[int, int] | None:
    """This cgroup's memory limit and its current use in bytes (cgroup v2), or None: no limit."""
    try:
        limit = (CGROUP / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit), int((CGROUP / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def machine_bytes() -> int:
    """Memory this process could ever hold: the machine's RAM, capped by the cgroup's limit
    (containers) where one is set. A run larger than this cannot fit, whatever else runs."""
    import psutil

    total = psutil.virtual_memory().total
    cgroup = _cgroup_limit()
    return min(total, cgroup[0]) if cgroup else total


def available_bytes() -> int:
    """Memory free right now: the system's available memory, capped by what the cgroup's limit
    leaves. It moves with other processes, so it only warns (see the module docstring)."""
    import psutil

    available = psutil.virtual_memory().available
    cgroup = _cgroup_limit()
    if cgroup:
        available = min(available, cgroup[0] - cgroup[1])
    return max(int(available), 0)
