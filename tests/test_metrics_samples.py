"""Sample-based metrics against closed forms, exact identities and brute-force references."""

from __future__ import annotations

import numpy as np
import ot
import pytest
from scipy.stats import rice

from selfconsume.data.base import DATA
from selfconsume.errors import ConfigError
from selfconsume.metrics import sample_metrics as sm
from selfconsume.metrics import transport
from selfconsume.metrics.base import METRICS, MetricContext
from selfconsume.models.gaussian import GaussianModel, GaussianModelParams
from selfconsume.seeding import Streams

Z = 4.5  # standard errors allowed per check


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def make(kind: str, **params):
    return DATA.make(kind, params)


def z_ok(values: np.ndarray, expected: float) -> bool:
    """Mean of per-replicate values within Z standard errors of `expected`."""
    se = values.std(ddof=1) / np.sqrt(len(values))
    return abs(values.mean() - expected) <= Z * se


class SourceModel:
    """A 'model' that samples a data source (optionally restricted to one of its modes)."""

    def __init__(self, source, replicates: int) -> None:
        self.source, self.replicates = source, replicates

    def sample(self, n: int, rng: np.random.Generator, generation: int) -> np.ndarray:
        return self.source.sample(self.replicates, n, rng)


def context(model, source, replicates: int, n_test: int, seed: int = 0) -> MetricContext:
    test = source.sample(replicates, n_test, rng(seed + 1000))
    return MetricContext(model, source, test, test, 0, Streams(seed))


def group(name: str, ctx: MetricContext) -> dict[str, np.ndarray]:
    return METRICS.get(name).obj(ctx)


# --- exact and sliced W2 ----------------------------------------------------------------------


def test_w2_of_identical_sets_is_zero():
    x = rng().standard_normal((3, 100, 2))
    shuffled = x[:, rng(1).permutation(100)]
    np.testing.assert_allclose(transport.w2_empirical(x, shuffled), 0, atol=1e-7)


def test_w2_of_a_shift_splits_into_mean_and_centred_parts():
    """W2^2(μ, ν) = |mean μ - mean ν|^2 + W2^2(centred μ, centred ν) for any two measures."""
    x, y = rng(0).standard_normal((3, 150, 2)), rng(1).standard_normal((3, 120, 2))
    m = np.array([1.5, -0.5])
    base, shifted = transport.w2_empirical(x, y) ** 2, transport.w2_empirical(x, y + m) ** 2
    gap = x.mean(1) - y.mean(1)
    expected = ((gap - m) ** 2).sum(-1) - (gap**2).sum(-1)
    np.testing.assert_allclose(shifted - base, expected, atol=1e-8)
    # and by the triangle inequality |W2(x, y + m) - |m|| <= W2(x, y), which shrinks with n
    assert np.all(np.abs(np.sqrt(shifted) - np.linalg.norm(m)) <= np.sqrt(base) + 1e-9)


def test_w2_in_one_dimension_is_the_sorted_matching():
    x, y = rng(0).normal(0, 1, (4, 80, 1)), rng(1).normal(1, 2, (4, 80, 1))
    exact = np.sqrt(((np.sort(x, 1) - np.sort(y, 1)) ** 2).mean((1, 2)))
    np.testing.assert_allclose(transport.w2_empirical(x, y), exact, rtol=1e-9)


def test_w2_subsample_takes_the_first_points_or_a_seeded_draw():
    x, y = rng(0).standard_normal((2, 90, 2)), rng(1).standard_normal((2, 70, 2))
    capped = transport.w2_empirical(x, y, max_points=40)
    np.testing.assert_allclose(capped, transport.w2_empirical(x[:, :40], y[:, :40]))
    drawn = transport.w2_empirical(x, y, max_points=40, rng=rng(5))
    np.testing.assert_array_equal(drawn, transport.w2_empirical(x, y, max_points=40, rng=rng(5)))
    assert not np.allclose(drawn, capped)


@pytest.mark.parametrize("m", [60, 45])
def test_sliced_w2_in_one_dimension_is_exact_w2(m):
    x, y = rng(0).normal(0, 1, (3, 60, 1)), rng(1).exponential(1, (3, m, 1))
    exact = np.array(
        [
            ot.emd2(np.full(60, 1 / 60), np.full(m, 1 / m), ot.dist(x[r], y[r]), numItermax=10**7)
            for r in range(3)
        ]
    )
    np.testing.assert_allclose(transport.sliced_w2(x, y, 7, rng()), np.sqrt(exact), rtol=1e-9)


