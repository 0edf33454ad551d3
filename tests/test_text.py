"""The text tier: the Markov language's exact law, the ngram family's fit and sampler, the text
metrics, and Seddik et al.'s law and its mixed analogue (selfconsume.theory.text) against
simulation at tolerances from the Monte Carlo standard error."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import metric, run_raw, z_score
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.data.text import MarkovText, MarkovTextParams, StdlibText, StdlibTextParams
from selfconsume.metrics.text import distinct, support_lost
from selfconsume.models.ngram import NgramModel, NgramParams
from selfconsume.seeding import Streams
from selfconsume.theory import text as theory

Z = 4.5  # z-score bound per check: ~20 checks, a false alarm has probability < 1e-3


def markov(**params) -> MarkovText:
    return MarkovText(MarkovTextParams(**params))


def test_markov_text_log_probs_sum_to_one_over_every_sequence():
    src = markov(vocab=3, order=2, length=4, concentration=0.7)
    every = np.array(list(itertools.product(range(3), repeat=4)))
    assert np.exp(src.log_prob(every)).sum() == pytest.approx(1.0, abs=1e-12)
    short = markov(vocab=3, order=2, length=1)  # L < k: the first token's stationary marginal
    np.testing.assert_allclose(np.exp(short.log_prob(np.arange(3)[:, None])), short.token_probs)


def test_markov_text_samples_follow_its_law_and_entropy():
    src = markov(vocab=5, order=2, length=12)
    x = src.sample(4, 5000, np.random.default_rng(0))
    assert x.shape == (4, 5000, 12) and x.dtype == np.int64
    per_token = -src.log_prob(x).ravel() / 12  # its mean is H(X_1..X_L) / L exactly
    assert z_score(per_token, src.sequence_entropy()) < Z
    for i in (0, 7):  # stationary: every position's marginal is the token law
        hits = (x[..., i].ravel()[:, None] == np.arange(5)).astype(float)
        for w in range(5):
            assert z_score(hits[:, w], src.token_probs[w]) < Z, (i, w)


def fitted(x: np.ndarray, **params) -> NgramModel:
    src = markov(vocab=5, order=1, length=x.shape[-1])
    model = NgramModel(NgramParams(**params), x.shape[-1], x.shape[0], Streams(0), truth=src)
    model.fit(x, None, 0, False)
    return model


def test_ngram_counts_give_add_k_probabilities_and_exact_log_likelihoods():
    x = np.array([[[0, 1, 1], [1, 1, 2]]])
    model = fitted(x, order=2, add_k=0.5)
    # after BOS: 0 once, 1 once; after 1: 1 twice (0 1 1, 1 1 2), 2 once; after 0: 1 once
    bos, one = model.contexts - 1, 1
    np.testing.assert_allclose(model.conditionals[0, bos], (np.array([1, 1, 0, 0, 0]) + 0.5) / 4.5)
    np.testing.assert_allclose(model.conditionals[0, one], (np.array([0, 2, 1, 0, 0]) + 0.5) / 5.5)
    expected = np.log(1.5 / 4.5) + np.log(1.5 / 3.5) + np.log(2.5 / 5.5)  # 0 | BOS, 1 | 0, 1 | 1
    assert model.log_prob(np.array([[[0, 1, 1]]]))[0, 0] == pytest.approx(expected)
    mle = fitted(x, order=2)
    assert mle.log_prob(np.array([[[2, 0, 0]]]))[0, 0] == -np.inf  # 2 never opens a sequence
    np.testing.assert_allclose(
        mle.conditionals[0, 3], [1 / 6, 2 / 3, 1 / 6, 0, 0]
    )  # unseen: backs off


def test_ngram_samples_follow_the_fitted_conditionals():
    x = markov(vocab=5, order=2, length=10).sample(2, 300, np.random.default_rng(1))
    model = fitted(x, order=3)
    y = model.sample(20000, np.random.default_rng(2), 1)
    counts = model.count(y, None)
    total = counts.sum(-1, keepdims=True)
    seen = np.broadcast_to(total > 200, counts.shape)
    p = model.conditionals[seen]
    se = np.sqrt(p * (1 - p) / np.broadcast_to(total, counts.shape)[seen])
    z = np.abs(counts[seen] / np.broadcast_to(total, counts.shape)[seen] - p) / np.maximum(
        se, 1e-12
    )
    assert seen.sum() > 100 and z.max() < 5.5  # ~1,000 cells, each a binomial proportion
    assert np.all(counts[model.conditionals == 0] == 0)  # a zero-probability n-gram is never drawn


def test_temperature_sharpens_the_token_law():
    x = markov(vocab=5, order=0, length=8).sample(1, 200, np.random.default_rng(3))
    base, cold = fitted(x, order=1), fitted(x, order=1, psi=0.5)
    y, z = (m.sample(4000, np.random.default_rng(4), 1) for m in (base, cold))
    top = np.argmax(base.conditionals[0, 0])
    p2 = base.conditionals[0, 0] ** 2 / (base.conditionals[0, 0] ** 2).sum()
    share = (z == top).mean(axis=(1, 2))
    assert abs(share[0] - p2[top]) < 5 * np.sqrt(p2[top] * (1 - p2[top]) / z.size)
    assert share[0] > (y == top).mean()


def test_distinct_n_and_support_lost_count_ngrams_within_sequences():
    samples = np.array([[[0, 1, 0, 1]], [[2, 2, 2, 2]]])
    np.testing.assert_allclose(distinct(samples, 1, 3), [2 / 4, 1 / 4])
    np.testing.assert_allclose(distinct(samples, 2, 3), [2 / 3, 1 / 3])  # 01 10 01; 22 22 22
    real = np.array([[[0, 1, 2, 2]], [[2, 2, 1, 0]]])
    np.testing.assert_allclose(support_lost(real, samples, 1, 3), [1 / 3, 2 / 3])
    np.testing.assert_allclose(support_lost(real, samples, 2, 3), [2 / 3, 2 / 3])


def text_run(scheme: dict, generations: int, replicates: int = 2000, order: int = 1) -> dict:
    return {
        "name": "text",
        "seed": 5,
        "replicates": replicates,
        "generations": generations,
        "data": {
            "kind": "markov_text",
            "n_real": 5,
            "n_test": 20,
            "params": {"vocab": 6, "order": order, "length": 4, "concentration": 0.8},
        },
        "model": {"kind": "ngram", "params": {"order": 1}},
        "scheme": scheme,
        "metrics": ["text"],
    }


def test_replace_follows_seddiks_law_from_generation_zero_on_markov_text(store_path):
    store, (rid,) = run_raw(text_run({"kind": "replace"}, 8), store_path)
    s = metric(store, rid, "collision")
    for t in (1, 3, 8):
        gap = s[t] - theory.collision_replace(t, 20, s[0])  # given each replicate's p_0
        assert z_score(gap, 0.0) < Z, t
    kl, perplexity = metric(store, rid, "kl_per_token"), metric(store, rid, "perplexity")
    np.testing.assert_array_equal(np.isinf(kl), np.isinf(perplexity))  # a lost test token
    assert np.isinf(kl[8]).mean() > np.isinf(kl[0]).mean()


def test_seddiks_law_counts_the_real_fit_as_the_first_of_iid_tokens(store_path):
    store, (rid,) = run_raw(text_run({"kind": "replace"}, 4, order=0), store_path)
    s = metric(store, rid, "collision")
    q = markov(vocab=6, order=0, length=4, concentration=0.8).token_probs
    for t in (0, 1, 4):  # generation t is t + 1 fits of N = 20 tokens from S(q)
        assert z_score(s[t], theory.seddik(t + 1, 20, (q**2).sum())) < Z, t
    assert z_score(s[1], theory.seddik(1, 20, (q**2).sum())) > 3 * Z  # t fits: rejected


@pytest.mark.parametrize("lam", [0.6, 2.0])
def test_mix_follows_the_mixed_law_and_settles_near_the_real_collision(store_path, lam):
    store, (rid,) = run_raw(text_run({"kind": "mix", "params": {"lam": lam}}, 8), store_path)
    s = metric(store, rid, "collision")
    n_syn = round(lam * 5) * 4
    for t in (1, 8):
        assert z_score(s[t] - theory.collision_mix(t, 20, n_syn, s[0]), 0.0) < Z, (lam, t)
    assert z_score(s[8] - theory.collision_replace(8, n_syn, s[0]), 0.0) > 3 * Z


def test_the_mixed_law_tends_to_replace_as_lambda_grows_and_stays_put_at_zero():
    t = np.arange(6)
    np.testing.assert_allclose(
        theory.collision_mix(t, 1, 10**9, 0.3), theory.collision_replace(t, 10**9, 0.3)
    )
    np.testing.assert_allclose(theory.collision_mix(t, 20, 0, 0.3), 0.3)
    mixed = theory.collision_mix(t, 20, 20, 0.3)
    assert np.all(np.diff(mixed) > 0) and mixed[-1] < theory.collision_replace(5, 20, 0.3)


def test_stdlib_text_splits_documents_and_cuts_windows():
    src = StdlibText(StdlibTextParams(length=32))
    assert src.vocab_size > 60 and len(src.real_windows) > len(src.test_windows) > 1000
    x = src.sample(2, 50, np.random.default_rng(0))
    assert x.shape == (2, 50, 32) and x.dtype == np.int64 and x.max() < src.vocab_size
    assert all(len(set(map(tuple, r))) == 50 for r in x)  # distinct windows per replicate
    assert " the " in "".join(src.decode(w) for w in x[0])


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("data.params.length=100000", "data.params.length"),
        ("data.n_real=100000", "data.n_real"),  # ~15,000 real windows of 64
        ("model.params.order=9", "model.params.order"),
        ("model.params={smoothing: kneser_ney, add_k: 1}", "model.params"),
    ],
)
def test_bad_text_input_exits_2_naming_the_key(store_path, override, needle):
    args = ["run", "ngram-theory", "--quick", "--store", str(store_path), "--set"]
    sets = ["data.kind=stdlib_text", "--set", "data.params={length: 64}", "--set", override]
    sets += ["--set", "replicates=1"]  # the memory estimate (windows of 64 tokens) stays small
    if override.startswith("model"):
        sets = [override]
    result = CliRunner().invoke(app, [*args, *sets])
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1 and needle in lines[0], result.output
    assert not store_path.exists()


@pytest.mark.slow
def test_ngram_theory_preset_runs_quick_and_the_report_overlays_the_laws(tmp_path):
    from selfconsume.report.html import load_experiments
    from selfconsume.report.text import text_collapse, text_theory
    from selfconsume.store.reader import StoreReader

    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", "ngram-theory", "--quick", "--store", str(store)])
    assert result.exit_code == 0, result.output
    with StoreReader(store) as reader:
        (exp,) = load_experiments(reader)
        figures = text_collapse(exp, tmp_path)
        rows = text_theory(exp)
    assert len(exp.runs) == 4 and figures[0].path.exists()
    assert {r.run for r in rows} == {r.label for r in exp.runs}
    assert all(abs(r.z) < Z for r in rows)


def test_kneser_ney_rows_are_laws_and_match_a_hand_computed_bigram():
    x = markov(vocab=5, order=2, length=6).sample(2, 40, np.random.default_rng(6))
    weights = np.random.default_rng(7).random(x.shape[:2])
    model = NgramModel(
        NgramParams(order=3, smoothing="kneser_ney", discount=0.6),
        6,
        2,
        Streams(0),
        truth=markov(vocab=5, length=6),
    )
    model.fit(x, weights, 0, False)
    np.testing.assert_allclose(model.conditionals.sum(-1), 1.0, rtol=1e-12)
    assert np.all(model.conditionals > 0)
    bigram = fitted(np.array([[[0, 1, 1], [1, 1, 2]]]), order=2, smoothing="kneser_ney")
    # continuations: 0 follows BOS; 1 follows BOS, 0, 1; 2 follows 1 -> 1/5, 3/5, 1/5 over 5 seen
    d = 0.75
    unigram = (np.maximum(np.array([1, 3, 1, 0, 0]) - d, 0) + 3 * d * 0.2) / 5
    after_one = (np.maximum(np.array([0, 2, 1, 0, 0]) - d, 0) + 2 * d * unigram) / 3
    np.testing.assert_allclose(bigram.conditionals[0, 1], after_one)
    np.testing.assert_allclose(
        bigram.conditionals[0, 3], unigram
    )  # context 3 unseen: the lower order
