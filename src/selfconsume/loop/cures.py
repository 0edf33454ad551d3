"""Cures: interventions on the loop, each a kind with a neutral value that is bit-identical to none.

The config's `cures:` block maps a kind to its params (`cures: {real_weight: {real_weight: 0.6}}`);
the loop calls each cure at its hook, whatever order the block lists them in:

- `neon` (`after_first`): right after generation 0, a copy of p_0 is fine-tuned on its own samples
  (theta_s) and p_0 becomes theta_0 + w (theta_0 - theta_s) (Alemohammad et al. 2025, "Neon").
- `self_correction` (`correct`): every synthetic sample moves toward an exact expert,
  x <- x + gamma (c(x) - x) (Gillman et al. 2024), before it enters the training set.
- `real_weight` (`weigh`): the training set's real rows carry the share `real_weight` of its total
  weight, the synthetic rows the rest (He, Xu & Cheng 2025).

At its neutral value (w = 0, gamma = 0, real_weight = the real rows' share by count) a cure returns
what it was given, untouched: a run with it draws and fits exactly what a run without it does
(given the same streams: `common_random_numbers: true`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from selfconsume.config import Config
from selfconsume.data.base import GaussianTruth, HasModes
from selfconsume.data.regression import RegressionTruth
from selfconsume.errors import ConfigError
from selfconsume.kinds import CURE_KINDS
from selfconsume.models.base import Conditional, HasMoments, NetworkModel
from selfconsume.models.regression import HasCoefficients
from selfconsume.registry import Example, Need, Params, Registry
from selfconsume.seeding import Streams

NOT_CONDITIONAL = Need(
    "an unconditional family (its samples carry no label column)",
    lambda source, model: not (isinstance(model, Conditional) and model.conditional),
)
NEUTRAL_RTOL = 1e-12
"""Relative tolerance within which real_weight's per-row factors count as 1 (the neutral value)."""


class Cure:
    """Base of the cure kinds: every hook leaves the loop as it is."""

    schemes: ClassVar[frozenset[str] | None] = None
    """The schemes the cure is defined for (None: every scheme)."""
    needs: ClassVar[tuple[Need, ...]] = ()

    def __init__(self, params: Any, source: Any) -> None:
        self.params, self.source = params, source

    def after_first(self, model: Any, n: int, streams: Streams) -> None:
        """Change p_0 after it is fitted on the n rows of the real set."""

    def correct(self, x: np.ndarray, generation: int) -> np.ndarray:
        """p_t's synthetic samples (R, m, d) as they enter the training set."""
        return x

    def weigh(self, x: np.ndarray, weights: np.ndarray | None, n_real: int) -> np.ndarray | None:
        """The weights (R, N) of a training set x (R, N, d) whose first n_real rows are real."""
        return weights


CURES: Registry[type[Cure]] = Registry("cures", CURE_KINDS)
"""Cure kinds by name; each class is built as `cls(params, source)`."""


class RealWeightParams(Params):
    real_weight: float = Field(ge=0, le=1)
    """The share of the training set's total weight on the real rows (the rest on synthetic)."""


@CURES.register(
    "real_weight",
    RealWeightParams,
    example=Example({"real_weight": 0.8}, config={"scheme": {"kind": "mix", "lam": 0.5}}),
)
class RealWeight(Cure):
    """Real rows carry the share real_weight of the training set's weight, synthetic rows the rest
    (mix and fresh); neutral at the real rows' share by count, n_real / (n_real + n_synthetic)."""

    schemes = frozenset({"mix", "fresh"})

    def weigh(self, x: np.ndarray, weights: np.ndarray | None, n_real: int) -> np.ndarray | None:
        """Scale the real rows by a and the synthetic rows by b per replicate, so that the total
        weight stays what it was and the real rows hold real_weight of it."""
        base = np.ones(x.shape[:2]) if weights is None else weights
        real, synthetic = base[:, :n_real].sum(1), base[:, n_real:].sum(1)
        total, share = real + synthetic, self.params.real_weight
        kept = synthetic > 0  # a replicate whose selection kept no sample trains on its real rows
        a = np.where(kept, share * total / np.maximum(real, 1e-300), 1.0)
        b = np.divide((1 - share) * total, synthetic, out=np.zeros_like(total), where=kept)
        if np.allclose(a, 1, rtol=NEUTRAL_RTOL, atol=0) and np.allclose(
            b[kept], 1, rtol=NEUTRAL_RTOL, atol=0
        ):
            return weights
        out = base.copy()
        out[:, :n_real] *= a[:, None]
        out[:, n_real:] *= b[:, None]
        return out


