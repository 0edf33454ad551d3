"""Neon (Alemohammad et al. 2025, "Neon: Negative Extrapolation From Self-Training") on the
Gaussian warm-up, in closed form.

Setting: truth N(mu, sigma^2) in 1-D, the `gaussian` family (estimator with denominator c: n - 1
unbiased, n MLE), `replace` with n samples, and the `neon` cure with weight w. The generator's
weights are (mu_0, L_0), x = mu_0 + L_0 z, L_0 = sigma_0 the Cholesky factor. The self-trained copy
refits n of its own samples: mu_s = mu_0 + sigma_0 xi / sqrt(n), sigma_s = sigma_0 S with
S = sqrt(chi^2_{n-1} / c) independent of xi (Cochran). Extrapolating the weights,

    mu_0' = mu_0 - w sigma_0 xi / sqrt(n),      sigma_0' = sigma_0 h,   h = (1 + w) - w S,

with E[S] = alpha(n), E[S^2] = c2(n) = (n - 1) / c (theory.gaussian), so

    E[h] = 1 + w (1 - alpha(n)),      E[h^2] = (1 + w)^2 - 2 w (1 + w) alpha(n) + w^2 c2(n).

Neon moves E[sigma] *up* by the factor E[h]: at w = 1 / alpha(n) it exactly undoes generation 0's
shrinkage, E[sigma_0'] = sigma. (h < 0 needs S > (1 + w) / w: negligible for the w and n used;
the fitted std is |sigma_0 h|.) The later refits multiply as in the warm-up, so for t >= 0

    E[sigma_t] = sigma alpha(n)^(t+1) E[h],      E[sigma_t^2] = sigma^2 c2(n)^(t+1) E[h^2],

and the mean error starts higher, E[(mu_0' - mu)^2] = sigma^2 (1 + w^2 c2(n)) / n, then adds
E[sigma_k^2] / n at each refit k = 0..t-1.
"""

from __future__ import annotations

import numpy as np

from selfconsume.theory.gaussian import collapse_factor, variance_factor


def std_factor(w: float, n: int, estimator: str = "unbiased") -> tuple[float, float]:
    """(E[h], E[h^2]): what Neon multiplies E[sigma] and E[sigma^2] of p_0 by."""
    alpha, c2 = collapse_factor(n, estimator), variance_factor(n, estimator)
    return 1 + w * (1 - alpha), (1 + w) ** 2 - 2 * w * (1 + w) * alpha + w**2 * c2


def neon_sigma(
    t: np.ndarray | int, n: int, sigma: float, w: float, estimator: str = "unbiased"
) -> np.ndarray:
    """E[sigma_t] = sigma alpha(n)^(t+1) E[h] (generation 0 already extrapolated)."""
    t = np.asarray(t, dtype=float)
    return sigma * collapse_factor(n, estimator) ** (t + 1) * std_factor(w, n, estimator)[0]


def neon_variance(
    t: np.ndarray | int, n: int, sigma: float, w: float, estimator: str = "unbiased"
) -> np.ndarray:
    """E[sigma_t^2] = sigma^2 c2(n)^(t+1) E[h^2]."""
    t = np.asarray(t, dtype=float)
    return sigma**2 * variance_factor(n, estimator) ** (t + 1) * std_factor(w, n, estimator)[1]


def neon_mean_error_sq(
    generations: int, n: int, sigma: float, w: float, estimator: str = "unbiased"
) -> np.ndarray:
    """E[(mu_t - mu)^2] for t = 0..generations (the module doc's sums)."""
    c2 = variance_factor(n, estimator)
    steps = neon_variance(np.arange(generations), n, sigma, w, estimator) / n
    first = sigma**2 * (1 + w**2 * c2) / n
    return first + np.concatenate([[0.0], np.cumsum(steps)])
