"""Toy 2-D real data: eight_gaussians, two_moons, swiss_roll, checkerboard, rings.

All sources draw every replicate at once with array operations. Those with a closed-form density
expose `log_prob`; the Gaussian mixture also exposes `modes`, `mode_std` and `mode_weights` so the
mode metrics can count covered modes and the mass on each. Those with closed-form first two moments
expose `moments()` (the exact target of the Gaussian family's population mode).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator
from scipy.special import logsumexp

from selfconsume.data.base import DATA, Params

LOG_2PI = np.log(2 * np.pi)
MAX_MODES = 10_000
"""Most modes of a mixture: every sample is compared with every mode when the density and the
mode metrics are computed, so the count multiplies the metric arrays."""
MAX_CELLS = 1000
"""Most cells per side of a checkerboard (its n_cells^2 / 2 dark squares are kept in memory)."""


def _weights(weights: list[float] | None, count: int, what: str) -> np.ndarray:
    """Validated mixture weights, normalised to sum to 1 (uniform when None)."""
    if weights is None:
        return np.full(count, 1.0 / count)
    w = np.asarray(weights, dtype=float)
    if w.shape != (count,) or np.any(w <= 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be {count} positive numbers (one per {what})")
    return w / w.sum()


def mixture_moments(
    centres: np.ndarray, weights: np.ndarray, within: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a mixture with component means `centres` (k, d), weights (k,) and a
    common within-component covariance (d, d)."""
    mean = weights @ centres
    diff = centres - mean
    return mean, within + (weights[:, None] * diff).T @ diff


class EightGaussiansParams(Params):
    radius: float = Field(default=2.0, gt=0)
    std: float = Field(default=0.1, gt=0)
    n_modes: int = Field(default=8, ge=1, le=MAX_MODES)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _check(self) -> EightGaussiansParams:
        if self.weights is not None:
            _weights(self.weights, self.n_modes, "mode")
        return self


@DATA.register("eight_gaussians", EightGaussiansParams)
class EightGaussians:
    """Mixture of n_modes isotropic Gaussians (std) centred on a circle of `radius`, mode k at angle
    2πk/n_modes; params radius, std, n_modes (8), weights (uniform; normalised)."""

    dim = 2

    def __init__(self, params: EightGaussiansParams) -> None:
        angles = 2 * np.pi * np.arange(params.n_modes) / params.n_modes
        self.modes = params.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        self.mode_std = params.std
        self.mode_weights = _weights(params.weights, params.n_modes, "mode")

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.choice(len(self.modes), size=(replicates, n), p=self.mode_weights)
        return self.modes[k] + self.mode_std * rng.standard_normal((replicates, n, 2))

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean and covariance: the modes' weighted moments plus std^2 I."""
        return mixture_moments(self.modes, self.mode_weights, self.mode_std**2 * np.eye(2))

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        sq = ((x[..., None, :] - self.modes) ** 2).sum(-1) / self.mode_std**2
        comp = -0.5 * sq - LOG_2PI - 2 * np.log(self.mode_std)
        return logsumexp(comp + np.log(self.mode_weights), axis=-1)


class TwoMoonsParams(Params):
    noise: float = Field(default=0.1, ge=0)
    scale: float = Field(default=1.0, gt=0)


@DATA.register("two_moons", TwoMoonsParams)
class TwoMoons:
    """Two interleaved half circles (scikit-learn's make_moons, centred at 0), each point on either
    moon with probability 1/2; params noise (Gaussian std, added after scaling), scale."""

    dim = 2
    center = np.array([0.5, 0.25])

    def __init__(self, params: TwoMoonsParams) -> None:
        self.noise = params.noise
        self.scale = params.scale

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        theta = np.pi * rng.random((replicates, n))
        inner = rng.random((replicates, n)) < 0.5
        sign = np.where(inner, -1.0, 1.0)
        x = np.stack([inner + sign * np.cos(theta), 0.5 * inner + sign * np.sin(theta)], axis=-1)
        return self.scale * (x - self.center) + self.noise * rng.standard_normal(x.shape)


class SwissRollParams(Params):
    noise: float = Field(default=0.1, ge=0)
    scale: float = Field(default=1.0, gt=0)


