"""Memory bounds: estimate the largest arrays a run allocates and refuse, before any row is written,
a run that cannot fit in this machine's memory; warn when a sweep starts while less is free.

The estimate is a sum of terms, each a product of config quantities (replicates, n_real, dim, ...)
times the bytes per element and the copies numpy makes of it; it errs on the large side. A refusal
names the config key with the largest factor in the largest term and which way to change it
(`Term.advice`: lower most keys, raise curation.params.fraction). A family declares its own terms
(`memory_terms`); this module adds the loop's arrays (data, samples, candidates, pool).

The refusal compares the estimate with the machine's memory (RAM, capped by the cgroup's limit),
not with what is free at the moment: bad input must be a property of the config and the machine,
the same every time. What is free moves with every other process, so falling short of it only
warns (`memory_warning`), once a sweep has its store: the run may still fit once they are done.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from selfconsume.config import Config
from selfconsume.data.base import DATA
from selfconsume.errors import ConfigError
from selfconsume.loop.schemes import SCHEMES
from selfconsume.loop.selection import SELECTIONS
from selfconsume.memory import COPIES, FLOAT64, Term, available_bytes, machine_bytes
from selfconsume.models.base import MODELS, DeclaresMemory

METRIC_WORKSPACE = 3 * 2**24 * FLOAT64
"""Pairwise-distance metrics and KDE work on chunks of 2**24 elements, a few at a time."""


def _get(params: Any, name: str, default: Any = None) -> Any:
    """A params value, whether the block is still a mapping or already a typed Params object."""
    if isinstance(params, dict):
        return params.get(name, default)
    return getattr(params, name, default)


def data_dim(cfg: Config) -> tuple[str, int]:
    """The sample dimension and the key that sets it, read without building the data source."""
    fixed = getattr(DATA.get(cfg.data.kind).obj, "dim", None)
    if isinstance(fixed, int):
        return "data.kind", fixed
    dim = _get(cfg.data.params, "dim")
    if dim is not None:
        return "data.params.dim", int(dim)
    length = _get(cfg.data.params, "length")  # text: tokens per window
    if length is not None:
        return "data.params.length", int(length)
    path = _get(cfg.data.params, "path")
    if path is not None:
        from selfconsume.data.files import file_columns

        return "data.params.path", file_columns(path)
    return "data.kind", 1


def _synthetic(cfg: Config) -> tuple[str, float]:
    """Kept synthetic samples per replicate and generation (the scheme's `synthetic_count`)."""
    params = SCHEMES.parse_params(cfg.scheme.kind, cfg.scheme.params, "scheme.params")
    return SCHEMES.get(cfg.scheme.kind).obj.synthetic_count(params, cfg.data.n_real)


def _candidates(cfg: Config) -> tuple[dict[str, float], frozenset[str]]:
    """Candidates drawn per kept synthetic sample by the curation, as factors (none: 1), and the
    keys whose factor is 1 / value (the selection's `draws`)."""
    if cfg.curation is None:
        return {}, frozenset()
    kind = cfg.curation.kind
    params = SELECTIONS.parse_params(kind, cfg.curation.params, "curation.params")
    return SELECTIONS.get(kind).obj.draws(params, "curation.params")


def _model_terms(cfg: Config, r: float, dim: tuple[str, float]) -> list[Term]:
    """The family's own terms (`memory_terms`, declared by the family from its resolved params)."""
    family = MODELS.get(cfg.model.kind).obj
    if not isinstance(family, DeclaresMemory):
        return []
    params = MODELS.parse_params(cfg.model.kind, cfg.model.params, "model.params")
    return family.memory_terms(params, r, dim)


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
        *_model_terms(cfg, r, (dim_key, d)),
    ]
    if cfg.metrics:
        out.append(Term("metric samples", {**data, "data.n_test": m}, FLOAT64 * COPIES))
        out.append(Term("metric workspace", {"metrics": 1.0}, METRIC_WORKSPACE))
    if cfg.model.population or cfg.generations == 0:
        return out
    syn_key, syn = _synthetic(cfg)
    candidates, inverse = _candidates(cfg)
    out.append(
        Term(
            "synthetic candidates", {**data, syn_key: syn, **candidates}, FLOAT64 * COPIES, inverse
        )
    )
    train = {**data, syn_key: syn + n} if syn >= n else {**data, "data.n_real": syn + n}
    out.append(Term("training sets", train, FLOAT64 * COPIES))
    if _accumulates(cfg):
        pool = {**data, syn_key: syn, "generations": float(cfg.generations)}
        out.append(Term("synthetic pool", pool, FLOAT64 * COPIES))
    return out


def _accumulates(cfg: Config) -> bool:
    """Whether the scheme keeps a growing pool of synthetic batches."""
    return SCHEMES.get(cfg.scheme.kind).obj.accumulates


def estimate_bytes(cfg: Config) -> int:
    """A conservative estimate of a run's peak memory in bytes (inf-safe: huge configs saturate)."""
    total = sum(t.bytes for t in terms(cfg))
    return int(total) if total < 2**63 else 2**63 - 1


def _gb(n: float) -> str:
    return f"~{n / 1e9:.3g} GB" if math.isfinite(n) and n < 1e21 else "an unbounded amount"


def check_memory(cfg: Config, machine: int | None = None) -> None:
    """Refuse (ConfigError naming the key, and which way to change it) a run whose estimate
    exceeds `machine` bytes (default: this machine's memory, `memory.machine_bytes`)."""
    parts = terms(cfg)
    total = sum(t.bytes for t in parts)
    limit = machine_bytes() if machine is None else machine
    if total <= limit:  # false for nan too
        return
    top = max(parts, key=lambda t: t.bytes)
    raise ConfigError(
        f"{top.key}: this run needs {_gb(total)} (mostly {top.what}), more than the "
        f"{limit / 1e9:.3g} GB this machine has; {top.advice}"
    )


def memory_warning(cfgs: Sequence[Config], available: int | None = None) -> str | None:
    """A one-line warning when the sweep's largest run needs more than the memory free right now
    (default: `memory.available_bytes`), or None. It fits the machine (`check_memory` passed), so
    it may still run: other processes hold the memory for now."""
    if not cfgs:
        return None
    need = max(estimate_bytes(cfg) for cfg in cfgs)
    free = available_bytes() if available is None else available
    if need <= free:
        return None
    return (
        f"warning: the largest run needs {_gb(need)}, more than the {free / 1e9:.3g} GB free now;"
        " it may be slow or killed for memory while other processes hold it"
    )
