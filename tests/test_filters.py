"""Reward-free curation (discriminator, likelihood): known answers on points and on digits, bad
input, the presets."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import keep, metric, run_raw
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.config import CurationConfig
from selfconsume.data.base import DATA
from selfconsume.loop.run import run_config
from selfconsume.loop.selection import build_selection
from selfconsume.plan import load, resolve
from selfconsume.report.html import load_experiments
from selfconsume.rewards.base import build_reward
from selfconsume.seeding import Streams
from selfconsume.store.reader import StoreReader
from selfconsume.store.sqlite import Store

R = 3


def RNG() -> np.random.Generator:  # noqa: N802  (a fixed generator, as a constant reads)
    return np.random.default_rng(0)


def scorer(kind: str, real: np.ndarray, source: object = None, **params):
    filt = build_selection(kind, params, source)
    return filt.scorer(real, Streams(0).per_replicate("filter", 1))


def keep_top(
    kind: str, real: np.ndarray, cand: np.ndarray, n: int, source: object = None
) -> np.ndarray:
    """The n candidates (R, m, d) a filter keeps by top_fraction, through `curate`."""
    fraction = n / cand.shape[1]
    score = scorer(kind, real, source)
    x, _ = keep(lambda m: cand[:, :m], n, "top_fraction", {"fraction": fraction}, score, RNG())
    return x


def test_discriminator_removes_far_away_junk():
    """p_t = fresh real-like points plus 25% junk far from the data: the classifier's logit ranks
    every junk point below the real-like ones, so keeping the top 75% drops all the junk."""
    rng = np.random.default_rng(1)
    real = rng.standard_normal((R, 400, 2))
    good = rng.standard_normal((R, 300, 2))
    junk = 6.0 + 0.3 * rng.standard_normal((R, 100, 2))
    cand = np.concatenate([junk[:, :50], good, junk[:, 50:]], axis=1)
    kept = keep_top("discriminator", real, cand, 300)
    assert np.all(np.linalg.norm(kept, axis=-1) < 5.0)


def test_discriminator_logit_estimates_the_log_density_ratio():
    """Real N(0, I) against p_t = N(0, 4 I) in 2-D: log p_data / p_t = log 4 - 3|x|^2 / 8, which
    the logit must follow (a random score has correlation about 0)."""
    rng = np.random.default_rng(2)
    real = rng.standard_normal((R, 500, 2))
    syn = 2.0 * rng.standard_normal((R, 1000, 2))
    logit = scorer("discriminator", real)(syn)
    truth = np.log(4.0) - 3.0 * (syn**2).sum(-1) / 8.0
    for r in range(R):
        assert np.corrcoef(logit[r], truth[r])[0, 1] > 0.95


def test_likelihood_filter_keeps_the_high_density_points():
    """Real N(0, I); candidates N(0, 4 I). The true density keeps the half with |x|^2 below its
    median (the oracle set); the reference KDE fitted on the real set must keep nearly that set."""
    source = DATA.make("gaussian", {"dim": 2})
    rng = np.random.default_rng(3)
    real = source.sample(R, 2000, rng)
    cand = 2.0 * rng.standard_normal((R, 1000, 2))
    kept = keep_top("likelihood", real, cand, 500)
    oracle = build_reward("log_density", {}, source)(cand)
    threshold = np.sort(oracle, axis=1)[:, 500][:, None]  # the oracle keeps scores above this
    in_oracle_set = build_reward("log_density", {}, source)(kept) > threshold
    assert in_oracle_set.mean() > 0.95


def test_likelihood_reference_is_fitted_once():
    rng = np.random.default_rng(4)
    filt = build_selection("likelihood", {}, None)
    x = rng.standard_normal((R, 10, 2))
    first = filt.scorer(rng.standard_normal((R, 50, 2)), Streams(0).per_replicate("filter", 1))(x)
    later = filt.scorer(rng.standard_normal((R, 50, 2)), Streams(0).per_replicate("filter", 2))(x)
    np.testing.assert_array_equal(first, later)


def kept_rows(kept: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Index (R, n) of each kept image among the candidates (R, m, d) it was copied from."""
    same = np.all(kept[:, :, None, :] == cand[:, None, :, :], axis=-1)
    assert np.all(same.sum(-1) >= 1)
    return same.argmax(-1)