@DATA.register("swiss_roll", SwissRollParams)
class SwissRoll:
    """2-D Swiss roll: scale · (t cos t, t sin t) / 5 with t ~ U[1.5π, 4.5π], plus Gaussian noise;
    params noise (std, added after scaling), scale."""

    dim = 2

    def __init__(self, params: SwissRollParams) -> None:
        self.noise = params.noise
        self.scale = params.scale

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        t = 1.5 * np.pi * (1 + 2 * rng.random((replicates, n)))
        x = self.scale / 5 * t[..., None] * np.stack([np.cos(t), np.sin(t)], axis=-1)
        return x + self.noise * rng.standard_normal(x.shape)


class CheckerboardParams(Params):
    n_cells: int = Field(default=4, ge=2, le=MAX_CELLS)
    cell: float = Field(default=1.0, gt=0)


@DATA.register("checkerboard", CheckerboardParams)
class Checkerboard:
    """Uniform on the dark squares of an n_cells × n_cells board of side `cell` centred at 0
    (square (i, j) is dark when i + j is even); params n_cells (4), cell (1.0)."""

    dim = 2

    def __init__(self, params: CheckerboardParams) -> None:
        self.n_cells = params.n_cells
        self.cell = params.cell
        self.low = -params.n_cells * params.cell / 2
        i, j = np.meshgrid(np.arange(self.n_cells), np.arange(self.n_cells), indexing="ij")
        dark = (i + j) % 2 == 0
        self.corners = self.low + self.cell * np.stack([i[dark], j[dark]], axis=1).astype(float)
        self.log_density = -np.log(len(self.corners) * self.cell**2)

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.integers(len(self.corners), size=(replicates, n))
        return self.corners[k] + self.cell * rng.random((replicates, n, 2))

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean and covariance: uniform over the dark squares (each cell^2 / 12 I inside)."""
        centres = self.corners + self.cell / 2
        weights = np.full(len(centres), 1.0 / len(centres))
        return mixture_moments(centres, weights, self.cell**2 / 12 * np.eye(2))

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """1 / (dark area) on the dark squares, 0 (log: -inf) elsewhere."""
        idx = np.floor((x - self.low) / self.cell)
        inside = np.all((idx >= 0) & (idx < self.n_cells), axis=-1) & (idx.sum(-1) % 2 == 0)
        return np.where(inside, self.log_density, -np.inf)


class RingsParams(Params):
    radii: list[float] = Field(default_factory=lambda: [1.0, 2.0, 3.0], min_length=1)
    noise: float = Field(default=0.05, gt=0)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _check(self) -> RingsParams:
        if any(r <= 0 for r in self.radii):
            raise ValueError("radii must be > 0")
        _weights(self.weights, len(self.radii), "ring")
        return self


@DATA.register("rings", RingsParams)
class Rings:
    """Concentric rings: pick ring k (weights, uniform by default), a uniform angle and the radius
    radii[k] + noise · N(0, 1); params radii ([1, 2, 3]), noise (0.05), weights."""

    dim = 2

    def __init__(self, params: RingsParams) -> None:
        self.radii = np.asarray(params.radii, dtype=float)
        self.noise = params.noise
        self.ring_weights = _weights(params.weights, len(self.radii), "ring")

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.choice(len(self.radii), size=(replicates, n), p=self.ring_weights)
        r = self.radii[k] + self.noise * rng.standard_normal((replicates, n))
        phi = 2 * np.pi * rng.random((replicates, n))
        return r[..., None] * np.stack([np.cos(phi), np.sin(phi)], axis=-1)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact: mean 0 (uniform angle) and covariance E[r^2] / 2 I, E[r^2] = sum_k w_k (r_k^2 +
        noise^2)."""
        second = self.ring_weights @ (self.radii**2 + self.noise**2)
        return np.zeros(2), second / 2 * np.eye(2)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact: a signed radius r with angle φ and -r with φ + π give the same point, so
        p(x) = Σ_k w_k [N(ρ; r_k, σ) + N(-ρ; r_k, σ)] / (2π ρ) with ρ = |x|."""
        rho = np.linalg.norm(x, axis=-1)[..., None]
        z = np.stack([(rho - self.radii) / self.noise, (-rho - self.radii) / self.noise])
        log_radial = logsumexp(-0.5 * z**2 + np.log(self.ring_weights), axis=(0, -1))
        log_norm = 0.5 * LOG_2PI + np.log(self.noise) + LOG_2PI
        return log_radial - log_norm - np.log(rho[..., 0])
