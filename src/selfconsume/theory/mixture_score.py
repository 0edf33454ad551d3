"""Exact denoisers of a Gaussian mixture: the perfect network of a DDPM or of a flow, to test samplers.

Data x0 ~ sum_k w_k N(mu_k, diag(v_k)); noised x = a x0 + s z with z ~ N(0, I). Given the component
k, (x0, z, x) are jointly Gaussian, so x ~ N(a mu_k, diag(a^2 v_k + s^2)) and, with
c_k = a^2 v_k + s^2,

    E[z | x, k] = s (x - a mu_k) / c_k,       E[x0 | x, k] = mu_k + a v_k (x - a mu_k) / c_k.

Averaging over the posterior responsibilities r_k(x) ∝ w_k N(x; a mu_k, c_k) gives the exact
conditional means. The DDPM forward process (Ho et al., 2020) has a = sqrt(abar), s = sqrt(1 - abar)
and its optimal noise predictor is eps*(x) = E[z | x] = -s grad log p(x). The straight flow-matching
path x_t = (1 - t) z + t x0 (selfconsume.models.flow) has a = t, s = 1 - t, and its optimal
velocity is v*(x, t) = E[x0 - z | x_t = x] (Lipman et al., 2023, the marginal vector field).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def _components(
    x: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    weights: np.ndarray,
    a: float,
    s: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log w_k N(x; a mu_k, c_k) (..., K), x - a mu_k (..., K, d) and c_k (K, d)."""
    c = a**2 * variances + s**2
    diff = x[..., None, :] - a * means
    log_joint = np.log(weights) - 0.5 * ((diff**2 / c) + np.log(2 * np.pi * c)).sum(-1)
    return log_joint, diff, c


def conditional_means(
    x: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    weights: np.ndarray,
    a: float,
    s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """E[x0 | x] and E[z | x] for x = a x0 + s z, points x (..., d), mixture means (K, d),
    per-dimension variances (K, d) and weights (K,): two arrays (..., d)."""
    log_r, diff, c = _components(x, means, variances, weights, a, s)
    r = np.exp(log_r - logsumexp(log_r, axis=-1, keepdims=True))[..., None]
    z_mean = (r * s * diff / c).sum(-2)
    x0_mean = (r * (means + a * variances * diff / c)).sum(-2)
    return x0_mean, z_mean


def noise_prediction(
    x: np.ndarray, means: np.ndarray, variances: np.ndarray, weights: np.ndarray, abar: float
) -> np.ndarray:
    """The exact DDPM noise predictor eps*(x_t) = E[eps | x_t] at cumulative alpha `abar`."""
    return conditional_means(x, means, variances, weights, np.sqrt(abar), np.sqrt(1 - abar))[1]


def flow_velocity(
    x: np.ndarray, means: np.ndarray, variances: np.ndarray, weights: np.ndarray, t: float
) -> np.ndarray:
    """The exact velocity E[x1 - x0 | x_t] of the path x_t = (1 - t) x0 + t x1, x0 ~ N(0, I)."""
    data, noise = conditional_means(x, means, variances, weights, t, 1 - t)
    return data - noise


def log_density(
    x: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    weights: np.ndarray,
    a: float,
    s: float,
) -> np.ndarray:
    """log p(x) of the noised mixture a x0 + s z: (...)."""
    return logsumexp(_components(x, means, variances, weights, a, s)[0], axis=-1)


def standardised(
    means: np.ndarray, variances: np.ndarray, shift: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The mixture in the coordinates (x - shift) / scale that the torch families train in."""
    return (means - shift) / scale, variances / scale**2
