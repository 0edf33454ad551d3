"""What an array costs: a `Term` (bytes = a product of config quantities times the bytes per
element and the copies alive at once), the sizes the terms use, and the memory this process can
still allocate.

Kinds declare their own terms with these (a family's `memory_terms`); `selfconsume.limits` sums
them with the loop's own arrays and refuses a run that cannot fit. A leaf module: the data
sources and families import it, so none of them imports `limits`."""

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


def available_bytes() -> int:
    """Memory this process can still allocate: the system's available memory, capped by the
    cgroup's limit (containers) where one is set."""
    import psutil

    available = psutil.virtual_memory().available
    try:
        limit = (CGROUP / "memory.max").read_text().strip()
        if limit != "max":
            used = int((CGROUP / "memory.current").read_text())
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(int(available), 0)