def test_sliced_w2_of_a_shift_averages_the_projected_shift():
    """Projected on θ a shift by m moves every point by θ·m, so W2^2(θ) = (θ·m)^2, whose mean over
    uniform directions in 2-D is |m|^2 / 2 with standard deviation |m|^2 / sqrt(8)."""
    p = 4000
    x = rng(0).standard_normal((2, 100, 2))
    m = np.array([1.0, 2.0])
    sq = transport.sliced_w2(x, x + m, p, rng(1)) ** 2
    m2 = (m**2).sum()
    assert np.all(np.abs(sq - m2 / 2) <= Z * m2 / np.sqrt(8 * p))


def test_sliced_w2_chunking_does_not_change_the_result(monkeypatch):
    x, y = rng(0).standard_normal((3, 50, 3)), rng(1).standard_normal((3, 40, 3))
    whole = transport.sliced_w2(x, y, 64, rng(2))
    monkeypatch.setattr(transport, "CHUNK_ELEMENTS", 1000)
    np.testing.assert_allclose(transport.sliced_w2(x, y, 64, rng(2)), whole, rtol=1e-12)


def test_w2_and_sliced_w2_groups_on_a_mixture():
    source = make("eight_gaussians")
    ctx = context(SourceModel(source, 2), source, 2, 200)
    w2 = group("w2", ctx)
    np.testing.assert_allclose(w2["w2"], transport.w2_empirical(ctx.samples, ctx.test))
    out = group("sliced_w2", ctx)
    assert set(out) == {"sliced_w2"} and out["sliced_w2"].shape == (2,)
    again = group("sliced_w2", context(SourceModel(source, 2), source, 2, 200))
    np.testing.assert_array_equal(out["sliced_w2"], again["sliced_w2"])


# --- MMD and energy distance ------------------------------------------------------------------


def rbf_mean(h: float, var: float, shift: float, d: int) -> float:
    """E exp(-|Z|^2 / (2 h^2)) for Z ~ N(shift e_1, var I_d)."""
    s = h**2 + var
    return (h**2 / s) ** (d / 2) * np.exp(-(shift**2) / (2 * s))


@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_mmd_matches_its_closed_form_for_gaussians(shift):
    r, n, d, sigma, h = 300, 60, 2, 1.0, 0.8
    x = sigma * rng(0).standard_normal((r, n, d))
    y = sigma * rng(1).standard_normal((r, n + 20, d))
    y[..., 0] += shift
    expected = 2 * rbf_mean(h, 2 * sigma**2, 0, d) - 2 * rbf_mean(h, 2 * sigma**2, shift, d)
    assert z_ok(sm.mmd_rbf(x, y, bandwidth=h), expected)


def test_mmd_group_is_null_for_the_truth_and_positive_for_a_shift():
    source = make("eight_gaussians", std=0.3)
    same = group("mmd", context(SourceModel(source, 200), source, 200, 80))["mmd"]
    assert z_ok(same, 0.0)
    shifted = make("eight_gaussians", std=0.3, radius=2.3)
    ctx = context(SourceModel(shifted, 200), source, 200, 80)
    far = group("mmd", ctx)["mmd"]
    assert far.mean() > Z * far.std(ddof=1) / np.sqrt(len(far))
    np.testing.assert_allclose(
        sm.median_bandwidth(ctx.test[:1])[0] ** 2,
        np.median(
            ((ctx.test[0, :, None] - ctx.test[0, None]) ** 2).sum(-1)[np.triu_indices(80, 1)]
        ),
    )


@pytest.mark.parametrize("shift", [0.0, 1.2])
def test_energy_distance_matches_its_closed_form_for_gaussians(shift):
    """X - Y ~ N(Δ, 2σ² I) in 2-D, so |X - Y| is Rice distributed with b = |Δ| / (√2 σ)."""
    r, n, sigma = 300, 60, 0.5
    x = sigma * rng(0).standard_normal((r, n, 2))
    y = sigma * rng(1).standard_normal((r, n + 20, 2))
    y[..., 1] += shift
    scale = np.sqrt(2) * sigma
    expected = 2 * rice.mean(shift / scale, scale=scale) - 2 * rice.mean(0, scale=scale)
    assert z_ok(sm.energy_distance(x, y), expected)


