"""Perplexity of p_t's samples under the generation-0 model (`p0_perplexity`, Shumailov et al.):
the loop keeps p_0 frozen beside the model it retrains, its checkpoint carries p_0 so a resumed
run compares with the same p_0, and the text metrics take any family with exact log-likelihoods."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import interrupt_after, metric, run_raw, z_score

from selfconsume.data.text import MarkovText, MarkovTextParams
from selfconsume.metrics.base import METRICS, MetricContext
from selfconsume.metrics.text import PERCENTILES, p0_perplexity
from selfconsume.models.base import MODELS, ReadsTruth
from selfconsume.models.ngram import NgramModel, NgramParams
from selfconsume.plan import resolve
from selfconsume.registry import Params
from selfconsume.seeding import Streams
from selfconsume.store.sqlite import Store

Z = 4.5


def unigram_run(generations: int, replicates: int = 400, **overrides: Any) -> dict:
    """Unigram fits (maximum likelihood) of i.i.d. tokens, fully synthetic, with both groups."""
    return {
        "name": "p0",
        "seed": 3,
        "replicates": replicates,
        "generations": generations,
        "data": {
            "kind": "markov_text",
            "n_real": 6,
            "n_test": 40,
            "params": {"vocab": 8, "order": 0, "length": 5, "concentration": 0.7},
        },
        "model": {"kind": "ngram", "params": {"order": 1}},
        "scheme": {"kind": "replace"},
        "metrics": ["text", "p0_perplexity"],
        **overrides,
    }


def test_p0_perplexity_reads_generation_zero_frozen_while_p_t_collapses(store_path):
    # For a unigram fit, E[p_t | p_0] = p_0 (a martingale), so the expected cross-entropy of p_t's
    # samples under p_0 stays H(p_0) = generation 0's exact unigram entropy, while p_t's own
    # entropy falls. A loop comparing with p_t instead of p_0 would follow the fall.
    store, (rid,) = run_raw(unigram_run(6), store_path)
    log_ppl, entropy = (
        np.log(metric(store, rid, "p0_perplexity")),
        metric(store, rid, "unigram_entropy"),
    )
    for t in (0, 3, 6):
        assert z_score(log_ppl[t] - entropy[0], 0.0) < Z, t
    assert z_score(entropy[6] - entropy[0], 0.0) > 3 * Z  # p_t itself did collapse
    quantiles = np.stack([metric(store, rid, f"p0_perplexity_q{k}") for k in PERCENTILES])
    assert np.all(np.diff(quantiles, axis=0) >= 0) and np.isfinite(quantiles).all()


def test_a_resumed_run_compares_with_the_same_generation_zero(tmp_path):
    cfg = resolve(unigram_run(4, replicates=20))
    whole = Store(tmp_path / "whole.sqlite")
    run_raw(unigram_run(4, replicates=20), tmp_path / "whole.sqlite")
    halves = Store(tmp_path / "halves.sqlite")
    interrupt_after(cfg, halves, 2)
    run_raw(unigram_run(4, replicates=20), tmp_path / "halves.sqlite")
    for name in ("p0_perplexity", "p0_perplexity_q99", "perplexity"):
        np.testing.assert_array_equal(
            metric(halves, cfg.run_id, name), metric(whole, cfg.run_id, name)
        )


def test_p0_perplexity_is_the_cross_entropy_of_p_t_samples_under_p_0():
    source = MarkovText(MarkovTextParams(vocab=5, order=0, length=4, concentration=1.0))

    def fitted(seed: int) -> NgramModel:
        model = NgramModel(NgramParams(order=1, add_k=1.0), 4, 300, Streams(seed), truth=source)
        model.fit(source.sample(300, 3, np.random.default_rng(seed)), None, 0, False)
        return model

    p_t, p_0 = fitted(1), fitted(2)
    test = source.sample(300, 200, np.random.default_rng(9))
    ctx = MetricContext(p_t, source, test, test, 1, Streams(4), reference=p_0)
    out = p0_perplexity(ctx)
    cross = -(p_t.unigram_probs() * np.log(p_0.unigram_probs())).sum(1)  # nats per token
    assert z_score(np.log(out["p0_perplexity"]) - cross, 0.0) < Z
    per_sequence = np.exp(-p_0.log_prob(ctx.samples) / 4)
    for k in (1, 50, 99):
        expected = np.percentile(per_sequence, k, axis=1, method="inverted_cdf")
        np.testing.assert_allclose(out[f"p0_perplexity_q{k}"], expected, rtol=1e-12)
    assert METRICS.get("p0_perplexity").reference and not METRICS.get("text").reference


class UniformParams(Params):
    pass


class UniformTokens(ReadsTruth):
    """Every token equally likely: a family with exact log-likelihoods that is not an ngram."""

    def __init__(self, params, dim, replicates, streams, truth=None) -> None:
        self.vocab, self.length, self.replicates = truth.vocab_size, dim, replicates

    def fit(self, x, weights, generation, warm):
        return {}

    def sample(self, n, rng, generation):
        return rng.integers(0, self.vocab, (self.replicates, n, self.length))

    def log_prob(self, x):
        return np.full(x.shape[:-1], -self.length * np.log(self.vocab))

    def state_dict(self):
        return {"vocab": np.asarray(self.vocab)}

    def load_state_dict(self, state):
        self.vocab = int(state["vocab"])


@pytest.fixture
def uniform_family(monkeypatch):
    MODELS.kinds()  # every built-in module imported first: none registers into the copy
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))
    MODELS.register("uniform_tokens", UniformParams)(UniformTokens)
    return "uniform_tokens"


def test_text_metrics_take_any_family_with_log_likelihoods(store_path, uniform_family):
    raw = unigram_run(1, replicates=3, model={"kind": uniform_family})
    store, (rid,) = run_raw(raw, store_path)
    for name in ("perplexity", "p0_perplexity", "p0_perplexity_q1", "p0_perplexity_q99"):
        np.testing.assert_allclose(metric(store, rid, name), 8.0)  # V: uniform over 8 tokens
    entropy = metric(store, rid, "unigram_entropy")  # from 40 x 5 sampled tokens
    assert np.all((entropy > np.log(8) - 0.2) & (entropy <= np.log(8)))


def test_the_mixture_histogram_of_percentiles_is_the_pooled_samples_share_per_bin():
    from selfconsume.report.text import mixture_histogram

    rng = np.random.default_rng(0)
    values = rng.normal(2.0, [[0.3], [0.6]], (2, 20_000))  # two replicates' log perplexities
    log_q = np.percentile(values, PERCENTILES, axis=1).T
    edges = np.linspace(1.4, 2.6, 13)  # inside every replicate's q1..q99
    pooled = np.histogram(values.ravel(), edges)[0] / values.size
    np.testing.assert_allclose(mixture_histogram(log_q, edges), pooled, atol=0.01)
    assert mixture_histogram(np.full((1, len(PERCENTILES)), np.inf), edges).sum() == 0.0


def test_the_report_draws_the_histograms_and_their_tail(tmp_path):
    from selfconsume.report.html import load_experiments
    from selfconsume.report.text import p0_perplexity_histograms
    from selfconsume.store.reader import StoreReader

    store = tmp_path / "s.sqlite"
    run_raw(unigram_run(3, replicates=4), store)
    with StoreReader(store) as reader:
        (exp,) = load_experiments(reader)
        figures = p0_perplexity_histograms(exp, tmp_path)
    assert [f.path.name for f in figures] == ["p0-p0-perplexity.png", "p0-p0-perplexity-tail.png"]
    assert all(f.path.exists() and f.svg.exists() for f in figures)


def test_metrics_of_a_categorical_law_refuse_the_ngram_family():
    from selfconsume.errors import ConfigError

    with pytest.raises(ConfigError, match="needs a discrete model"):
        resolve(unigram_run(1, replicates=2, metrics=["entropy"]))


def tiny_transformer_run() -> dict:
    """A tiny transformer fine-tuned on its own samples (warm start), with both text groups."""
    params = {"n_layer": 1, "n_embd": 16, "n_head": 2, "train_steps": 30, "finetune_steps": 10}
    return unigram_run(
        3,
        replicates=2,
        model={"kind": "transformer", "warm_start": True, "params": params},
    )


def test_a_transformer_compares_with_its_frozen_generation_zero_also_after_resuming(tmp_path):
    whole_path, halves_path = tmp_path / "whole.sqlite", tmp_path / "halves.sqlite"
    whole, (rid,) = run_raw(tiny_transformer_run(), whole_path)
    interrupt_after(resolve(tiny_transformer_run()), Store(halves_path), 1)
    halves, _ = run_raw(tiny_transformer_run(), halves_path)
    for name in ("p0_perplexity", "p0_perplexity_q50", "perplexity"):
        np.testing.assert_array_equal(metric(halves, rid, name), metric(whole, rid, name))
    assert np.all(np.isfinite(metric(whole, rid, "p0_perplexity")))
