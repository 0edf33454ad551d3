"""2-D data sources and the file source: moments, densities and samples against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from selfconsume.data.base import DATA
from selfconsume.errors import ConfigError

Z = 5.0  # standard errors allowed; with a few dozen checks a false alarm has odds ~1e-5


def make(kind: str, **params):
    return DATA.make(kind, params)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize(
    "kind", ["eight_gaussians", "two_moons", "swiss_roll", "checkerboard", "rings"]
)
def test_shape_dtype_and_seed(kind):
    source = make(kind)
    x = source.sample(3, 50, rng(1))
    assert x.shape == (3, 50, 2) and x.dtype == np.float64 and source.dim == 2
    np.testing.assert_array_equal(x, source.sample(3, 50, rng(1)))
    assert not np.array_equal(x, source.sample(3, 50, rng(2)))


def test_eight_gaussians_moments_match_mixture():
    weights = [1, 2, 3, 4, 1, 2, 3, 4]
    source = make("eight_gaussians", radius=2.0, std=0.3, weights=weights)
    w = np.asarray(weights) / sum(weights)
    np.testing.assert_allclose(source.mode_weights, w)
    np.testing.assert_allclose(np.linalg.norm(source.modes, axis=1), 2.0)
    mean = w @ source.modes
    cov = 0.3**2 * np.eye(2) + (source.modes.T * w) @ source.modes - np.outer(mean, mean)
    x = source.sample(1, 200_000, rng())[0]
    n = len(x)
    se_mean = x.std(0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(x.mean(0) - mean) < Z * se_mean)
    c = x - mean
    prods = c[:, :, None] * c[:, None, :]
    se_cov = prods.std(0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(prods.mean(0) - cov) < Z * se_cov)


def test_eight_gaussians_spread_around_each_mode():
    """|x - nearest mode|^2 / std^2 is χ²_2 (mean 2, sd 2) when modes are 15 std apart."""
    source = make("eight_gaussians", radius=2.0, std=0.1)
    x = source.sample(1, 100_000, rng())[0]
    chi2 = ((x[:, None] - source.modes) ** 2).sum(-1).min(-1) / 0.1**2
    assert abs(chi2.mean() - 2) < Z * 2 / np.sqrt(len(chi2))


def grid_mass(source, half: float, bins: int, sub: int) -> np.ndarray:
    """Mass of the density in each of bins x bins squares of [-half, half]^2 (midpoint rule)."""
    h = 2 * half / (bins * sub)
    c = -half + h * (np.arange(bins * sub) + 0.5)
    pts = np.stack(np.meshgrid(c, c, indexing="ij"), axis=-1)
    mass = np.exp(source.log_prob(pts)) * h**2
    return mass.reshape(bins, sub, bins, sub).sum((1, 3))


# Grid spacing is at most a tenth of the narrowest feature (std / noise), where the midpoint rule
# on a Gaussian profile errs by far less than 1e-4; the checkerboard's cells align with the grid.
DENSITY_CASES = [
    ("eight_gaussians", {"std": 0.1, "weights": [1, 1, 2, 2, 3, 3, 4, 4]}, 2.5, 10, 50, 1e-4),
    ("checkerboard", {"n_cells": 4, "cell": 1.0}, 2.5, 10, 20, 1e-12),
    ("rings", {"radii": [0.5, 1.5, 3.0], "noise": 0.05, "weights": [1, 2, 3]}, 3.5, 14, 100, 1e-4),
]


@pytest.mark.parametrize(("kind", "params", "half", "bins", "sub", "tol"), DENSITY_CASES)
def test_log_prob_integrates_to_one_and_matches_samples(kind, params, half, bins, sub, tol):
    source = make(kind, **params)
    mass = grid_mass(source, half, bins, sub)
    assert abs(mass.sum() - 1) < tol
    n = 100_000
    x = source.sample(1, n, rng())[0]
    counts = np.histogram2d(x[:, 0], x[:, 1], bins=bins, range=[[-half, half]] * 2)[0]
    se = np.sqrt(n * mass * (1 - mass))
    assert np.all(np.abs(counts - n * mass) <= Z * se + n * tol)


def test_rings_density_with_noise_wider_than_the_radius():
    """Radial density 2πρ p(ρ) integrates to 1 and matches |x| of the samples even when the noise
    often flips the signed radius across the centre (the reflected term of log_prob)."""
    source = make("rings", radii=[0.1, 0.5], noise=0.2, weights=[2, 1])
    h, top = 1e-4, 2.0
    rho = h * (np.arange(int(top / h)) + 0.5)
    radial = 2 * np.pi * rho * np.exp(source.log_prob(np.stack([rho, 0 * rho], axis=1)))
    assert abs(radial.sum() * h - 1) < 1e-6
    n, edges = 100_000, np.linspace(0, top, 21)
    counts = np.histogram(np.linalg.norm(source.sample(1, n, rng())[0], axis=1), edges)[0]
    mass = radial.reshape(20, -1).sum(1) * h
    assert np.all(np.abs(counts - n * mass) <= Z * np.sqrt(n * mass * (1 - mass)) + 1)


def test_checkerboard_density_is_zero_off_the_dark_squares():
    source = make("checkerboard", n_cells=4, cell=1.0)
    lp = source.log_prob(np.array([[-1.5, -1.5], [-0.5, -1.5], [2.5, 0.0], [0.5, 0.5]]))
    np.testing.assert_allclose(lp, [-np.log(8), -np.inf, -np.inf, -np.log(8)])


def test_two_moons_points_lie_on_the_moons():
    source = make("two_moons", noise=0.0, scale=2.0)
    p = source.sample(1, 20_000, rng())[0] / 2.0 + np.array([0.5, 0.25])
    outer = np.isclose(np.linalg.norm(p, axis=1), 1) & (p[:, 1] >= -1e-12)
    inner = np.isclose(np.linalg.norm(p - [1.0, 0.5], axis=1), 1) & (p[:, 1] <= 0.5 + 1e-12)
    assert np.all(outer | inner)
    frac = inner.mean()
    assert abs(frac - 0.5) < Z * np.sqrt(0.25 / len(p))


def test_two_moons_is_centred():
    x = make("two_moons", noise=0.2).sample(1, 50_000, rng())[0]
    assert np.all(np.abs(x.mean(0)) < Z * x.std(0, ddof=1) / np.sqrt(len(x)))


def test_swiss_roll_follows_the_spiral():
    source = make("swiss_roll", noise=0.0, scale=3.0)
    x = source.sample(1, 20_000, rng())[0]
    t = 5 * np.linalg.norm(x, axis=1) / 3.0
    assert t.min() >= 1.5 * np.pi - 1e-9 and t.max() <= 4.5 * np.pi + 1e-9
    np.testing.assert_allclose(5 * x / 3.0, t[:, None] * np.stack([np.cos(t), np.sin(t)], 1))
    se = 3 * np.pi / np.sqrt(12) / np.sqrt(len(t))  # t ~ U[1.5π, 4.5π]
    assert abs(t.mean() - 3 * np.pi) < Z * se


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("eight_gaussians", {"n_modes": 3, "weights": [1.0, 2.0]}),
        ("eight_gaussians", {"std": 0.0}),
        ("rings", {"radii": [1.0, -2.0]}),
        ("checkerboard", {"n_cells": 1}),
        ("two_moons", {"noise": 0.1, "bogus": 1}),
    ],
)
def test_bad_params_are_config_errors(kind, params):
    with pytest.raises(ConfigError, match=r"data\.params"):
        DATA.parse_params(kind, params, "data.params")


# --- the file source ---------------------------------------------------------------------------


def file_source(path, **params):
    return make("file", path=str(path), **params)


def assert_file_error(path, match: str, **params):
    with pytest.raises(ConfigError) as info:
        file_source(path, **params)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert match in message


def test_file_source_resamples_its_real_rows_uniformly(tmp_path):
    rows = np.arange(24.0).reshape(8, 3)
    np.save(tmp_path / "pts.npy", rows)
    source = file_source(tmp_path / "pts.npy", dim=3)
    assert source.dim == 3 and len(source.real_rows) == 4  # test_fraction 0.5 holds out 4
    x = source.sample(5, 4000, rng())
    assert x.shape == (5, 4000, 3)
    index = (x[..., 0] / 3).astype(int)
    np.testing.assert_array_equal(x, rows[index])
    counts = np.bincount(index.ravel(), minlength=8)
    assert not counts[source.test_rows].any()
    n = index.size
    assert np.all(np.abs(counts[source.real_rows] - n / 4) < Z * np.sqrt(n * 0.25 * 0.75))


def test_file_source_reads_csv_with_header_and_standardizes(tmp_path):
    path = tmp_path / "pts.csv"
    path.write_text("a,b\n1,10\n2,20\n3,60\n")
    raw = file_source(path)
    np.testing.assert_array_equal(raw.points, [[1, 10], [2, 20], [3, 60]])
    std = file_source(path, standardize=True).points
    np.testing.assert_allclose(std.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(std.std(0), 1)


def test_file_errors_name_the_file(tmp_path):
    nan_csv = tmp_path / "nan.csv"
    nan_csv.write_text("1,2\n3,nan\n")
    assert_file_error(nan_csv, "non-finite")
    three = tmp_path / "three.npy"
    np.save(three, np.zeros((10, 3)))
    assert_file_error(three, "3 columns", dim=2)
    assert_file_error(tmp_path / "missing.csv", "not found")
    one_row = tmp_path / "one.csv"
    one_row.write_text("1,2\n")
    assert_file_error(one_row, "at least 2")
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(5))
    assert_file_error(flat, "not a 2-D array")
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("x,y\n1,oops\n")
    assert_file_error(garbage, "unreadable")
    wrong = tmp_path / "pts.txt"
    wrong.write_text("1,2\n")
    assert_file_error(wrong, "unsupported extension")
    const = tmp_path / "const.csv"
    const.write_text("1,5\n2,5\n")
    assert_file_error(const, "constant", standardize=True)
