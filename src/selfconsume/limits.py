"""Memory bounds: estimate the largest arrays a run allocates and refuse, before any row is written,
a run that cannot fit in the memory this machine has left.

The estimate is a sum of terms, each a product of config quantities (replicates, n_real, dim, ...)
times the bytes per element and the copies numpy makes of it; it errs on the large side. A refusal
names the config key with the largest factor in the largest term, the one to lower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfconsume.config import Config
from selfconsume.errors import ConfigError

FLOAT64 = 8
FLOAT32 = 4
COPIES = 3
"""Arrays alive at once per data-sized quantity: the array, its temporaries and the result."""
TORCH_STATE = 6
"""Per network parameter: the weight, its gradient, Adam's two moments, the EMA copy, one spare."""
METRIC_WORKSPACE = 3 * 2**24 * FLOAT64
"""Pairwise-distance metrics and KDE work on chunks of 2**24 elements, a few at a time."""
CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Term:
    """One kind of array: bytes = product of the factors (config key -> value) times `scale`."""

    what: str
    factors: dict[str, float]
    scale: float

    @property
    def bytes(self) -> float:
        return math.prod(self.factors.values()) * self.scale

    @property
    def key(self) -> str:
        return max(self.factors, key=lambda k: self.factors[k])


def _get(params: Any, name: str, default: Any = None) -> Any:
    """A params value, whether the block is still a mapping or already a typed Params object."""
    if isinstance(params, dict):
        return params.get(name, default)
    return getattr(params, name, default)


def data_dim(cfg: Config) -> tuple[str, int]:
    """The sample dimension and the key that sets it, read without building the data source."""
    from selfconsume.data.base import DATA

    fixed = getattr(DATA.get(cfg.data.kind).obj, "dim", None)
    if isinstance(fixed, int):
        return "data.kind", fixed
    dim = _get(cfg.data.params, "dim")
    if dim is not None:
        return "data.params.dim", int(dim)
    path = _get(cfg.data.params, "path")
    if path is not None:
        from selfconsume.data.files import file_columns

        return "data.params.path", file_columns(path)
    return "data.kind", 1


def _synthetic(cfg: Config) -> tuple[str, float]:
    """Kept synthetic samples per replicate and generation (as in schemes.synthetic_count)."""
    s = cfg.scheme
    if s.n_synthetic is not None:
        return "scheme.n_synthetic", float(s.n_synthetic)
    if s.kind == "replace":
        return "data.n_real", float(cfg.data.n_real)
    return "scheme.lam", (1.0 if s.lam is None else s.lam) * cfg.data.n_real


def _candidates(cfg: Config) -> tuple[str, float]:
    """Candidates drawn per kept synthetic sample by the curation."""
    c = cfg.curation
    if c is None or c.rule == "threshold":
        return "curation", 1.0
    if c.rule == "bradley_terry":
        return "curation.k", float(c.k)
    return "curation.fraction", 1.0 / c.fraction


def _model_terms(cfg: Config, r: float, dim_key: str, d: float) -> list[Term]:
    """The family's parameters for all replicates (per-replicate covariances, stacked networks)."""
    p, kind = cfg.model.params, cfg.model.kind
    if kind in ("gaussian", "kde"):
        return [Term("covariances", {"replicates": r, dim_key: d * d}, FLOAT64 * COPIES)]
    if kind == "gmm":
        k = float(_get(p, "n_components", 8))
        factors = {"replicates": r, "model.params.n_components": k, dim_key: d * d}
        return [Term("mixture covariances", factors, FLOAT64 * COPIES)]
    if kind in ("ddpm", "flow") and _get(p, "net", "mlp") == "unet":
        return _unet_terms(cfg, r, dim_key, d)
    if kind in ("ddpm", "flow"):
        hidden, depth = float(_get(p, "hidden", 128)), int(_get(p, "depth", 3))
        sizes = [d + float(_get(p, "time_dim", 16)), *[hidden] * depth, d]
        weights = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        batch = float(_get(p, "batch_size", 256))
        return [
            Term(
                "network parameters",
                {"replicates": r, "model.params.hidden": weights},
                FLOAT32 * TORCH_STATE,
            ),
            Term(
                "network activations",
                {"replicates": r, "model.params.batch_size": batch, "model.params.hidden": hidden},
                FLOAT32 * COPIES * (depth + 1),
            ),
        ]
    return []


