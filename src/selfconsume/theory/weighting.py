"""The optimal weight on real data (He, Xu & Cheng 2025, "Golden Ratio Weighting Prevents Model
Collapse"), derived for the `fresh` scheme with the `real_weight` cure.

Setting: every generation t >= 1 fits a fresh real set of n rows together with m = n / rho samples
of p_{t-1}, the real rows holding the share w of the weight. For an estimator linear in its
training rows whose real estimate theta_real,t is unbiased with variance V and whose synthetic
estimate, given p_{t-1}, is theta_{t-1} plus independent noise of variance rho V (the mean of a
Gaussian with known variance; OLS on a fixed design with m = k n rows of the same design and true
sigma, rho = 1 / k), the weighted fit is the convex combination

    theta_t = w theta_real,t + (1 - w) theta_syn,t,    theta_syn,t = theta_{t-1} + noise,

so its error covariance is V k_t with k_0 = 1 (generation 0: the real set alone) and

    k_t = w^2 + (1 - w)^2 (k_{t-1} + rho),    k_inf = (w^2 + rho (1 - w)^2) / (w (2 - w)).

Setting d k_inf / d w = 0: (2w - 2 rho (1 - w)) (2w - w^2) = (w^2 + rho (1 - w)^2)(2 - 2w), which
reduces to w^2 + rho w - rho = 0, so the optimal weight is w* = (sqrt(rho (rho + 4)) - rho) / 2: at
rho = 1 (as many synthetic rows as real) w* = (sqrt 5 - 1) / 2 = 1 / phi = 0.618, the golden ratio.
The unweighted fit (w = n / (n + m)) is 1 / 2 there, and real data alone (w = 1) gives k = 1.
"""

from __future__ import annotations

import numpy as np


def optimal_real_weight(rho: float = 1.0) -> float:
    """w* = (sqrt(rho (rho + 4)) - rho) / 2, rho = n_real / n_synthetic (1 / phi at rho = 1)."""
    return float((np.sqrt(rho * (rho + 4.0)) - rho) / 2.0)


def stationary_factor(w: np.ndarray | float, rho: float = 1.0) -> np.ndarray:
    """k_inf(w) = (w^2 + rho (1 - w)^2) / (w (2 - w)): the error as t -> inf over the first fit's."""
    w = np.asarray(w, dtype=float)
    return (w**2 + rho * (1 - w) ** 2) / (w * (2 - w))


def error_factor(generations: int, w: float, rho: float = 1.0) -> np.ndarray:
    """k_t for t = 0..generations: E[error_t] / E[error_0] (the module doc's recursion)."""
    out = np.ones(generations + 1)
    for t in range(1, generations + 1):
        out[t] = w**2 + (1 - w) ** 2 * (out[t - 1] + rho)
    return out
