"""Self-correction with the exact Gaussian expert (Gillman et al. 2024, "Self-Correcting
Self-Consuming Loops"), in closed form for the fully synthetic warm-up.

Setting: truth N(mu, sigma^2 I), the `gaussian` family, `replace` with n samples, and the
`self_correction` cure with strength gamma and expert noise s. The expert is the posterior mean
c(x) = mu + k (x - mu), k = sigma^2 / (sigma^2 + s^2), so a corrected sample is

    x' = x + gamma (c(x) - x) = mu + kappa (x - mu),    kappa = 1 - gamma s^2 / (sigma^2 + s^2),

an affine contraction toward the true mean. Corrected samples of p_t = N(mu_t, Sigma_t) are
N(mu + kappa (mu_t - mu), kappa^2 Sigma_t), so the refit (unbiased or MLE, c = n - 1 or n) gives

    sigma_{t+1}^2 = kappa^2 sigma_t^2 chi^2_{n-1} / c,
    mu_{t+1} - mu = kappa (mu_t - mu) + kappa sigma_t xi / sqrt(n)   (1-D; xi independent of chi^2).

The std follows the sampling-bias law with psi = kappa, E[sigma_t] = alpha(n)^{t+1} kappa^t sigma
(theory.gaussian.expected_sigma): this expert *speeds up* the variance collapse. The mean error
v_t = E[(mu_t - mu)^2] contracts instead: v_0 = sigma^2 / n and

    v_{t+1} = kappa^2 (v_t + E[sigma_t^2] / n),    E[sigma_t^2] = sigma^2 c2(n)^{t+1} kappa^{2t}.
"""

from __future__ import annotations

import numpy as np

from selfconsume.theory.gaussian import expected_sigma, variance_factor


def contraction(gamma: float, expert_noise: float, sigma: float = 1.0) -> float:
    """kappa = 1 - gamma s^2 / (sigma^2 + s^2): what one correction leaves of x - mu."""
    return 1.0 - gamma * expert_noise**2 / (sigma**2 + expert_noise**2)


def corrected_sigma(
    t: np.ndarray | int, n: int, sigma: float, gamma: float, expert_noise: float, estimator: str
) -> np.ndarray:
    """E[sigma_t] = alpha(n)^(t+1) kappa^t sigma."""
    kappa = contraction(gamma, expert_noise, sigma)
    return expected_sigma(t, n, sigma, estimator, psi=kappa)


def corrected_mean_error_sq(
    generations: int, n: int, sigma: float, gamma: float, expert_noise: float, estimator: str
) -> np.ndarray:
    """E[(mu_t - mu)^2] for t = 0..generations (the module doc's recursion, 1-D)."""
    kappa = contraction(gamma, expert_noise, sigma)
    c2 = variance_factor(n, estimator)
    out = np.empty(generations + 1)
    out[0] = sigma**2 / n
    for t in range(generations):
        var_t = sigma**2 * c2 ** (t + 1) * kappa ** (2 * t)
        out[t + 1] = kappa**2 * (out[t] + var_t / n)
    return out