UNET_ACTIVATIONS = 24
"""Floats autograd keeps per image, channel and pixel in a U-Net step (each block holds about 8
tensors of its channels, the full-resolution ones twice over with the skip)."""


def _unet_terms(cfg: Config, r: float, dim_key: str, d: float) -> list[Term]:
    """The U-Net's weights (3x3 convolutions between its widths) and its training activations
    (all replicates' graphs are alive at the backward pass), per pixel of d = C * H * W."""
    p = cfg.model.params
    c1, c2 = (float(c) for c in _get(p, "channels", (32, 64)))
    emb = float(_get(p, "time_dim", 16)) + float(_get(p, "classes", 10)) + 1
    blocks = [(c1, c1), (c1, c2), (c2, c2), (c2 + c1, c1)]
    weights = sum(9 * a * b + 9 * b * b + emb * b + a * b for a, b in blocks) + 18 * c1 * 3
    batch = float(_get(p, "batch_size", 256))
    return [
        Term(
            "network parameters",
            {"replicates": r, "model.params.channels": weights},
            FLOAT32 * TORCH_STATE,
        ),
        Term(
            "network activations",
            {
                "replicates": r,
                "model.params.batch_size": batch,
                "model.params.channels": c1 + c2,
                dim_key: d,
            },
            FLOAT32 * UNET_ACTIVATIONS,
        ),
    ]


def terms(cfg: Config) -> list[Term]:
    """The arrays a run of `cfg` holds at its peak, one term per kind of array."""
    r = float(cfg.replicates)
    dim_key, d = data_dim(cfg)
    d = float(d)
    n, m = float(cfg.data.n_real), float(cfg.data.n_test)
    data = {"replicates": r, dim_key: d}
    out = [
        Term("source covariance", {dim_key: d * d}, FLOAT64 * COPIES),
        Term("real sets", {**data, "data.n_real": n}, FLOAT64 * COPIES),
        Term("test sets", {**data, "data.n_test": m}, FLOAT64 * COPIES),
        *_model_terms(cfg, r, dim_key, d),
    ]
    if cfg.metrics:
        out.append(Term("metric samples", {**data, "data.n_test": m}, FLOAT64 * COPIES))
        out.append(Term("metric workspace", {"metrics": 1.0}, METRIC_WORKSPACE))
    if cfg.model.population or cfg.generations == 0:
        return out
    syn_key, syn = _synthetic(cfg)
    cand_key, per_kept = _candidates(cfg)
    out.append(
        Term("synthetic candidates", {**data, syn_key: syn, cand_key: per_kept}, FLOAT64 * COPIES)
    )
    train = {**data, syn_key: syn + n} if syn >= n else {**data, "data.n_real": syn + n}
    out.append(Term("training sets", train, FLOAT64 * COPIES))
    if cfg.scheme.kind.startswith("accumulate"):
        pool = {**data, syn_key: syn, "generations": float(cfg.generations)}
        out.append(Term("synthetic pool", pool, FLOAT64 * COPIES))
    return out


def estimate_bytes(cfg: Config) -> int:
    """A conservative estimate of a run's peak memory in bytes (inf-safe: huge configs saturate)."""
    total = sum(t.bytes for t in terms(cfg))
    return int(total) if total < 2**63 else 2**63 - 1


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


def _gb(n: float) -> str:
    return f"~{n / 1e9:.3g} GB" if math.isfinite(n) and n < 1e21 else "an unbounded amount"


def check_memory(cfg: Config, available: int | None = None) -> None:
    """Refuse (ConfigError naming the key to lower) a run whose estimate exceeds `available` bytes
    (default: what this machine has left)."""
    parts = terms(cfg)
    total = sum(t.bytes for t in parts)
    limit = available_bytes() if available is None else available
    if total <= limit:  # false for nan too
        return
    top = max(parts, key=lambda t: t.bytes)
    raise ConfigError(
        f"{top.key}: this run needs {_gb(total)} (mostly {top.what}), more than the "
        f"{limit / 1e9:.3g} GB available; lower {top.key}"
    )
