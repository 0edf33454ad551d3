"""Closed forms of self-consuming linear regression (Gerstgrasser et al. 2024, "Is Model Collapse
Inevitable?"; Dohmatob et al. 2024, "Model Collapse Demystified").

Setting (`data.regression`, `models.regression`): a design X (T x d) and labels y_0 = X w* + E_0,
E_i ~ N(0, sigma^2 I_T) independent. Generation 0 fits the real set; generation t >= 1 fits labels
the previous model puts on the same design, y_t = X w_{t-1} + E_t (the sample noise is the true
sigma, `noise: true_sigma`). Write R = (X^T X + lam T I)^{-1} X^T (the ridge solve, lam = 0: OLS)
and M = R X (= I for OLS). The test error is ||w_t - w*||^2_Sigma, Sigma the features' covariance.

Indexing. Gerstgrasser et al. count *fits*: their model m = 1 is fitted on real data. Our
generation t is therefore m = t + 1 fits, and every formula below takes our generation t.

`replace` (n_synthetic = T): w_t = R y_t = M w_{t-1} + R E_t, with w_{-1} := w*. For OLS, R X = I,
so w_t - w* = sum_{i=0}^{t} (X^T X)^{-1} X^T E_i, a sum of t + 1 independent terms of covariance
sigma^2 (X^T X)^{-1}. Hence E[error | X] = (t + 1) sigma^2 tr(Sigma (X^T X)^{-1}), and for a
Gaussian design (rows N(0, Sigma)) X^T X ~ Wishart(Sigma, T) has E[(X^T X)^{-1}] = Sigma^{-1} /
(T - d - 1), so E[error] = sigma^2 d (t + 1) / (T - d - 1): linear growth. A fresh design every
generation gives the same (w_t = w_{t-1} + R_t E_t still), and so does `noise: sigma_hat` for OLS:
sigma_hat_{t-1}^2 = RSS / (T - d) has mean sigma^2 and is independent of the next E_t, and RSS is
independent of X^T E (Cochran), so each step still adds sigma^2 tr(Sigma (X^T X)^{-1}) on average.

`accumulate` (lam = 1: every batch is T rows on the same X): generation t fits the stacked
(t + 1) T rows, with ridge penalty lam (t + 1) T, so w_t = (1 / (t + 1)) sum_{i=0}^{t} R y_i. With
S_t = (t + 1) w_t, S_t = S_{t-1} + M w_{t-1} + R E_t, i.e.

    w_t = ((t I + M) w_{t-1} + R E_t) / (t + 1).

For OLS (M = I) the error e_t = w_t - w* obeys e_t = e_{t-1} + R E_t / (t + 1), so e_t =
sum_{i=0}^{t} R E_i / (i + 1) and E[error] = sigma^2 d / (T - d - 1) * sum_{i=1}^{t+1} 1 / i^2:
bounded by pi^2 / 6 times the first error. (With `noise: sigma_hat`, each batch's noise is the pooled
sigma_hat_{t-1}, a biased estimate of sigma on the stacked labels: no closed form is given there.)

Ridge (Dohmatob et al.'s setting, the design fixed across generations): both recursions are linear
in w_{t-1} with independent noise, w_t = A_t w_{t-1} + c_t R E_t (replace: A_t = M, c_t = 1;
accumulate: A_t = (t I + M) / (t + 1), c_t = 1 / (t + 1)), so the mean and covariance propagate
exactly, m_t = A_t m_{t-1} (m_{-1} = w*) and C_t = A_t C_{t-1} A_t^T + c_t^2 sigma^2 R R^T, and
E[error | X] = (m_t - w*)^T Sigma (m_t - w*) + tr(Sigma C_t): the bias of repeated shrinkage
(M^{t+1} w* under replace) plus the variance. Dohmatob et al.'s scaling laws are the large-(d, T)
deterministic equivalents of this finite-sample form; `fixed_design_error` is the exact one.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

Scheme = Literal["replace", "accumulate"]


def _first_error(d: int, n: int, sigma: float) -> float:
    """sigma^2 d / (T - d - 1): E[error] of one OLS fit on a Gaussian design of T = n rows."""
    if n <= d + 1:
        raise ValueError(f"the expected OLS error needs T > d + 1 rows, not T={n}, d={d}")
    return sigma**2 * d / (n - d - 1.0)


def replace_error(t: ArrayLike, d: int, n: int, sigma: float = 1.0) -> np.ndarray:
    """E[||w_t - w*||^2_Sigma] = sigma^2 d (t + 1) / (T - d - 1) under `replace` (OLS, Gaussian
    design, generation t = t + 1 fits)."""
    return _first_error(d, n, sigma) * (np.asarray(t, dtype=float) + 1.0)


def accumulate_error(t: ArrayLike, d: int, n: int, sigma: float = 1.0) -> np.ndarray:
    """E[||w_t - w*||^2_Sigma] = sigma^2 d / (T - d - 1) sum_{i=1}^{t+1} 1 / i^2 under
    `accumulate` with lam = 1 (OLS, Gaussian design, true sigma)."""
    t = np.asarray(t, dtype=int)
    partial = np.cumsum(1.0 / np.arange(1, t.max(initial=0) + 2) ** 2)
    return _first_error(d, n, sigma) * partial[t]


def fixed_design_error(
    design: ArrayLike,
    cov: ArrayLike,
    w_star: ArrayLike,
    sigma: float,
    ridge: float,
    generations: int,
    scheme: Scheme,
) -> np.ndarray:
    """E[||w_t - w*||^2_Sigma | X] for t = 0..generations (the module doc's exact recursion), ridge
    or OLS (ridge = 0), `replace` or `accumulate` (lam = 1) on the fixed design X (T, d)."""
    x = np.asarray(design, dtype=float)
    cov, w_star = np.asarray(cov, dtype=float), np.asarray(w_star, dtype=float)
    n, d = x.shape
    solve = np.linalg.solve(x.T @ x + ridge * n * np.eye(d), x.T)  # R (d, T)
    shrink = solve @ x  # M
    noise = sigma**2 * solve @ solve.T  # sigma^2 R R^T
    mean, var = w_star, np.zeros((d, d))
    out = np.empty(generations + 1)
    for t in range(generations + 1):
        if scheme == "replace":
            step, scale = shrink, 1.0
        else:
            step, scale = (t * np.eye(d) + shrink) / (t + 1.0), 1.0 / (t + 1.0)
        mean = step @ mean
        var = step @ var @ step.T + scale**2 * noise
        bias = mean - w_star
        out[t] = bias @ cov @ bias + np.trace(cov @ var)
    return out
