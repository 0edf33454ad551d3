"""Sampling bias psi (Alemohammad et al., ICLR 2024) in every family: what each one scales, the
Gaussian closed form E[sigma_t] = alpha(n)^(t+1) psi^t sigma against the run loop at tolerances
from the exact Monte Carlo standard error, the exact population updates, psi = 1 leaving sampling
untouched, and psi <= 0 refused at the command line."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest
import torch
from helpers import metric, run_raw
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.flat import flat_scheme
from selfconsume.models.base import MODELS, tempered
from selfconsume.models.torch_batched import draws, generators_from
from selfconsume.plan import resolve
from selfconsume.report.base import t_interval
from selfconsume.report.html import load_experiments
from selfconsume.report.labels import scheme_label
from selfconsume.report.sampling_bias import psi_of
from selfconsume.report.warmup import warmup_theory
from selfconsume.seeding import ARM_BLOCKS, Streams, arm_key
from selfconsume.store.reader import StoreReader
from selfconsume.theory import gaussian as theory

Z = 4.0  # z-score bound of each check (a handful per test: false alarms ~1e-4 each)
PSI = 0.7
CHEAP_NET = {"hidden": 8, "depth": 1, "train_steps": 2, "batch_size": 8}
DEEP = {"ddpm": {**CHEAP_NET, "n_steps": 10, "sampler": "ddim"}, "flow": CHEAP_NET}
"""Untrained deep families whose sampler is linear in its initial noise with a zero network."""


def family(kind: str, replicates: int = 1, dim: int = 2, **params):
    return MODELS.make(kind, params, dim=dim, replicates=replicates, streams=Streams(0))


def rng(seed: int = 5) -> np.random.Generator:
    return Streams(seed).per_replicate("test", 1)


def biased_warmup(n: int, psi: float, generations: int, replicates: int, **extra) -> dict:
    return {
        "name": "psi",
        "seed": 2,
        "replicates": replicates,
        "generations": generations,
        "data": {"kind": "gaussian", "n_real": n, "n_test": 2, "params": {"std": 2.0}},
        "model": {"kind": "gaussian", "params": {"psi": psi}, **extra},
        "scheme": {"kind": "replace"},
        "metrics": ["gaussian_params"],
    }


def test_gaussian_sigma_matches_the_biased_closed_form(store_path):
    # sigma_t is a product of t+1 independent chi factors: its exact variance E[s^2] - E[s]^2 gives
    # the standard error. The alternatives a wrong sampler would follow (psi on the variance, or on
    # generation 0 too) must be rejected by the same data, else the test could not fail.
    n, reps, sigma = 10, 20000, 2.0
    store, (rid,) = run_raw(biased_warmup(n, PSI, 6, reps), store_path)
    std = metric(store, rid, "std")
    for t in (0, 1, 3, 6):
        mean = theory.expected_sigma(t, n, sigma, psi=PSI)
        se = np.sqrt((theory.expected_variance(t, n, sigma, psi=PSI) - mean**2) / reps)
        assert abs(std[t].mean() - mean) / se < Z, t
        if t >= 1:
            on_variance = theory.expected_sigma(t, n, sigma, psi=np.sqrt(PSI))
            shifted = mean * PSI  # psi^(t+1): generation 0 biased too
            assert abs(std[t].mean() - on_variance) / se > 3 * Z
            assert abs(std[t].mean() - shifted) / se > 3 * Z
    assert theory.expected_sigma(3, n, sigma, psi=1.0) == theory.expected_sigma(3, n, sigma)


def test_gaussian_population_replace_shrinks_sigma_by_psi_exactly(store_path):
    store, (rid,) = run_raw(biased_warmup(10, PSI, 4, 2, population=True), store_path)
    std = metric(store, rid, "std")
    np.testing.assert_allclose(std, 2.0 * PSI ** np.arange(5)[:, None] * np.ones((1, 2)))


def test_gaussian_population_mix_mixes_with_the_sampled_distribution():
    model = family("gaussian", replicates=1, dim=1, psi=PSI)
    model.mean, model.cov = np.array([[0.5]]), np.array([[[3.0]]])

    class Truth:
        def moments(self):
            return np.zeros(1), np.eye(1)

    model.population_step(np.zeros((1, 4, 1)), 0.5, None, Truth())
    mean, var = theory.population_mix_step(0.5, PSI**2 * 3.0, 0.0, 1.0, 0.5)
    np.testing.assert_allclose([model.mean[0, 0], model.cov[0, 0, 0]], [mean, var])


def test_tempered_weights_are_p_to_the_one_over_psi_and_stable():
    w = np.array([[0.7, 0.3, 0.0], [1e-300, 1.0, 1e-300]])
    out = tempered(w, 0.1)
    expected = np.array([0.7**10, 0.3**10, 0.0]) / (0.7**10 + 0.3**10)
    np.testing.assert_allclose(out[0], expected)
    assert np.all(np.isfinite(out)) and out[1, 1] == 1.0
    assert tempered(w, 1.0) is w  # psi = 1 draws exactly what was drawn before psi existed


def test_discrete_samples_and_population_follow_tempered_probabilities():
    p = np.array([0.5, 0.3, 0.2])
    q = p ** (1 / PSI) / (p ** (1 / PSI)).sum()
    model = family("discrete", dim=1, psi=PSI, states=3)
    model.probs = p[None].copy()
    m = 40000
    freq = np.bincount(model.sample(m, rng(), 1)[0, :, 0], minlength=3) / m
    assert np.all(np.abs(freq - q) / np.sqrt(q * (1 - q) / m) < Z)
    assert abs(freq[0] - p[0]) / np.sqrt(p[0] * (1 - p[0]) / m) > 3 * Z  # untempered: rejected

    class Truth:
        n_states = 3
        probs = p

    model.population_start(np.zeros((1, 1, 1), dtype=np.int64), Truth())
    model.population_step(np.zeros((1, 1, 1), dtype=np.int64), None, None, Truth())
    model.population_step(np.zeros((1, 1, 1), dtype=np.int64), None, None, Truth())
    twice = p ** (1 / PSI**2) / (p ** (1 / PSI**2)).sum()  # replace: p_t ∝ p_0^(psi^-t)
    np.testing.assert_allclose(model.probs[0], twice)


def test_gmm_tempers_the_weights_and_not_the_components():
    model = family("gmm", dim=1, psi=PSI, n_components=2)
    model.weights = np.array([[0.7, 0.3]])
    model.means = np.array([[[-50.0], [50.0]]])
    m = 40000
    x = model.sample(m, rng(), 1)[0, :, 0]
    q = 0.7 ** (1 / PSI) / (0.7 ** (1 / PSI) + 0.3 ** (1 / PSI))
    left = x < 0
    assert abs(left.mean() - q) / np.sqrt(q * (1 - q) / m) < Z
    # component noise stays N(0, 1): the sample variance's SE is about sqrt(2 / m)
    assert abs(x[left].var(ddof=1) - 1.0) / np.sqrt(2 / left.sum()) < Z


def test_kde_scales_its_kernel_noise_by_psi():
    model = family("kde", dim=1, psi=PSI, bandwidth=0.5)
    model.fit(np.zeros((1, 1, 1)), None, 0, False)
    m = 40000
    x = model.sample(m, rng(), 1)[0, :, 0]
    var = (PSI * 0.5) ** 2
    assert abs(x.var(ddof=1) - var) / (var * np.sqrt(2 / m)) < Z


@pytest.mark.parametrize("kind", ["ddpm", "flow"])
def test_deep_families_start_sampling_from_noise_times_psi(kind):
    # with a zero network both samplers are linear in their initial noise (DDIM; the flow's ODE
    # stands still), so psi must scale the output about the normalisation's centre exactly
    x = np.random.default_rng(0).normal(size=(2, 32, 2))
    models = {psi: family(kind, 2, 2, psi=psi, **DEEP[kind]) for psi in (1.0, 0.5)}
    for model in models.values():
        model.fit(x, None, 0, False)
    zero = lambda z, t: torch.zeros_like(z)  # noqa: E731
    out = {psi: m.sample(16, rng(), 1, net=zero) for psi, m in models.items()}
    centre = models[1.0].net.denormalise(torch.zeros(2, 1, 2))
    np.testing.assert_allclose(out[0.5] - centre, 0.5 * (out[1.0] - centre), rtol=1e-5, atol=1e-6)
    if kind == "flow":  # psi = 1 is the raw noise, bit for bit
        noise = next(draws(generators_from(rng(), 2), 1, (0,), (16, 2), "cpu"))[1]
        np.testing.assert_array_equal(out[1.0], models[1.0].net.denormalise(noise))


@pytest.mark.parametrize("kind", MODELS.names())
def test_every_family_takes_psi_and_psi_one_is_the_default(kind):
    base = {"name": "id", "data": {"kind": "eight_gaussians", "n_real": 10}}
    if kind == "discrete":
        base["data"] = {"kind": "discrete", "n_real": 10, "params": {"probs": [0.5, 0.5]}}
    if "data" in MODELS.get(kind).example.config:  # a family that needs its own data (ngram: text)
        base["data"] = {"n_real": 10, **MODELS.get(kind).example.config["data"]}
    ids = [
        resolve({**base, "model": {"kind": kind, "params": params}}).run_id
        for params in ({}, {"psi": 1.0}, {"psi": 0.5})
    ]
    assert ids[0] == ids[1] != ids[2]


def test_psi_one_keeps_the_identity_runs_had_before_psi_and_is_stored():
    cfg = resolve(
        {"name": "id", "data": {"kind": "gaussian", "n_real": 10}, "model": {"kind": "gaussian"}}
    )
    stored = cfg.model_dump(mode="json", exclude={"sweep", "quick", "description"})
    assert stored["model"]["params"]["psi"] == 1.0  # the resolved config names it
    for name in type(cfg.model.params).LATER:  # what a config resolved before psi existed held
        del stored["model"]["params"][name]
    stored["scheme"] = flat_scheme(stored["scheme"])  # and its scheme block was flat
    text = json.dumps(stored, sort_keys=True, separators=(",", ":"))
    assert cfg.run_id == hashlib.sha1(text.encode()).hexdigest()[:12]
    blocks = {k: stored[k] for k in ARM_BLOCKS if k in stored}  # no cures: no key
    key = hashlib.sha256(json.dumps(blocks, sort_keys=True, separators=(",", ":")).encode())
    assert arm_key(cfg) == int.from_bytes(key.digest()[:8], "little")


def test_gaussian_psi_one_samples_the_fitted_model_bit_for_bit():
    model = family("gaussian", replicates=3, dim=2)
    model.fit(np.random.default_rng(1).normal(size=(3, 20, 2)), None, 0, False)
    z = rng().standard_normal((3, 50, 2))
    expected = np.matmul(z, np.linalg.cholesky(model.cov).transpose(0, 2, 1))
    np.testing.assert_array_equal(model.sample(50, rng(), 1), expected + model.mean[:, None, :])


@pytest.mark.parametrize("value", ["0", "-0.5"])
def test_cli_refuses_psi_not_positive_and_writes_nothing(tmp_path, value):
    store = tmp_path / "store.sqlite"
    args = ["run", "sampling-bias", "--store", str(store), "--set", f"model.params.psi={value}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "model.params.psi" in lines[0], result.output
    assert not store.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_preset_runs_quick_and_reports_precision_recall_per_psi(tmp_path):
    store = tmp_path / "store.sqlite"
    start = time.process_time()  # CPU seconds of this process (the runs are in it): load-free
    result = CliRunner().invoke(app, ["run", "sampling-bias", "--quick", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert time.process_time() - start < 60
    reader = StoreReader(store)
    (exp,) = load_experiments(reader)
    assert sorted((psi_of(r), scheme_label(r.config)) for r in exp.runs) == sorted(
        (psi, scheme) for psi in (0.6, 0.8, 1.0) for scheme in ("fully synthetic", "λ = 0.5")
    )
    for run in exp.runs:
        assert run.metrics["precision"].shape == (9, 3) and run.metrics["recall"].shape == (9, 3)
    out = tmp_path / "report"
    assert (
        CliRunner().invoke(app, ["report", "--store", str(store), "--out", str(out)]).exit_code == 0
    )
    assert (out / "sampling-bias-psi.png").exists()


def test_t_interval_is_students():
    values = np.array([[1.0, 2.0, 3.0]])
    mean, half = t_interval(values)
    assert mean[0] == 2.0 and half[0] == pytest.approx(4.302653 * 1.0 / np.sqrt(3), rel=1e-6)


def test_warmup_report_overlays_the_biased_closed_form(store_path):
    raw = {**biased_warmup(10, PSI, 5, 4000), "sweep": {"model.params.psi": [1.0, PSI]}}
    run_raw(raw, store_path)
    (exp,) = load_experiments(StoreReader(store_path))
    rows = [r for r in warmup_theory(exp) if r.quantity == "E[σ_t]"]
    assert len(rows) == 6 and all(abs(r.z) < Z for r in rows)
    assert {round(r.theory, 12) for r in rows if r.generation == 5} == {
        round(float(theory.expected_sigma(5, 10, 2.0, psi=p)), 12) for p in (1.0, PSI)
    }