TRUTH_EXPERT = Need(
    "data with a known truth (a Gaussian, a mixture with point modes, or regression)",
    lambda source, model: isinstance(source, GaussianTruth | HasModes | RegressionTruth),
)


class SelfCorrectionParams(Params):
    gamma: float = Field(ge=0, le=1)
    """The correction's strength: x <- x + gamma (c(x) - x); 0 leaves samples as drawn."""
    expert_noise: float = Field(default=1.0, gt=0, le=1e100)
    """s: the expert reads a sample as a true one plus N(0, s^2) noise and returns its posterior
    mean (large s: the projection on the truth's mean, modes or regression line)."""


def expert(source: Any, x: np.ndarray, s: float) -> np.ndarray:
    """c(x): the posterior mean of a true sample x0 given x = x0 + s eps, under the truth.

    Gaussian N(mu, Sigma): mu + Sigma (Sigma + s^2 I)^{-1} (x - mu). Mixture with point modes and
    std tau: the nearest mode m's conditional mean m + tau^2 / (tau^2 + s^2) (x - m). Regression
    rows (x, y): the label's, x . w* + sigma^2 / (sigma^2 + s^2) (y - x . w*), the design kept."""
    if isinstance(source, RegressionTruth):
        line = x[..., :-1] @ source.w_star
        keep = source.noise_std**2 / (source.noise_std**2 + s**2)
        out = x.copy()
        out[..., -1] = line + keep * (x[..., -1] - line)
        return out
    if isinstance(source, HasModes):
        nearest = np.linalg.norm(x[..., None, :] - source.modes, axis=-1).argmin(-1)
        mode = source.modes[nearest]
        return mode + source.mode_std**2 / (source.mode_std**2 + s**2) * (x - mode)
    gain = source.cov @ np.linalg.inv(source.cov + s**2 * np.eye(len(source.mean)))
    return source.mean + (x - source.mean) @ gain.T


@CURES.register(
    "self_correction",
    SelfCorrectionParams,
    example=Example(
        {"gamma": 0.5, "expert_noise": 0.1}, config={"data": {"kind": "eight_gaussians"}}
    ),
)
class SelfCorrection(Cure):
    """Every synthetic sample moves toward an exact expert, x <- x + gamma (c(x) - x) (Gillman et
    al. 2024); c is the truth's posterior mean (Gaussian), the nearest mode's conditional mean
    (mixtures), or the label's (regression). Neutral at gamma = 0."""

    needs = (TRUTH_EXPERT, NOT_CONDITIONAL)

    def correct(self, x: np.ndarray, generation: int) -> np.ndarray:
        if self.params.gamma == 0:
            return x
        return x + self.params.gamma * (expert(self.source, x, self.params.expert_noise) - x)


def _generator_weights(model: Any) -> str | None:
    """Which weights Neon extrapolates: a Gaussian's (mean, Cholesky factor), a linear model's
    (coefficients, noise std), a torch family's network (and EMA) weights; None for others."""
    if isinstance(model, HasMoments):
        return "gaussian"
    if isinstance(model, HasCoefficients):
        return "regression"
    if isinstance(model, NetworkModel):  # a torch family (declared; torch is not imported here)
        return "torch"
    return None


EXTRAPOLABLE = Need(
    "a family with generator weights (gaussian, regression, ddpm, flow)",
    lambda source, model: _generator_weights(model) is not None,
)


