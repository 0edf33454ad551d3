"""Tests of the deep and classical 2-D families: ddpm, flow, gmm, kde."""

from __future__ import annotations

import pickle

import numpy as np
import ot
import pytest
import torch
from scipy.stats import multivariate_normal

from selfconsume.errors import ConfigError
from selfconsume.models.base import MODELS
from selfconsume.seeding import Streams

torch.set_num_threads(1)

SMALL = {"hidden": 64, "depth": 2, "batch_size": 128, "lr": 3e-3, "train_steps": 1500}
CONFIGS = {
    "ddpm": ("ddpm", {**SMALL, "n_steps": 100}),
    "ddpm_ddim": ("ddpm", {**SMALL, "n_steps": 100, "sampler": "ddim", "ddim_steps": 25}),
    "ddpm_v": (
        "ddpm",
        {**SMALL, "n_steps": 1000, "prediction": "v", "train_t": "quadratic", "x_octaves": 4}
        | {"sampler": "ddim", "ddim_steps": 50},
    ),
    "flow": ("flow", {**SMALL, "n_ode_steps": 20}),
    "flow_ot_euler": ("flow", {**SMALL, "coupling": "ot", "sampler": "euler", "n_ode_steps": 40}),
    "gmm": ("gmm", {"n_components": 8}),
    "kde": ("kde", {"bandwidth": "scott"}),
}
TORCH = ["ddpm", "flow"]
ALL = ["ddpm", "flow", "gmm", "kde"]
N_TRAIN, N_EVAL = 2000, 500
RADIUS, MODE_STD = 2.0, 0.1


def build(name: str, replicates: int = 1, seed: int = 0, **override):
    kind, params = CONFIGS[name]
    return MODELS.make(
        kind, {**params, **override}, dim=2, replicates=replicates, streams=Streams(seed)
    )


def eight_gaussians(rng: np.random.Generator, replicates: int, n: int) -> np.ndarray:
    angle = rng.integers(0, 8, (replicates, n)) * np.pi / 4
    centres = RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return centres + MODE_STD * rng.standard_normal((replicates, n, 2))


def w2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(ot.emd2([], [], ot.dist(a, b))))


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(12345)
    return {
        "train": eight_gaussians(rng, 1, N_TRAIN),
        "test": eight_gaussians(rng, 1, N_EVAL)[0],
        "ref": eight_gaussians(rng, 1, N_EVAL)[0],
    }


@pytest.fixture(scope="module")
def w2_bound(data) -> float:
    """Halfway between the sampling-noise floor (two truth samples) and the best Gaussian fit.

    The Gaussian with the truth's moments (mean 0, variance R^2/2 + s^2 per axis) cannot
    separate the modes; a model that learned them must beat it by half the gap."""
    rng = np.random.default_rng(7)
    gauss = np.sqrt(RADIUS**2 / 2 + MODE_STD**2) * rng.standard_normal((N_EVAL, 2))
    floor = w2(data["ref"], data["test"])
    return 0.5 * (floor + w2(gauss, data["test"]))


@pytest.fixture(scope="module")
def trained(data) -> dict[str, object]:
    """Every config fitted once on the 8-Gaussian training set (generation 0, from scratch)."""
    out = {}
    for name in CONFIGS:
        model = build(name)
        model.fit(data["train"], None, 0, False)
        out[name] = model
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_family_learns_eight_gaussians(name, trained, data, w2_bound):
    samples = trained[name].sample(N_EVAL, np.random.default_rng(1), 0)
    assert samples.shape == (1, N_EVAL, 2) and samples.dtype == np.float64
    assert w2(samples[0], data["test"]) < w2_bound


@pytest.mark.parametrize("name", ["ddpm", "flow"])
def test_torch_warm_start_continues_and_cold_reinitialises(name, trained, data, w2_bound):
    state = trained[name].state_dict()
    warm, cold, fresh = (build(name, train_steps=30) for _ in range(3))
    warm.load_state_dict(state)
    cold.load_state_dict(state)
    warm_loss = warm.fit(data["train"], None, 1, True)["loss"]
    cold_loss = cold.fit(data["train"], None, 1, False)["loss"]
    fresh.fit(data["train"], None, 1, False)
    # Same generation: all three fits see identical minibatches and noise, a paired comparison.
    assert warm_loss[0] < cold_loss[0]
    assert w2(warm.sample(N_EVAL, np.random.default_rng(2), 1)[0], data["test"]) < w2_bound
    for a, b in zip(cold.state_dict()["params"], fresh.state_dict()["params"], strict=True):
        assert torch.equal(a, b)


def test_gmm_warm_start_continues_from_previous_components(trained, data):
    previous = trained["gmm"]
    warm = build("gmm", max_iter=1)
    warm.load_state_dict(previous.state_dict())
    warm.fit(data["train"], None, 1, True)
    # One EM step from a converged fit moves each mean by far less than its standard error
    # (mode std / sqrt(points in the component)); a re-initialised fit permutes the components.
    se = MODE_STD / np.sqrt(previous.weights[0] * N_TRAIN)
    assert np.all(np.abs(warm.means[0] - previous.means[0]).max(axis=-1) < se)
    cold = build("gmm", max_iter=1)
    cold.load_state_dict(previous.state_dict())
    cold.fit(data["train"], None, 1, False)
    fresh = build("gmm", max_iter=1)
    fresh.fit(data["train"], None, 1, False)
    np.testing.assert_array_equal(cold.means, fresh.means)


