"""Closed forms for the Gaussian warm-up (Shumailov et al. 2023; Bertrand et al. 2024).

Setting: real data N(mu, sigma^2) in 1-D; generation 0 is fitted on n real points, generation t+1 on
n samples of p_t. With the sample variance s^2 = scatter / c, c = n-1 (unbiased) or n (MLE), Cochran's
theorem gives scatter / sigma_t^2 ~ chi^2_{n-1}, independent of the sample mean, so

    sigma_{t+1}^2 = sigma_t^2 * chi^2_{n-1} / c,      mu_{t+1} = mu_t + sigma_t * xi / sqrt(n).

Generation t is t+1 such refits away from the truth (generation 0 is already one), hence every
moment below carries the exponent t+1.

In d dimensions (real data N(mu, Sigma)) the scatter of n points is Wishart(Sigma_t, n-1), independent
of the sample mean, so with W_t ~ Wishart(I, n-1) independent across refits

    Sigma_{t+1} = Sigma_t^{1/2} W_{t+1} Sigma_t^{1/2} / c,      mu_{t+1} = mu_t + Sigma_t^{1/2} xi / sqrt(n),

and the `expected_cov_*` / `expected_mean_error_sq` functions give the d-dim moments (the `replace`
scheme, n synthetic samples per generation).

Sampling bias psi (Alemohammad et al., ICLR 2024): generation t+1 is fitted on samples of
N(mu_t, psi^2 Sigma_t), so every refit but the first (generation 0 sees the real data) carries one
more factor psi on the std: sigma_{t+1} = psi sigma_t sqrt(chi^2_{n-1} / c), hence
E[sigma_t] = alpha(n)^(t+1) psi^t sigma. Every function below takes `psi` (default 1, unbiased).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln


def _denominator(n: int, estimator: str) -> float:
    if estimator not in ("unbiased", "mle"):
        raise ValueError(f"estimator must be 'unbiased' or 'mle', not {estimator!r}")
    return n - 1.0 if estimator == "unbiased" else float(n)


def collapse_factor(n: int, estimator: str = "unbiased") -> float:
    """alpha(n) = E[sigma_{t+1} / sigma_t] = E[sqrt(chi^2_{n-1} / c)].

    E[chi_{k}] = sqrt(2) Gamma((k+1)/2) / Gamma(k/2) with k = n-1, so
    alpha = sqrt(2/c) Gamma(n/2) / Gamma((n-1)/2) < 1 (Jensen: E[sqrt V] < sqrt(E V) <= 1)."""
    c = _denominator(n, estimator)
    return float(np.sqrt(2.0 / c) * np.exp(gammaln(n / 2) - gammaln((n - 1) / 2)))


def variance_factor(n: int, estimator: str = "unbiased") -> float:
    """c2(n) = E[sigma_{t+1}^2 / sigma_t^2] = (n-1)/c: 1 for unbiased, (n-1)/n for MLE."""
    return (n - 1.0) / _denominator(n, estimator)


def expected_sigma(
    t: np.ndarray | int, n: int, sigma: float = 1.0, estimator: str = "unbiased", psi: float = 1.0
) -> np.ndarray:
    """E[sigma_t] = alpha(n)^(t+1) psi^t sigma: the factors of successive refits are independent,
    and the t refits on synthetic samples each see the std shrunk by psi."""
    t = np.asarray(t)
    return sigma * collapse_factor(n, estimator) ** (t + 1.0) * psi**t


def expected_variance(
    t: np.ndarray | int, n: int, sigma: float = 1.0, estimator: str = "unbiased", psi: float = 1.0
) -> np.ndarray:
    """E[sigma_t^2] = c2(n)^(t+1) psi^(2t) sigma^2 (constant for the unbiased estimator at psi = 1,
    yet sigma_t -> 0 a.s.)."""
    t = np.asarray(t)
    return sigma**2 * variance_factor(n, estimator) ** (t + 1.0) * psi ** (2.0 * t)


def expected_mean_sq_error(
    t: np.ndarray | int, n: int, sigma: float = 1.0, estimator: str = "unbiased", psi: float = 1.0
) -> np.ndarray:
    """E[(mu_t - mu)^2] = sum_{k=0}^{t} psi^2 E[sigma_{k-1}^2] / n with psi sigma_{-1} = sigma (a
    random walk whose steps have the sampled variance)."""
    return expected_mean_error_sq(t, n, [[sigma**2]], estimator, psi)


def _true_cov(cov: ArrayLike) -> np.ndarray:
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be a square (d, d) matrix, not shape {cov.shape}")
    return cov


def log_det_factor(n: int, d: int, estimator: str = "unbiased") -> float:
    """E[log det Sigma_{t+1} - log det Sigma_t] = E[log det W] - d log c, W ~ Wishart(I, n-1).

    Bartlett: det W = prod_{i=0}^{d-1} chi^2_{n-1-i} (independent), and E[log chi^2_k] =
    psi(k/2) + log 2, so E[log det W] = sum_i psi((n-1-i)/2) + d log 2. Needs n > d."""
    if n <= d:
        raise ValueError(f"a d={d} covariance fit needs n > d points, not n={n}")
    c = _denominator(n, estimator)
    return float(sum(digamma((n - 1 - i) / 2) for i in range(d)) + d * np.log(2 / c))


def expected_cov_logdet(
    t: np.ndarray | int, n: int, cov: ArrayLike, estimator: str = "unbiased", psi: float = 1.0
) -> np.ndarray:
    """E[log det Sigma_t] = log det Sigma + (t+1) log_det_factor(n, d) + 2 d t log psi: the
    log-determinant falls linearly (Sigma_t -> 0 a.s.) even for the unbiased estimator, whose
    E[Sigma_t] stays Sigma at psi = 1."""
    cov = _true_cov(cov)
    t, d = np.asarray(t), cov.shape[0]
    step = log_det_factor(n, d, estimator)
    return np.linalg.slogdet(cov)[1] + (t + 1.0) * step + 2.0 * d * t * np.log(psi)


def expected_cov_trace(
    t: np.ndarray | int, n: int, cov: ArrayLike, estimator: str = "unbiased", psi: float = 1.0
) -> np.ndarray:
    """E[tr Sigma_t] = c2(n)^(t+1) psi^(2t) tr Sigma, from E[Sigma_{t+1} | Sigma_t] = (n-1)/c psi^2
    Sigma_t."""
    t = np.asarray(t)
    return np.trace(_true_cov(cov)) * variance_factor(n, estimator) ** (t + 1.0) * psi ** (2.0 * t)


def expected_mean_error_sq(
    t: np.ndarray | int, n: int, cov: ArrayLike, estimator: str = "unbiased", psi: float = 1.0
) -> np.ndarray:
    """E||mu_t - mu||^2 = tr Sigma / n * sum_{k=0}^{t} q^k, q = c2(n) psi^2: refit k adds an
    independent N(0, Sigma' / n) step to the mean, Sigma' the covariance sampled (Sigma for k = 0,
    psi^2 Sigma_{k-1} after), E[tr] = q^k tr Sigma (the metric `mean_error` is its square root)."""
    t = np.asarray(t)
    trace = np.trace(_true_cov(cov))
    q = variance_factor(n, estimator) * psi**2
    if q == 1.0:
        return trace * (t + 1.0) / n
    return trace * (1 - q ** (t + 1.0)) / (1 - q) / n


def expected_w2_sq(
    t: np.ndarray | int, n: int, sigma: float = 1.0, estimator: str = "unbiased", psi: float = 1.0
) -> np.ndarray:
    """E[W2^2(p_t, p_data)] = E[(mu_t - mu)^2] + E[sigma_t^2] - 2 sigma E[sigma_t] + sigma^2
    (1-D Gaussians: W2^2 = (mu_t - mu)^2 + (sigma_t - sigma)^2; p_t is the fitted model)."""
    return (
        expected_mean_sq_error(t, n, sigma, estimator, psi)
        + expected_variance(t, n, sigma, estimator, psi)
        - 2 * sigma * expected_sigma(t, n, sigma, estimator, psi)
        + sigma**2
    )


def population_mix_step(
    mean: np.ndarray, var: np.ndarray, real_mean: np.ndarray, real_var: np.ndarray, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """One exact infinite-sample step of mix at weight lam (1-D): the moments of
    (p_real + lam p_t) / (1 + lam). real_var is the MLE (1/n) variance of the real set.

    Mean: (a + lam mu_t)/(1+lam). Variance: mixture second moment minus the squared mean, i.e.
    (v_r + lam v_t)/(1+lam) + lam (a - mu_t)^2 / (1+lam)^2. The fixed point is (a, v_r), reached
    geometrically at rate lam / (1 + lam) for the mean."""
    new_mean = (real_mean + lam * mean) / (1 + lam)
    new_var = (real_var + lam * var) / (1 + lam) + lam * (real_mean - mean) ** 2 / (1 + lam) ** 2
    return new_mean, new_var


def expected_mix_moments(
    generations: int,
    n_real: int,
    lam: float,
    sigma: float = 1.0,
    estimator: str = "unbiased",
    psi: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Finite-sample mix scheme in 1-D: E[sigma_t^2] and E[(mu_t - a)^2], t = 0..generations,
    a being the real set's mean. Exact, from a linear recursion on the two moments.

    Generation t+1 trains on the n real points (mean a, scatter S_r) plus m = round(lam n) samples
    y ~ N(mu_t, s_t^2). With N = n + m and D_t = a - mu_t, the pooled scatter is
    S_r + S_y + (n m / N)(a - ybar)^2, E[S_y] = (m-1) s^2 and E[(a-ybar)^2] = D^2 + s^2/m, so
        E[s_{t+1}^2] = (E[S_r] + (m - 1 + n/N) E[s_t^2] + (n m / N) E[D_t^2]) / c(N),
        E[D_{t+1}^2] = (m / N)^2 (E[D_t^2] + E[s_t^2] / m),
    with E[S_r] = (n-1) sigma^2, D_0 = 0 and E[s_0^2] = (n-1) sigma^2 / c(n). Sampling bias psi
    draws y with variance psi^2 s_t^2: E[s_t^2] becomes psi^2 E[s_t^2] on the right-hand sides."""
    n, m = n_real, int(round(lam * n_real))
    big = n + m
    scatter_real = (n - 1.0) * sigma**2
    var = np.empty(generations + 1)
    dev = np.empty(generations + 1)
    var[0], dev[0] = scatter_real / _denominator(n, estimator), 0.0
    for t in range(generations):
        if m == 0:
            var[t + 1], dev[t + 1] = var[0], 0.0
            continue
        sampled = psi**2 * var[t]
        var[t + 1] = (
            scatter_real + (m - 1 + n / big) * sampled + n * m / big * dev[t]
        ) / _denominator(big, estimator)
        dev[t + 1] = (m / big) ** 2 * (dev[t] + sampled / m)
    return var, dev


def gaussian_w2_sq(
    mean: np.ndarray, cov: np.ndarray, true_mean: np.ndarray, true_cov: np.ndarray
) -> np.ndarray:
    """Squared W2 between N(mean_r, cov_r) (R, d), (R, d, d) and N(true_mean, true_cov).

    W2^2 = |m - m0|^2 + tr(S + S0 - 2 (S0^1/2 S S0^1/2)^1/2) (Bures); in 1-D, (m-m0)^2 + (s-s0)^2."""
    shift = ((mean - true_mean) ** 2).sum(-1)
    if mean.shape[-1] == 1:
        return shift + (np.sqrt(cov[:, 0, 0]) - np.sqrt(true_cov[0, 0])) ** 2
    w, v = np.linalg.eigh(true_cov)  # symmetric square root of the truth's covariance
    root0 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root0 @ cov @ root0
    eig = np.clip(np.linalg.eigvalsh(inner), 0, None)
    bures = np.trace(cov, axis1=1, axis2=2) + np.trace(true_cov) - 2 * np.sqrt(eig).sum(-1)
    return shift + np.clip(bures, 0, None)