def test_likelihood_filter_on_digits_keeps_real_images_over_noise_and_blur(digits):
    """Candidates: 300 held-out real digits (from p_data), 100 uniform-noise images and 100 real
    digits blurred by a 3x3 box filter (not from p_data). Keeping the top 60% by the reference
    density of the real set's features must keep (nearly) only real digits, where a score blind
    to the images keeps 60% of them (and a Gaussian in 5 components keeps about 70%)."""
    from scipy.ndimage import uniform_filter

    source, rng = digits, np.random.default_rng(5)
    real = source.sample(R, 500, rng)
    test = source.sample_test(R, 300, rng)
    noise = rng.uniform(-1.0, 1.0, (R, 100, 64))
    blur = uniform_filter(test[:, :100].reshape(R, 100, 8, 8), size=(1, 1, 3, 3), mode="nearest")
    cand = np.concatenate([noise[:, :50], blur.reshape(R, 100, 64), test, noise[:, 50:]], axis=1)
    real_rows = np.r_[np.zeros(150), np.ones(300), np.zeros(50)].astype(bool)
    kept = keep_top("likelihood", real, cand, 300, source)
    assert real_rows[kept_rows(kept, cand)].mean() > 0.95


def test_discriminator_on_digits_removes_junk_images(digits):
    """p_t = 300 held-out real digits and 100 junk images (50 of uniform noise, 50 digits blurred
    by a 3x3 box filter). Keeping the top 75% by the logit of the classifier real-vs-candidates
    must drop at least 95% of the junk, where a score blind to the images drops 25%."""
    from scipy.ndimage import uniform_filter

    source, rng = digits, np.random.default_rng(6)
    real = source.sample(R, 500, rng)
    good = source.sample_test(R, 350, rng)
    blur = uniform_filter(good[:, 300:].reshape(R, 50, 8, 8), size=(1, 1, 3, 3), mode="nearest")
    junk = np.concatenate([rng.uniform(-1.0, 1.0, (R, 50, 64)), blur.reshape(R, 50, 64)], axis=1)
    cand = np.concatenate([junk[:, :50], good[:, :300], junk[:, 50:]], axis=1)
    is_junk = np.r_[np.ones(50), np.zeros(300), np.ones(50)].astype(bool)
    kept = keep_top("discriminator", real, cand, 300, source)
    junk_kept = is_junk[kept_rows(kept, cand)].sum(-1)
    assert np.all(junk_kept <= 5), junk_kept


@pytest.mark.parametrize("kind", ["likelihood", "discriminator"])
def test_image_filters_stay_finite_when_the_real_features_are_singular(kind, digits):
    """Six real digits: their 128 features (about half of them dead units) span at most 5
    directions, fewer than the 10 components asked for; the scores are finite all the same."""
    source, rng = digits, np.random.default_rng(7)
    real = source.sample(R, 6, rng)
    cand = source.sample_test(R, 12, rng).reshape(R, 3, 4, 64)
    scores = scorer(kind, real, source)(cand)
    assert scores.shape == (R, 3, 4) and np.all(np.isfinite(scores))


def test_filters_refuse_images_without_labels_naming_the_key(tmp_path):
    """No labels, no classifier, no feature space: one line naming curation.kind, no store."""
    np.savez(tmp_path / "grey.npz", x=np.random.default_rng(0).random((40, 6, 6)))
    path, store = tmp_path / "f.yaml", tmp_path / "s.sqlite"
    path.write_text(CLI_CONFIG)
    data = (
        f"data={{kind: image_file, n_real: 10, n_test: 5, params: {{path: {tmp_path}/grey.npz}}}}"
    )
    args = ["run", str(path), "--store", str(store), "--set", data, "--set", "model.params={}"]
    args += ["--set", "curation.kind=likelihood"]
    result = CliRunner().invoke(app, args)
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "curation.kind" in lines[0], result.output
    assert not store.exists()


