"""Gaussian mixtures fitted by EM (scikit-learn's GaussianMixture), one per replicate.

scikit-learn is not batched, so `fit` loops over replicates in Python (each fit is small); sampling
and `log_prob` are vectorised over replicates. A warm start initialises EM from the previous
weights, means and precisions. scikit-learn's EM takes no sample weights: samples of weight 0 are
dropped, and unequal positive weights are honoured by drawing the fit set with probability
proportional to the weights. Sampling bias psi tempers the component weights only (w_k^(1/psi),
renormalised: psi < 1 favours the heavy components); each component's Gaussian is not shrunk.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from pydantic import Field
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from selfconsume.errors import ConfigError
from selfconsume.memory import COPIES, FLOAT64, Dim, Term
from selfconsume.models.base import MODELS, SamplingParams, Streams, tempered
from selfconsume.models.kde import categorical


class GMMParams(SamplingParams):
    n_components: int = Field(default=8, ge=1)
    covariance_type: Literal["full", "tied", "diag", "spherical"] = "full"
    max_iter: int = Field(default=100, ge=1)
    tol: float = Field(default=1e-3, gt=0)
    reg_covar: float = Field(default=1e-6, ge=0)

    def check_fit_size(self, n: int, key: str) -> None:
        """EM needs at least one sample per component: a smaller fit set (`key`) is bad input."""
        if n < self.n_components:
            raise ConfigError(
                f"model.params.n_components: {self.n_components} components, but {key} is {n} "
                "(EM needs at least one sample per component)"
            )


def full_covariances(cov: np.ndarray, kind: str, k: int, d: int) -> np.ndarray:
    """Covariances of any scikit-learn covariance_type as full matrices (R, K, d, d)."""
    eye = np.eye(d)
    if kind == "full":
        return cov
    if kind == "tied":
        return np.broadcast_to(cov[:, None], (cov.shape[0], k, d, d))
    if kind == "diag":
        return cov[..., None] * eye
    return cov[..., None, None] * eye


def fit_set(x: np.ndarray, w: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """The samples EM sees for one replicate: weight-0 samples dropped, unequal weights resampled."""
    if w is None:
        return x
    keep = w > 0
    pos = w[keep]
    if np.all(pos == pos[0]):
        return x[keep]
    return x[rng.choice(len(x), size=len(x), p=w / w.sum())]


@MODELS.register("gmm", GMMParams)
class GMM:
    """Gaussian mixture fitted by EM per replicate; params: n_components, covariance_type
    (full | tied | diag | spherical), max_iter, tol, reg_covar, psi (weights ∝ w^(1/psi) when
    sampling)."""

    @classmethod
    def memory_terms(cls, params: GMMParams, replicates: float, dim: Dim) -> list[Term]:
        """Each replicate's component covariances and precisions (k, d, d)."""
        key, d = dim
        factors = {"replicates": replicates, "model.params.n_components": params.n_components}
        return [Term("mixture covariances", {**factors, key: d * d}, FLOAT64 * COPIES)]

    def __init__(self, params: GMMParams, dim: int, replicates: int, streams: Streams) -> None:
        self.p, self.dim, self.replicates, self.streams = params, dim, replicates, streams
        k = params.n_components
        self.weights = np.full((replicates, k), 1.0 / k)
        self.means = np.zeros((replicates, k, dim))
        native = {"full": (k, dim, dim), "tied": (dim, dim), "diag": (k, dim), "spherical": (k,)}
        unit = np.eye(dim) if params.covariance_type in ("full", "tied") else 1.0
        self.covariances = np.broadcast_to(
            unit, (replicates, *native[params.covariance_type])
        ).copy()
        self.precisions = self.covariances.copy()

    def fit(
        self, x: np.ndarray, weights: np.ndarray | None, generation: int, warm: bool
    ) -> dict[str, np.ndarray]:
        """EM per replicate; returns the mean negative log-likelihood and whether EM converged."""
        seeds = self.streams.per_replicate("gmm/init", generation).integers(
            0, 2**31 - 1, size=self.replicates
        )
        loss, converged = np.empty(self.replicates), np.empty(self.replicates)
        for r in range(self.replicates):
            resample = self.streams.numpy(f"gmm/resample/{r}", generation)
            data = fit_set(x[r], None if weights is None else weights[r], resample)
            init = (
                {
                    "weights_init": self.weights[r],
                    "means_init": self.means[r],
                    "precisions_init": self.precisions[r],
                }
                if warm
                else {}
            )
            gm = GaussianMixture(
                self.p.n_components,
                covariance_type=self.p.covariance_type,
                max_iter=self.p.max_iter,
                tol=self.p.tol,
                reg_covar=self.p.reg_covar,
                random_state=int(seeds[r]),
                **init,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                gm.fit(data)
            self.weights[r], self.means[r] = gm.weights_, gm.means_
            self.covariances[r], self.precisions[r] = gm.covariances_, gm.precisions_
            loss[r], converged[r] = -gm.score(data), float(gm.converged_)
        return {"loss": loss, "converged": converged}

    def _full(self) -> np.ndarray:
        return full_covariances(
            self.covariances, self.p.covariance_type, self.p.n_components, self.dim
        )

    def sample(self, n: int, rng: np.random.Generator, generation: int) -> np.ndarray:
        """Pick a component by its tempered weight w^(1/psi), then draw from its Gaussian."""
        comp = categorical(rng.random((self.replicates, n)), tempered(self.weights, self.p.psi))
        rows = np.arange(self.replicates)[:, None]
        chol = np.linalg.cholesky(self._full())[rows, comp]
        z = rng.standard_normal((self.replicates, n, self.dim))
        return self.means[rows, comp] + np.einsum("rnij,rnj->rni", chol, z)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """log sum_k w_k N(x; mu_k, Sigma_k) per replicate: (R, m, d) -> (R, m)."""
        prec_chol = np.linalg.cholesky(np.linalg.inv(self._full()))
        y = (
            np.einsum("rmd,rkde->rkme", x, prec_chol)
            - np.einsum("rkd,rkde->rke", self.means, prec_chol)[:, :, None, :]
        )
        logdet = np.log(np.diagonal(prec_chol, axis1=-2, axis2=-1)).sum(-1)
        comp = -0.5 * (y**2).sum(-1) + logdet[..., None] - 0.5 * self.dim * np.log(2 * np.pi)
        with np.errstate(divide="ignore"):
            logw = np.log(self.weights)
        return logsumexp(comp + logw[..., None], axis=1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights.copy(),
            "means": self.means.copy(),
            "covariances": self.covariances.copy(),
            "precisions": self.precisions.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("weights", "means", "covariances", "precisions"):
            setattr(self, key, np.array(state[key], dtype=float))
