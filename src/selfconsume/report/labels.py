"""Arm labels in the talk's words, from the config keys that differ between an experiment's runs.

Schemes read as the talk says them: "fully synthetic", "λ = 0.5", "λ = 0 (real only)"; with
curation "only curated synthetic" and "real & curated synthetic (λ = 0.5)". Other swept keys get a
short readable form (K = 4, β = 1, n = 10, MLE, ...). Runs are ordered as in the talk: fully
synthetic first, then decreasing λ.

Everything is read from the runs' resolved, typed configs. What a scheme means (its λ, its batch,
its words) is asked of the scheme's own hooks (`population_lam`, `n_synthetic`, `label`), through
`population_lam`, `synthetic_count` and `scheme_label` here.
"""

from __future__ import annotations

import math
from typing import Any

from selfconsume.config import Config
from selfconsume.loop.schemes import Scheme, scheme_of
from selfconsume.store.records import RunRecord, swept_keys

SCHEME_KEYS = ("scheme.kind", "scheme.params.lam", "scheme.params.n_synthetic")
SHORT = 40
ORDER = {"replace": 0, "mix": 1, "accumulate": 2, "accumulate_subsample": 3, "fresh": 4}
WORDS = {"mle": "MLE", "bradley_terry": "Bradley–Terry", "top_fraction": "top fraction"}
SYMBOLS = {
    "curation.params.k": "K",
    "curation.params.beta": "β",
    "curation.params.fraction": "kept fraction",
    "curation.params.threshold": "threshold",
    "curation.params.select.params.k": "K",
    "curation.params.select.params.beta": "β",
    "curation.params.select.params.fraction": "kept fraction",
    "curation.params.select.params.threshold": "threshold",
    "data.n_real": "n",
    "replicates": "R",
    "generations": "G",
    "model.params.psi": "ψ",
    "model.params.ridge": "λ_ridge",
    "cures.real_weight.real_weight": "real weight",
    "cures.self_correction.gamma": "γ",
    "cures.neon.w": "Neon w",
    "model.params.negative_guidance.w": "negative guidance w",
}
FLAGS = {
    "model.warm_start": ("warm start", "from scratch"),
    "model.population": ("population limit", "sampled"),
    "model.params.conditional": ("prompt-conditional", "unconditional"),
}


def number(value: float | str) -> str:
    """1.0 -> 1, 0.5 -> 0.5, inf (or JSON's "Infinity") -> ∞."""
    if value in ("Infinity", "-Infinity"):
        value = float(value)
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _scheme(cfg: Config) -> Scheme:
    """The run's scheme, as the run built it (its kind's class on the resolved block)."""
    return scheme_of(cfg.scheme, cfg.data.n_real)


def population_lam(cfg: Config) -> float | None:
    """λ of the run's exact update E_real[log p] + λ E_{p_t}[log p]; None is fully synthetic."""
    return _scheme(cfg).population_lam()


def synthetic_count(cfg: Config) -> int:
    """Samples of p_t a generation trains on (per replicate), as the run's scheme draws them."""
    return _scheme(cfg).n_synthetic


def scheme_label(cfg: Config) -> str:
    """The training-set rule in the talk's words (curated variants when the run curates)."""
    return _scheme(cfg).label(cfg.curation is not None)


def key_label(key: str, value: Any) -> str:
    """A swept key's value, readably: K = 4, n = 10, MLE, warm start, hidden = 64."""
    if key in FLAGS:
        return FLAGS[key][0 if value else 1]
    if key in SYMBOLS:
        return f"{SYMBOLS[key]} = {number(value)}"
    if isinstance(value, str) and key.endswith((".kind", ".estimator", ".sampler")):
        return WORDS.get(value, value)
    return f"{key.split('.')[-1]} = {number(value) if isinstance(value, int | float) else value}"


def curation_label(cfg: Config) -> str:
    """A curation in a few words: "no curation", a reward-free kind ("discriminator filter"), or
    the rule and its reward ("Bradley–Terry on log_density")."""
    curation = cfg.curation
    if curation is None:
        return "no curation"
    kind = WORDS.get(curation.kind, curation.kind)
    reward = curation.reward
    return f"{kind} filter" if reward is None else f"{kind} on {reward.kind}"


def run_labels(records: list[RunRecord]) -> list[str]:
    """Label each run by what differs between the runs of one experiment, in the talk's words."""
    keys = swept_keys(records)
    if not keys:
        name = records[0].name
        short = name if len(name) <= SHORT else name[: SHORT - 1] + "…"
        return [r.run_id for r in records] if len(records) > 1 else [short]
    labels = []
    for record in records:
        flat, parts = record.flat, []
        if any(k in keys for k in SCHEME_KEYS):
            parts.append(scheme_label(record.config))
        by_kind = "curation.kind" in keys  # arms that curate differently: one phrase each
        if by_kind:
            parts.append(curation_label(record.config))
        elif record.config.curation is None and any(k.startswith("curation") for k in keys):
            parts.append("no curation")
        for key in keys:
            if by_kind and key.startswith("curation"):
                continue
            if key not in SCHEME_KEYS and key in flat and flat[key] is not None:
                parts.append(key_label(key, flat[key]))
        labels.append(", ".join(dict.fromkeys(parts)))
    return _distinct(labels, records)


def _distinct(labels: list[str], records: list[RunRecord]) -> list[str]:
    """Labels made unique where the readable forms coincide (say a swept n_synthetic, otherwise
    implied by λ): the batch size, then the run id, is added to the colliding ones."""
    for extra in (_batch, _run_id):
        counts = {label: labels.count(label) for label in labels}
        labels = [
            ", ".join(filter(None, (label, extra(r)))) if counts[label] > 1 else label
            for label, r in zip(labels, records, strict=True)
        ]
    return labels


def _batch(record: RunRecord) -> str:
    return f"n_synthetic = {synthetic_count(record.config)}"


def _run_id(record: RunRecord) -> str:
    return f"run {record.run_id}"


def talk_order(records: list[RunRecord]) -> list[int]:
    """Indices of the runs in the talk's order: fully synthetic first, then decreasing λ, the
    other schemes after; ties keep the store's order."""

    def rank(i: int) -> tuple[int, float]:
        cfg = records[i].config
        lam = population_lam(cfg)
        return ORDER.get(cfg.scheme.kind, len(ORDER)), -(lam if lam is not None else math.inf)

    return sorted(range(len(records)), key=rank)
