"""Curation: the optional filter between sampling p_t and training p_{t+1}.

- `bradley_terry`: for each kept sample draw K candidates and keep candidate k with probability
  exp(beta r(x_k)) / sum_j exp(beta r(x_j)) (Luce choice), sampled exactly by Gumbel-max.
- `top_fraction`: draw n / fraction candidates, keep the n with the highest reward.
- `threshold`: draw n candidates, keep those with reward >= threshold (as 0/1 weights).
"""

from __future__ import annotations

import math

import numpy as np

from selfconsume.config import CurationConfig
from selfconsume.rewards.base import Reward


def choose_bradley_terry(rewards: np.ndarray, beta: float, rng: np.random.Generator) -> np.ndarray:
    """Index in [0, K) of the chosen candidate for each row of rewards (..., K), vectorised.

    argmax_k (beta r_k + G_k) with G_k i.i.d. Gumbel(0, 1) is distributed as softmax(beta r)."""
    gumbel = rng.gumbel(size=rewards.shape)
    if beta != 0:
        gumbel += beta * rewards
    return np.argmax(gumbel, axis=-1)


def curate(
    sample: callable,
    n: int,
    curation: CurationConfig | None,
    reward: Reward | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Draw n kept synthetic samples per replicate via `sample(m) -> (R, m, d)`, then curate.

    Returns the samples (R, n', d) and optional 0/1 weights (R, n')."""
    if curation is None or n == 0:
        return sample(n), None
    if curation.kind == "bradley_terry":
        k = int(curation.k)
        cand = sample(n * k)
        r, _, d = cand.shape
        cand = cand.reshape(r, n, k, d)
        pick = choose_bradley_terry(reward(cand), curation.beta, rng)
        return np.take_along_axis(cand, pick[:, :, None, None], axis=2)[:, :, 0], None
    if curation.kind == "top_fraction":
        cand = sample(math.ceil(n / curation.fraction))
        idx = np.argpartition(-reward(cand), n - 1, axis=1)[:, :n]
        return np.take_along_axis(cand, idx[..., None], axis=1), None
    cand = sample(n)
    return cand, (reward(cand) >= curation.threshold).astype(float)
