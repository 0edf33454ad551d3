"""Curation: the optional filter between sampling p_t and training p_{t+1}.

- `bradley_terry`: for each kept sample draw K candidates and keep candidate k with probability
  exp(beta r(x_k)) / sum_j exp(beta r(x_j)) (Luce choice), sampled exactly by Gumbel-max; beta = inf
  keeps the best candidate, ties split uniformly (the limit).
- `top_fraction`: draw n / fraction candidates, keep the n with the highest reward.
- `threshold`: draw n candidates, keep those with reward >= threshold (as 0/1 weights).
"""

from __future__ import annotations

import math

import numpy as np

from selfconsume.config import CurationConfig
from selfconsume.errors import RunFailed
from selfconsume.rewards.base import Reward
from selfconsume.seeding import ReplicateRandom

SHOWN_REPLICATES = 10
"""How many replicate indices a failure message lists."""


def choose_bradley_terry(
    rewards: np.ndarray, beta: float, rng: np.random.Generator | ReplicateRandom
) -> np.ndarray:
    """Index in [0, K) of the chosen candidate for each row of rewards (..., K), vectorised.

    argmax_k (beta r_k + G_k) with G_k i.i.d. Gumbel(0, 1) is distributed as softmax(beta r).
    Rewards are shifted by their row maximum (beta (r - max r) <= 0: no overflow at any beta);
    beta = inf lets the Gumbel noise choose among the best candidates only."""
    gumbel = rng.gumbel(size=rewards.shape)
    gap = rewards - rewards.max(axis=-1, keepdims=True)
    if math.isinf(beta):
        return np.argmax(np.where(gap == 0, gumbel, -np.inf), axis=-1)
    if beta != 0:
        gumbel += beta * gap
    return np.argmax(gumbel, axis=-1)


def curate(
    sample: callable,
    n: int,
    curation: CurationConfig | None,
    reward: Reward | None,
    rng: np.random.Generator | ReplicateRandom,
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


def empty_replicates(weights: np.ndarray | None) -> np.ndarray:
    """Indices of the replicates whose curation kept no sample (every weight 0), ascending."""
    if weights is None:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(~np.any(weights > 0, axis=1))


def require_kept(weights: np.ndarray | None, curation: CurationConfig, generation: int) -> None:
    """Fail the run when a replicate kept no sample and has nothing else to train on (`replace`).

    Under the other schemes such a replicate trains on its real set (and pool): its synthetic rows
    have weight 0, which every family honours."""
    empty = empty_replicates(weights)
    if empty.size:
        shown = ", ".join(str(i) for i in empty[:SHOWN_REPLICATES])
        more = f", ... ({empty.size} in all)" if empty.size > SHOWN_REPLICATES else ""
        raise RunFailed(
            f"generation {generation}: curation {curation.kind} kept no sample of "
            f"replicate(s) [{shown}{more}]"
        )