class NeonParams(Params):
    w: float = Field(ge=0, le=1e6)
    """The extrapolation weight: theta = theta_0 + w (theta_0 - theta_s); 0 is no extrapolation."""


def extrapolate(theta0: Any, theta_s: Any, w: float) -> Any:
    """theta_0 + w (theta_0 - theta_s), leaf by leaf (arrays, tensors, lists of them)."""
    if isinstance(theta0, list | tuple):
        return type(theta0)(extrapolate(a, b, w) for a, b in zip(theta0, theta_s, strict=True))
    return theta0 + w * (theta0 - theta_s)


@CURES.register(
    "neon",
    NeonParams,
    example=Example(
        {"w": 0.5},
        config={"data": {"kind": "gaussian", "params": {"dim": 2}}, "model": {"kind": "gaussian"}},
    ),
)
class Neon(Cure):
    """After generation 0, fine-tune a copy of p_0 on n_real of its own samples (theta_s) and use
    theta_0 + w (theta_0 - theta_s) (Alemohammad et al. 2025). Extrapolates a Gaussian's mean and
    Cholesky factor, a linear model's coefficients and noise std, a torch family's weights and
    EMA; the training statistics (what `accumulate` adds to) stay the real set's. Neutral at w = 0."""

    needs = (EXTRAPOLABLE,)

    def after_first(self, model: Any, n: int, streams: Streams) -> None:
        w = self.params.w
        if w == 0:
            return
        kind = _generator_weights(model)
        before = model.state_dict()
        theta0 = self._weights(model, kind)
        own = model.sample(n, streams.per_replicate("neon", 0), 0)
        model.fit(own, None, 0, True)  # the fine-tune (closed-form families refit)
        theta_s = self._weights(model, kind)
        model.load_state_dict(before)
        theta = extrapolate(theta0, theta_s, w)
        if kind == "gaussian":
            mean, chol = theta
            model.mean, model.cov = mean, np.matmul(chol, chol.transpose(0, 2, 1))
        elif kind == "regression":
            model.coef, model.sigma2 = theta[0], theta[1] ** 2
        else:
            model.load_state_dict({**before, "params": theta[0], "ema": theta[1]})

    @staticmethod
    def _weights(model: Any, kind: str | None) -> tuple[Any, Any]:
        if kind == "gaussian":
            return model.mean.copy(), np.linalg.cholesky(model.cov)
        if kind == "regression":
            return model.coef.copy(), np.sqrt(model.sigma2)
        state = model.state_dict()
        return state["params"], state["ema"]


def resolve_cures(cures: dict[str, Any]) -> dict[str, Params]:
    """Each cure's params typed by its kind (errors name cures.<kind>.<key>)."""
    if not isinstance(cures, dict):
        raise ConfigError("cures: expected a mapping of kind: params")
    return {
        kind: CURES.parse_params(kind, params, f"cures.{kind}") for kind, params in cures.items()
    }


def check_cures(cfg: Config, source: Any, probe: Any) -> None:
    """Every cure finds its scheme, data and model (a one-replicate probe), and runs by sampling."""
    for kind in cfg.cures:
        cls = CURES.get(kind).obj
        if cfg.model.population:
            raise ConfigError(f"cures.{kind}: cures have no exact infinite-sample update")
        if cls.schemes is not None and cfg.scheme.kind not in cls.schemes:
            supported = ", ".join(sorted(cls.schemes))
            raise ConfigError(
                f"cures.{kind}: defined for scheme {supported}, not {cfg.scheme.kind!r}"
            )
        for need in cls.needs:
            if not need.check(source, probe):
                raise ConfigError(
                    f"cures.{kind} needs {need.what} (data.kind {cfg.data.kind!r}, "
                    f"model.kind {cfg.model.kind!r})"
                )


def build_cures(cfg: Config, source: Any) -> list[Cure]:
    """The run's cures, one object per configured kind."""
    return [CURES.get(kind).obj(params, source) for kind, params in cfg.cures.items()]