def test_oracle_top_half_matches_the_closed_form():
    """Candidates N(0, s^2 I) in 2-D kept by top 50% of the true log density N(0, I): |x|^2 / s^2
    is Exp(mean 2) and the kept half lies below its median 2 ln 2, so
    E[|x|^2 | kept] = s^2 (2 - 2 ln 2); compared at 4 standard errors."""
    source = DATA.make("gaussian", {"dim": 2})
    cand = 2.0 * np.random.default_rng(6).standard_normal((200, 400, 2))
    reward = build_reward("log_density", {}, source)
    kept, _ = keep(lambda m: cand[:, :m], 200, "top_fraction", {}, reward, RNG())
    per_rep = (kept**2).sum(-1).mean(1)
    expected = 4.0 * (2 - 2 * np.log(2))
    se = per_rep.std(ddof=1) / np.sqrt(per_rep.size)
    assert abs(per_rep.mean() - expected) < 4 * se + 0.02 * expected  # + the order-statistic bias


def resolve_curation(curation: dict) -> CurationConfig:
    raw = {
        "name": "c",
        "data": {"kind": "gaussian", "n_real": 10, "params": {"dim": 2}},
        "model": {"kind": "gaussian"},
        "curation": curation,
    }
    return resolve(raw).curation


def test_a_reward_free_kind_resolves_to_its_typed_params_and_rule():
    cur = resolve_curation({"kind": "discriminator"})
    assert cur.params.select.kind == "top_fraction" and cur.params.select.params.fraction == 0.5
    assert cur.params.features > 0 and cur.reward is None
    flat = resolve_curation({"kind": "discriminator", "select": "top_fraction", "params": {}})
    spelled = resolve_curation(
        {"kind": "discriminator", "params": {"select": {"kind": "top_fraction"}}}
    )
    assert flat == cur and spelled == cur


CLI_CONFIG = """
name: filter-cli
replicates: 2
generations: 1
data: {kind: eight_gaussians, n_real: 40, n_test: 40}
model: {kind: kde}
curation: {kind: discriminator}
metrics: [mmd]
"""


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["curation.fraction=1.5"], "curation.params.select.params.fraction"),
        (["curation.fraction=0"], "curation.params.select.params.fraction"),
        (["curation.params.select={kind: threshold, params: {k: 2}}"], "select.params.k"),
        (["curation.params.select={kind: likelihood}"], "curation.params.select.kind"),
        (["curation.reward={kind: log_density}"], "curation.reward"),
        (["curation={kind: top_fraction}"], "curation.reward"),
        (
            ["curation={kind: top_fraction, reward: {kind: log_density}, select: top_fraction}"],
            "curation.select",
        ),
        (
            ["curation={kind: top_fraction, reward: {kind: log_density}, params: {l2: 1}}"],
            "curation.params",
        ),
        (["curation.params.features=0"], "curation.params.features"),
        (["curation.params.colour=1"], "curation.params.colour"),
        (["curation.select=best"], "curation.select"),
        (["curation.kind=oracle"], "curation.kind"),
        (["metrics=[reward]"], "metrics"),
        (
            [
                "data={kind: discrete, n_real: 20, params: {probs: [0.5, 0.5]}}",
                "model={kind: discrete}",
                "curation.kind=likelihood",
            ],
            "curation.kind",
        ),
        (
            [
                "data={kind: discrete, n_real: 20, params: {probs: [0.5, 0.5]}}",
                "model={kind: discrete, population: true}",
            ],
            "curation.kind",
        ),
        (
            ["data={kind: gaussian, n_real: 20}", "model={kind: gaussian, population: true}"],
            "curation.kind",
        ),
    ],
)
def test_bad_filter_input_exits_2_naming_the_key_and_writes_nothing(tmp_path, overrides, needle):
    path, store = tmp_path / "f.yaml", tmp_path / "s.sqlite"
    path.write_text(CLI_CONFIG)
    args = ["run", str(path), "--store", str(store)]
    for item in overrides:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and needle in lines[0], result.output
    assert not store.exists()


