"""Curation: the optional filter between sampling p_t and training p_{t+1}.

- `bradley_terry`: for each kept sample draw K candidates and keep candidate k with probability
  exp(beta r(x_k)) / sum_j exp(beta r(x_j)) (Luce choice), sampled exactly by Gumbel-max; beta = inf
  keeps the best candidate, ties split uniformly (the limit).
- `top_fraction`: draw n / fraction candidates, keep the n with the highest reward.
- `threshold`: draw n candidates, keep those with reward >= threshold (as 0/1 weights).

A conditional model is curated with the talk's prompt model (`curate_prompted`): a prompt y ~ p_user
per kept sample, its K candidates drawn from p_t(x | y), the Bradley-Terry choice among them; the
kept samples keep their prompts as labels.

The reward-free kinds (`discriminator`, `likelihood`: `selfconsume.loop.filters`) keep samples by
one of these rules (`curation.select`), their score passed here as the reward.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from selfconsume.config import CurationConfig
from selfconsume.errors import RunFailed, replicate_list
from selfconsume.rewards.base import Reward
from selfconsume.seeding import ReplicateRandom

SAFE_SCALE = 1e300
"""Largest |beta r| added to the Gumbel noise as it is (beyond, rewards are shifted first)."""


def choose_bradley_terry(
    rewards: np.ndarray, beta: float, rng: np.random.Generator | ReplicateRandom
) -> np.ndarray:
    """Index in [0, K) of the chosen candidate for each row of rewards (..., K), vectorised.

    argmax_k (beta r_k + G_k) with G_k i.i.d. Gumbel(0, 1) is distributed as softmax(beta r).
    Where beta r could overflow, rewards are shifted by their row maximum (beta (r - max r) <= 0);
    beta = inf lets the Gumbel noise choose among the best candidates only."""
    gumbel = rng.gumbel(size=rewards.shape)
    if math.isinf(beta):
        best = rewards == rewards.max(axis=-1, keepdims=True)
        return np.argmax(np.where(best, gumbel, -np.inf), axis=-1)
    if beta != 0 and beta * max(abs(rewards.max()), abs(rewards.min())) < SAFE_SCALE:
        gumbel += beta * rewards  # the common case: one pass, no shift needed
    elif beta != 0:
        gumbel += beta * (rewards - rewards.max(axis=-1, keepdims=True))
    return np.argmax(gumbel, axis=-1)


def curate(
    sample: Callable[[int], np.ndarray],
    n: int,
    curation: CurationConfig | None,
    reward: Reward | None,
    rng: np.random.Generator | ReplicateRandom,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Draw n kept synthetic samples per replicate via `sample(m) -> (R, m, d)`, then curate.

    Returns the samples (R, n', d) and optional 0/1 weights (R, n')."""
    x, w, _ = curate_prompted(lambda m, y: sample(m), None, n, curation, reward, rng)
    return x, w


def curate_prompted(
    sample: Callable[[int, np.ndarray | None], np.ndarray],
    prompts: Callable[[int], np.ndarray] | None,
    n: int,
    curation: CurationConfig | None,
    reward: Reward | None,
    rng: np.random.Generator | ReplicateRandom,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """`curate` for a model sampled as `sample(m, labels (R, m) or None) -> (R, m, d)`, the labels
    drawn by `prompts(m) -> (R, m)` (None: unconditional). Bradley-Terry draws one prompt per
    kept sample and its K candidates all from that prompt; the other kinds one per candidate.

    Returns the samples (R, n', d), optional 0/1 weights (R, n') and the kept samples' labels
    (R, n') (None when unconditional)."""

    def labels(m: int) -> np.ndarray | None:
        return None if prompts is None else prompts(m)

    if curation is None or n == 0:
        y = labels(n)
        return sample(n, y), None, y
    if curation.rule == "bradley_terry":
        k = int(curation.k)
        y = labels(n)
        cand = sample(n * k, None if y is None else np.repeat(y, k, axis=1))
        r, _, d = cand.shape
        cand = cand.reshape(r, n, k, d)
        pick = choose_bradley_terry(reward(cand), curation.beta, rng)
        return np.take_along_axis(cand, pick[:, :, None, None], axis=2)[:, :, 0], None, y
    if curation.rule == "top_fraction":
        m = math.ceil(n / curation.fraction)
        y = labels(m)
        cand = sample(m, y)
        idx = np.argpartition(-reward(cand), n - 1, axis=1)[:, :n]
        kept_y = None if y is None else np.take_along_axis(y, idx, axis=1)
        return np.take_along_axis(cand, idx[..., None], axis=1), None, kept_y
    y = labels(n)
    cand = sample(n, y)
    return cand, (reward(cand) >= curation.threshold).astype(float), y


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
        raise RunFailed(
            f"generation {generation}: curation {curation.kind} kept no sample of "
            f"replicate(s) {replicate_list(empty)}"
        )