def test_kde_ignores_warm_start(data):
    a, b = build("kde"), build("kde")
    a.fit(data["train"], None, 0, True)
    b.fit(data["train"], None, 0, False)
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[key])


def _assert_state_equal(a: object, b: object) -> None:
    """Recursive exact equality of states (tensors, arrays, containers, scalars)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_state_equal(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            _assert_state_equal(u, v)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_resumes_exactly(name, data):
    short = {"train_steps": 40} if name in TORCH else {}
    a = build(name, replicates=2, **short)
    a.fit(np.repeat(data["train"][:, :400], 2, axis=0), None, 0, False)
    b = build(name, replicates=2, **short)
    b.load_state_dict(pickle.loads(pickle.dumps(a.state_dict())))
    np.testing.assert_array_equal(
        a.sample(200, np.random.default_rng(5), 0), b.sample(200, np.random.default_rng(5), 0)
    )
    # Resuming must continue training exactly: optimiser moments and EMA travel in the state.
    x = eight_gaussians(np.random.default_rng(3), 2, 400)
    a.fit(x, None, 1, True)
    b.fit(x, None, 1, True)
    _assert_state_equal(a.state_dict(), b.state_dict())


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_numbers_other_seed_differs(name, data):
    short = {"train_steps": 40} if name in TORCH else {}
    x = data["train"][:, :400]

    def run(seed: int) -> np.ndarray:
        model = build(name, seed=seed, **short)
        model.fit(x, None, 0, False)
        return model.sample(100, np.random.default_rng(seed), 0)

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


@pytest.mark.parametrize("name", ["ddpm", "flow_ot_euler", "ddpm_ddim"])
def test_batched_replicate_equals_replicate_trained_alone(name):
    x = eight_gaussians(np.random.default_rng(4), 3, 300)
    weights = np.random.default_rng(5).integers(0, 2, (3, 300)).astype(float)
    # A small grad_clip makes clipping act, so it must be per replicate for the equality to hold.
    short = {"train_steps": 40, "grad_clip": 0.05}
    batched, alone = build(name, replicates=3, **short), build(name, **short)
    loss_batched = batched.fit(x, weights, 0, False)["loss"]
    loss_alone = alone.fit(x[:1], weights[:1], 0, False)["loss"]
    assert loss_batched[0] == loss_alone[0]
    for a, b in zip(batched.state_dict()["ema"], alone.state_dict()["ema"], strict=True):
        assert torch.equal(a[:1], b)
    s_batched = batched.sample(50, np.random.default_rng(6), 0)
    np.testing.assert_array_equal(s_batched[:1], alone.sample(50, np.random.default_rng(6), 0))
    assert not np.array_equal(s_batched[0], s_batched[1])


@pytest.mark.parametrize("name", ["gmm", "kde"])
def test_classical_replicate_fit_equals_fit_alone(name):
    x = eight_gaussians(np.random.default_rng(4), 3, 300)
    batched, alone = build(name, replicates=3), build(name)
    batched.fit(x, None, 0, False)
    alone.fit(x[:1], None, 0, False)
    for key, value in alone.state_dict().items():
        np.testing.assert_array_equal(batched.state_dict()[key][:1], value)


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("ddpm", {"train_steps": -1}),
        ("ddpm", {"n_steps": 0}),
        ("ddpm", {"ddim_steps": 20, "n_steps": 10}),
        ("ddpm", {"schedule": "quadratic"}),
        ("ddpm", {"lr": -1.0}),
        ("ddpm", {"unknown": 1}),
        ("flow", {"n_ode_steps": -3}),
        ("flow", {"coupling": "sinkhorn"}),
        ("flow", {"time_dim": 15}),
        ("gmm", {"n_components": 0}),
        ("gmm", {"max_iter": -1}),
        ("gmm", {"covariance_type": "banded"}),
        ("kde", {"bandwidth": -0.5}),
        ("kde", {"bandwidth": "wide"}),
    ],
)
def test_bad_params_are_config_errors(kind, params):
    with pytest.raises(ConfigError, match=f"model.params.{next(iter(params))}"):
        MODELS.parse_params(kind, params, "model.params")


@pytest.mark.parametrize("name", ["ddpm", "flow"])
def test_divergence_is_a_non_finite_loss_not_an_exception(name, data):
    model = build(name, replicates=2, train_steps=20, lr=1e30)
    loss = model.fit(np.repeat(data["train"][:, :300], 2, axis=0), None, 0, False)["loss"]
    assert loss.shape == (2,) and not np.any(np.isfinite(loss))


@pytest.mark.parametrize("name", ALL)
def test_zero_weight_samples_are_ignored(name):
    """A set padded with far-away points of weight 0 trains a model that never samples near them."""
    rng = np.random.default_rng(8)
    x = eight_gaussians(rng, 1, 1000)
    junk = 50.0 + rng.standard_normal((1, 1000, 2))
    w = np.concatenate([np.ones((1, 1000)), np.zeros((1, 1000))], axis=1)
    short = {"train_steps": 300} if name in TORCH else {}
    model = build(name, **short)
    model.fit(np.concatenate([x, junk], axis=1), w, 0, False)
    samples = model.sample(1000, np.random.default_rng(9), 0)[0]
    # Any weight on the junk would put points near (50, 50): all samples stay within the data range.
    assert np.abs(samples).max() < 10 * RADIUS


@pytest.mark.parametrize("name", ["flow", "gmm", "kde"])
def test_log_prob_matches_truth_on_eight_gaussians(name, trained, data):
    """E_test[log p - log q] estimates KL(p || q) >= 0: it must not be negative beyond 3 standard
    errors, and it must be below the KL of the moment-matched Gaussian (which ignores the modes)."""
    test = data["test"]
    truth = _eight_gaussians_log_prob(test)
    diff = truth - trained[name].log_prob(test[None])[0]
    gauss = multivariate_normal(np.zeros(2), (RADIUS**2 / 2 + MODE_STD**2) * np.eye(2))
    base = truth - gauss.logpdf(test)
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert -3 * se < diff.mean() < base.mean()


def _eight_gaussians_log_prob(x: np.ndarray) -> np.ndarray:
    angle = np.arange(8) * np.pi / 4
    centres = RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    comp = [multivariate_normal(c, MODE_STD**2 * np.eye(2)).logpdf(x) for c in centres]
    return np.logaddexp.reduce(np.stack(comp), axis=0) - np.log(8)


@pytest.fixture(scope="module")
def gaussian_flow():
    """A flow trained on a correlated 2-D Gaussian, with its truth and held-out points."""
    rng = np.random.default_rng(21)
    mean, std, rho = np.array([1.0, -2.0]), np.array([1.0, 2.0]), 0.9
    cov = np.outer(std, std) * np.array([[1.0, rho], [rho, 1.0]])
    chol = np.linalg.cholesky(cov)
    train = mean + rng.standard_normal((1, N_TRAIN, 2)) @ chol.T
    test = mean + rng.standard_normal((1000, 2)) @ chol.T
    model = build("flow", train_steps=1000)
    model.fit(train, None, 0, False)
    return model, mean, cov, chol, test


def test_flow_log_prob_of_a_gaussian_is_close_to_the_truth(gaussian_flow):
    """The gap E_test[log p - log q] must lie within 3 standard errors above zero and below a tenth
    of the gap of the diagonal Gaussian: the fit the flow gives before learning the correlation
    (its normalisation already matches each marginal)."""
    model, mean, cov, _, test = gaussian_flow
    truth = multivariate_normal(mean, cov).logpdf(test)
    diff = truth - model.log_prob(test[None])[0]
    base = truth - multivariate_normal(mean, np.diag(np.diag(cov))).logpdf(test)
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert -3 * se < diff.mean() < base.mean() / 10 + 3 * se


def test_flow_density_integrates_to_one(gaussian_flow):
    """Riemann sum of exp(log_prob) over +-6 std of the truth. The quadrature's own error is that
    on the true density; the ODE's (second order) is estimated by halving the step (Richardson:
    error(h) ~ 4/3 |I(h) - I(h/2)|), allowed twice over."""
    model, mean, cov, chol, _ = gaussian_flow
    grid = np.linspace(-6, 6, 61)
    step = grid[1] - grid[0]
    pts = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2) @ chol.T + mean
    cell = step**2 * np.linalg.det(chol)

    def integral(log_density: np.ndarray) -> float:
        return float(np.exp(log_density).sum() * cell)

    finer = build("flow", n_ode_steps=2 * CONFIGS["flow"][1]["n_ode_steps"])
    finer.load_state_dict(model.state_dict())
    coarse_i = integral(model.log_prob(pts[None])[0])
    fine_i = integral(finer.log_prob(pts[None])[0])
    quadrature = abs(integral(multivariate_normal(mean, cov).logpdf(pts)) - 1.0)
    assert abs(coarse_i - 1.0) < 2 * (4 / 3) * abs(coarse_i - fine_i) + quadrature


@pytest.mark.parametrize("name", TORCH)
def test_finetune_steps_apply_to_warm_fits_only(data, name):
    """A warm fit runs finetune_steps; a cold fit runs train_steps whatever finetune_steps says."""
    x = data["train"][:, :300]
    tuned, plain = build(name, train_steps=25, finetune_steps=7), build(name, train_steps=25)
    tuned.fit(x, None, 0, False)
    plain.fit(x, None, 0, False)
    for a, b in zip(tuned.state_dict()["params"], plain.state_dict()["params"], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    short = build(name, train_steps=7)
    short.load_state_dict(plain.state_dict())
    tuned.fit(x, None, 1, True)
    short.fit(x, None, 1, True)
    for a, b in zip(tuned.state_dict()["params"], short.state_dict()["params"], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert tuned.state_dict()["ema_count"] == 7  # the EMA restarts with every fit