def test_filtered_runs_are_deterministic_and_keep_n_synthetic(tmp_path):
    raw = {
        "name": "f",
        "replicates": 2,
        "generations": 2,
        "data": {"kind": "eight_gaussians", "n_real": 60, "n_test": 60},
        "model": {"kind": "kde", "params": {"bandwidth": 0.1}},
        "curation": {"kind": "discriminator", "select": "bradley_terry", "k": 3},
        "metrics": ["mmd"],
    }
    a, (rid,) = run_raw(raw, tmp_path / "a.sqlite")
    b, _ = run_raw(raw, tmp_path / "b.sqlite")
    np.testing.assert_array_equal(metric(a, rid, "mmd"), metric(b, rid, "mmd"))
    assert a.load_checkpoint(rid)[1]["model"]["points"].shape == (2, 60, 2)


@pytest.mark.slow
def test_filtering_preset_runs_at_quick_scale(tmp_path):
    cfgs = load("filtering", quick=True)
    kinds = [None if c.curation is None else c.curation.kind for c in cfgs]
    assert kinds == [None, "discriminator", "likelihood", "bradley_terry"]
    store = Store(tmp_path / "s.sqlite")
    for cfg in cfgs:
        assert run_config(cfg, store).status == "done"
        sw2 = metric(store, cfg.run_id, "sliced_w2")
        assert sw2.shape == (cfg.generations + 1, cfg.replicates) and np.all(np.isfinite(sw2))


def test_arms_that_curate_differently_are_labelled_by_their_curation():
    from helpers import record

    from selfconsume.report.labels import run_labels

    base = {
        "name": "f",
        "data": {"kind": "gaussian", "n_real": 10},
        "model": {"kind": "gaussian"},
        "scheme": {"kind": "replace"},
    }
    curations = [
        None,
        {"kind": "discriminator", "select": "bradley_terry", "k": 4.0},
        {"kind": "bradley_terry", "k": 4.0, "reward": {"kind": "log_density", "params": {}}},
    ]
    records = [record(base | {"curation": c}, i) for i, c in enumerate(curations)]
    assert run_labels(records) == [
        "no curation",
        "discriminator filter",
        "Bradley–Terry on log_density",
    ]


def test_filtering_digits_preset_is_stability_digits_model_fully_synthetic_with_four_arms():
    from selfconsume.config import read_raw

    raw, stability = read_raw("filtering-digits")[0], read_raw("stability-digits")[0]
    assert raw["model"] == stability["model"] and raw["data"] == stability["data"]
    cfgs = load("filtering-digits")
    assert all(c.scheme.kind == "replace" and c.common_random_numbers for c in cfgs)
    curated = [c.curation for c in cfgs[1:]]
    assert cfgs[0].curation is None and [c.kind for c in curated] == [
        "discriminator",
        "likelihood",
        "bradley_terry",
    ]
    rules = [c.params.select if c.reward is None else c for c in curated]
    assert all(r.kind == "bradley_terry" and r.params.k == 4 for r in rules)
    assert curated[2].reward.kind == "classifier_confidence"


@pytest.mark.slow
def test_filtering_digits_preset_runs_quick_and_reports(tmp_path):
    store, out = tmp_path / "s.sqlite", tmp_path / "report"
    result = CliRunner().invoke(app, ["run", "filtering-digits", "--quick", "--store", str(store)])
    assert result.exit_code == 0, result.output
    with StoreReader(store) as reader:
        (exp,) = load_experiments(reader)
    assert sorted(run.label for run in exp.runs) == sorted(
        [
            "no curation",
            "discriminator filter",
            "likelihood filter",
            "Bradley–Terry on classifier_confidence",
        ]
    )
    for run in exp.runs:
        assert np.all(np.isfinite(run.metrics["fd"])) and "class_entropy" in run.metrics
    report = CliRunner().invoke(app, ["report", "--store", str(store), "--out", str(out)])
    assert report.exit_code == 0, report.output
    assert (out / "index.html").exists()