def test_energy_distance_is_invariant_under_rigid_motions():
    x, y = rng(0).standard_normal((2, 40, 2)), rng(1).standard_normal((2, 30, 2)) + 1
    a = 0.7
    q = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = sm.energy_distance(x @ q + 3.0, y @ q + 3.0)
    np.testing.assert_allclose(moved, sm.energy_distance(x, y), rtol=1e-9)
    out = group("energy", context(SourceModel(make("rings"), 2), make("rings"), 2, 50))
    assert set(out) == {"energy_distance"}


def test_batching_over_replicates_does_not_change_values(monkeypatch):
    source = make("two_moons")
    ctx = context(SourceModel(source, 4), source, 4, 30)
    whole = {k: v for name in ("mmd", "prd") for k, v in group(name, ctx).items()}
    monkeypatch.setattr(sm, "CHUNK_ELEMENTS", 1)
    for name in ("mmd", "prd"):
        for key, value in group(name, ctx).items():
            np.testing.assert_allclose(value, whole[key], rtol=1e-12)


# --- modes ------------------------------------------------------------------------------------


def test_modes_of_the_truth_itself():
    """Truth samples: all modes covered, mass_j ≈ w_j (modes 1.5 apart, std 0.1: no misassignment)
    and high quality ≈ P(χ_2 <= 3) = 1 - exp(-9/2)."""
    source = make("eight_gaussians", std=0.1, weights=[1, 2, 3, 4, 4, 3, 2, 1])
    r, n = 50, 2000
    out = group("modes", context(SourceModel(source, r), source, r, n))
    np.testing.assert_array_equal(out["modes_covered"], 8)
    total = r * n
    for j, w in enumerate(source.mode_weights):
        assert abs(out[f"mass_{j}"].mean() - w) <= Z * np.sqrt(w * (1 - w) / total)
    p = 1 - np.exp(-4.5)
    assert abs(out["high_quality"].mean() - p) <= Z * np.sqrt(p * (1 - p) / total)


def test_modes_of_collapsed_and_off_mode_samples():
    source = make("eight_gaussians", std=0.1)
    one = source.modes[3] + 0.1 * rng().standard_normal((2, 500, 2))
    out = sm.mode_stats(one, source.modes, source.mode_std, source.mode_weights)
    np.testing.assert_array_equal(out["modes_covered"], 1)
    np.testing.assert_array_equal(out["mass_3"], 1)
    between = np.zeros((2, 500, 2))
    out = sm.mode_stats(between, source.modes, source.mode_std, source.mode_weights)
    np.testing.assert_array_equal(out["modes_covered"], 0)
    np.testing.assert_array_equal(out["high_quality"], 0)


@pytest.mark.parametrize("name", ["modes", "nll"])
def test_modes_and_nll_are_refused_where_they_do_not_apply(name):
    from selfconsume.plan import resolve

    raw = {
        "name": "x",
        "data": {"kind": "two_moons", "n_real": 20},
        "model": {"kind": "ddpm", "params": {"train_steps": 1}},
        "metrics": [name],
    }
    with pytest.raises(ConfigError, match=f"metrics: {name} needs .*data.kind 'two_moons'.*ddpm"):
        resolve(raw)


# --- k-NN precision / recall, density / coverage ----------------------------------------------


def brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Loop-by-loop definitions of the four k-NN metrics for one replicate."""

    def radius(points, i):
        d = sorted(np.linalg.norm(points - points[i], axis=1))
        return d[k]  # d[0] = 0 is the point itself

    rr = [radius(real, i) for i in range(len(real))]
    rf = [radius(fake, j) for j in range(len(fake))]
    dist = np.linalg.norm(real[:, None] - fake[None], axis=-1)
    inside = np.array([[dist[i, j] <= rr[i] for j in range(len(fake))] for i in range(len(real))])
    return {
        "precision": np.mean([inside[:, j].any() for j in range(len(fake))]),
        "recall": np.mean(
            [any(dist[i, j] <= rf[j] for j in range(len(fake))) for i in range(len(real))]
        ),
        "density": inside.sum() / (k * len(fake)),
        "coverage": np.mean([inside[i].any() for i in range(len(real))]),
    }


def test_knn_metrics_match_their_definitions():
    real, fake = rng(0).standard_normal((2, 40, 2)), rng(1).standard_normal((2, 30, 2)) + 0.5
    got = sm.precision_recall(real, fake) | sm.density_coverage(real, fake)
    for r in range(2):
        for key, value in brute_force(real[r], fake[r], 5).items():
            assert got[key][r] == pytest.approx(value), key


def test_knn_metrics_of_a_set_with_itself_are_one():
    x = rng().standard_normal((2, 50, 2))
    out = sm.precision_recall(x, x)
    np.testing.assert_array_equal(out["precision"], 1)
    np.testing.assert_array_equal(out["recall"], 1)
    np.testing.assert_array_equal(sm.density_coverage(x, x)["coverage"], 1)


def test_density_and_coverage_of_the_truth_match_naeem_et_al():
    """Same distribution: E[density] = 1 and E[coverage] = 1 - Π_{i<=k} (N - i) / (N + M - i)."""
    source = make("eight_gaussians", std=0.3)
    r, n, k = 200, 150, 5
    out = group("density_coverage", context(SourceModel(source, r), source, r, n))
    assert z_ok(out["density"], 1.0)
    expected = 1 - np.prod([(n - i) / (2 * n - i) for i in range(1, k + 1)])
    assert z_ok(out["coverage"], expected)


def test_precision_recall_of_a_collapsed_model():
    """A model stuck on mode 0 has the truth's own precision (its samples lie where the truth's do)
    and recall at most the test set's share of mode 0."""
    source = make("eight_gaussians", std=0.1)
    r, n = 60, 400
    truth = group("prd", context(SourceModel(source, r), source, r, n))
    collapsed = make("eight_gaussians", std=0.1, weights=[1] + [1e-12] * 7)
    out = group("prd", context(SourceModel(collapsed, r), source, r, n))
    se = np.hypot(truth["precision"].std(ddof=1), out["precision"].std(ddof=1)) / np.sqrt(r)
    assert abs(out["precision"].mean() - truth["precision"].mean()) <= Z * se
    assert np.all(truth["recall"] > out["recall"])
    w = 1 / 8
    assert out["recall"].mean() <= w + Z * np.sqrt(w * (1 - w) / (r * n))


def test_knn_metrics_need_more_than_k_points():
    source = make("two_moons")
    with pytest.raises(ConfigError, match="prd needs data.n_test >= 6"):
        group("prd", context(SourceModel(source, 2), source, 2, 5))


# --- likelihoods ------------------------------------------------------------------------------


def test_nll_of_the_true_gaussian_is_its_entropy():
    """-log N(x; 0, σ² I) = (d/2) log(2πσ²) + χ²_d / 2, whose mean is the entropy."""
    r, n, d, sigma = 100, 200, 2, 1.5
    source = make("gaussian", dim=d, std=sigma)
    model = GaussianModel(GaussianModelParams(), dim=d, replicates=r, streams=Streams(0))
    model.cov = np.broadcast_to(sigma**2 * np.eye(d), (r, d, d)).copy()
    out = group("nll", context(model, source, r, n))
    entropy = d / 2 * np.log(2 * np.pi * np.e * sigma**2)
    assert z_ok(out["nll_test"], entropy) and z_ok(out["nll_samples_truth"], entropy)


def test_nll_samples_truth_is_infinite_off_the_checkerboard():
    board = make("checkerboard")
    model = SourceModel(make("gaussian", dim=2, std=3.0), 2)
    out = group("nll", context(model, board, 2, 100))
    np.testing.assert_array_equal(out["nll_samples_truth"], np.inf)


# --- through the run loop ---------------------------------------------------------------------


def test_every_group_runs_in_the_loop_on_2d_data(store_path, tmp_path):
    from helpers import metric, run_raw

    points = tmp_path / "pts.npy"
    np.save(points, make("two_moons").sample(1, 300, rng())[0])
    groups = ["w2", "sliced_w2", "mmd", "energy", "modes", "prd", "density_coverage", "nll"]
    common = {"w2", "sliced_w2", "mmd", "energy_distance", "precision", "recall", "density"}
    common |= {"coverage", "nll_test"}
    mixture = {"modes_covered", "high_quality", "mass_0", "mass_7", "nll_samples_truth"}
    for data, extra, metrics in [
        ({"kind": "eight_gaussians", "params": {"std": 0.2}}, mixture, groups),
        (
            {"kind": "file", "params": {"path": str(points), "dim": 2}},
            set(),
            groups[:4] + groups[5:],
        ),
    ]:
        raw = {
            "name": f"loop-{data['kind']}",
            "replicates": 3,
            "generations": 2,
            "data": {**data, "n_real": 50, "n_test": 60},
            "model": {"kind": "gaussian"},
            "scheme": {"kind": "replace"},
            "metrics": metrics,
        }
        store, (run_id,) = run_raw(raw, store_path)
        stored = {m for _, m, _ in store.metric_arrays(run_id)}
        assert common | extra <= stored and not (mixture - extra) & stored
        assert metric(store, run_id, "mmd").shape == (3, 3)
