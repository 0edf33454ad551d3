"""Closed form of the exact (infinite-sample) Gaussian mix update from a misspecified start.

Population mode's mix step maps p_t to the moments of (p_data + lam p_t) / (1 + lam). With
rho = lam / (1 + lam), D_t = mu_t - mu and U_t = Sigma_t - Sigma, the mixture's moments give

    D_{t+1} = rho D_t,      U_{t+1} = rho U_t + rho (1 - rho) D_t D_t^T,

so D_t = rho^t D_0 and, summing the geometric series, U_t = rho^t (U_0 + (1 - rho^t) D_0 D_0^T):
the excess second moment about the truth's mean, U_t + D_t D_t^T = rho^t (U_0 + D_0 D_0^T),
contracts exactly at rate rho < 1 for every lam and every start. The stability theorem of Bertrand
et al. (ICLR 2024) asks for a good first model and a small lam; for an exact fit within the family
(no statistical or optimisation error) neither is needed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from selfconsume.theory.gaussian import gaussian_w2_sq


def contraction(lam: float) -> float:
    """rho = lam / (1 + lam): the factor by which one mix step shrinks the mean error."""
    return lam / (1.0 + lam)


def population_mix_moments(
    t: int, lam: float, mean0: ArrayLike, cov0: ArrayLike, mean: ArrayLike, cov: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of p_t after t exact mix steps from p_0 = N(mean0, cov0),
    p_data = N(mean, cov) (the module doc's closed form)."""
    mean, cov = np.atleast_1d(np.asarray(mean, float)), np.atleast_2d(np.asarray(cov, float))
    delta = np.atleast_1d(np.asarray(mean0, float)) - mean
    decay = contraction(lam) ** t
    excess = np.atleast_2d(np.asarray(cov0, float)) - cov + (1 - decay) * np.outer(delta, delta)
    return mean + decay * delta, cov + decay * excess


def population_mix_w2(
    t: int, lam: float, shift: float, scale: float, mean: ArrayLike, cov: ArrayLike
) -> float:
    """W2(p_t, p_data) from the start p_0 = N(mean + shift, scale² cov) of population mode
    (params start_shift and start_scale), after t exact mix steps."""
    mean, cov = np.atleast_1d(np.asarray(mean, float)), np.atleast_2d(np.asarray(cov, float))
    m_t, c_t = population_mix_moments(t, lam, mean + shift, scale**2 * cov, mean, cov)
    return float(np.sqrt(gaussian_w2_sq(m_t[None], c_t[None], mean, cov)[0]))
