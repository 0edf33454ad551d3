"""Bradley–Terry curation throughput (kept samples per second, K = 4, 10^6 candidates) against a
plain vectorised softmax-and-choose (inverse CDF on the cumulative weights) written here."""

from __future__ import annotations

import numpy as np
from timing import best_times

from selfconsume.config import CurationConfig
from selfconsume.loop.curation import choose_bradley_terry, curate

REPLICATES, KEPT, K, DIM, BETA = 4, 62_500, 4, 2, 1.0  # 4 * 62,500 * 4 = 10^6 candidates


def softmax_choose(rewards: np.ndarray, beta: float, rng: np.random.Generator) -> np.ndarray:
    """The baseline choice: softmax weights, one uniform per row, inverse CDF."""
    w = np.exp(beta * (rewards - rewards.max(axis=-1, keepdims=True)))
    cdf = np.cumsum(w, axis=-1)
    u = rng.random(rewards.shape[:-1]) * cdf[..., -1]
    return (cdf < u[..., None]).sum(axis=-1)


def reward(x: np.ndarray) -> np.ndarray:
    """A cheap analytic reward, the same for both sides."""
    return x[..., 0] - 0.5 * x[..., 1]


def run() -> list[dict]:
    rng = np.random.Generator(np.random.SFC64(0))
    candidates = rng.standard_normal((REPLICATES, KEPT * K, DIM))
    cfg = CurationConfig(kind="bradley_terry", k=K, beta=BETA, reward={"kind": "linear"})

    def ours() -> None:
        curate(lambda m: candidates, KEPT, cfg, reward, rng)

    def baseline() -> None:
        cand = candidates.reshape(REPLICATES, KEPT, K, DIM)
        pick = softmax_choose(reward(cand), BETA, rng)
        np.take_along_axis(cand, pick[:, :, None, None], axis=2)[:, :, 0]

    rewards = reward(candidates.reshape(REPLICATES, KEPT, K, DIM))
    kept = REPLICATES * KEPT
    rows = []
    for name, fn, base in (
        ("curate bradley_terry K=4 / softmax-and-choose", ours, baseline),
        (
            "choose_bradley_terry (Gumbel-max) / inverse-CDF choice",
            lambda: choose_bradley_terry(rewards, BETA, rng),
            lambda: softmax_choose(rewards, BETA, rng),
        ),
    ):
        times = best_times({"ours": fn, "base": base}, repeats=7)
        value, reference = kept / times["ours"], kept / times["base"]
        rows.append(
            {
                "name": name,
                "value": value,
                "baseline": reference,
                "ratio": value / reference,
                "target": ">= 0.8",
                "unit": "kept samples/s",
            }
        )
    return rows
