"""Closed forms for the discrete family under `replace` without curation: neutral Wright-Fisher.

Generation 0 fits the frequencies of n real draws of q; generation t+1 those of n draws of p_t. The
count N_t = n p_t(i) of one state is then a Markov chain of its own (two-allele Wright-Fisher):
N_0 ~ Bin(n, q_i), N_{t+1} | N_t ~ Bin(n, N_t / n), with 0 absorbing. Any sum over states of a
function of p_t(i), such as the entropy or the number of states at probability 0, therefore has an
exact expectation from these marginal laws.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binom


def count_laws(generations: int, n: int, probs: ArrayLike) -> np.ndarray:
    """P(n p_t(i) = k) for t = 0..generations, states i and k = 0..n: shape (G + 1, S, n + 1)."""
    q = np.asarray(probs, dtype=float)
    k = np.arange(n + 1)
    step = binom.pmf(k[None, :], n, k[:, None] / n)  # row j: the law of N_{t+1} given N_t = j
    law = binom.pmf(k[None, :], n, q[:, None])
    laws = [law]
    for _ in range(generations):
        law = law @ step
        laws.append(law)
    return np.stack(laws)


def expected_entropy(generations: int, n: int, probs: ArrayLike) -> np.ndarray:
    """E[H(p_t)] (nats) for t = 0..generations: sum_i E[-x log x] at x = N_t / n (0 log 0 = 0)."""
    x = np.arange(n + 1) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(x > 0, -x * np.log(x), 0.0)
    return (count_laws(generations, n, probs) @ phi).sum(-1)


def expected_states_lost(generations: int, n: int, probs: ArrayLike) -> np.ndarray:
    """E[#{i : q_i > 0, p_t(i) = 0}] for t = 0..generations: sum_i P(N_t = 0) over the support.

    At t = 0 this is sum_i (1 - q_i)^n; it grows to S - 1 as the chain fixes on one state."""
    q = np.asarray(probs, dtype=float)
    return count_laws(generations, n, q[q > 0])[..., 0].sum(-1)
