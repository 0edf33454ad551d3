"""The transformer family: its sampler draws the law its log_prob scores (temperature, nucleus and
their limits included), replicates and decoding blocks do not change a replicate's numbers, a
resumed state fine-tunes identically, a fit on a Markov language reaches the source's entropy
within a tolerance from the Monte Carlo error and the estimation error, and bad params exit 2."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.data.text import MarkovText, MarkovTextParams
from selfconsume.models import transformer as tf
from selfconsume.models.transformer import Transformer, TransformerParams, next_token_law
from selfconsume.seeding import Streams

Z = 4.5  # z bound per cell or check: a false alarm has probability < 1e-3 over this file
TINY = {"n_layer": 1, "n_embd": 16, "n_head": 2, "batch_size": 32, "lr": 1e-2}


def source(vocab: int = 3, length: int = 3, **params) -> MarkovText:
    return MarkovText(MarkovTextParams(vocab=vocab, order=1, length=length, **params))


def family(src: MarkovText, replicates: int = 2, seed: int = 0, **params) -> Transformer:
    p = TransformerParams(**{**TINY, "train_steps": 100, **params})
    return Transformer(p, src.dim, replicates, Streams(seed), truth=src)


def trained(src: MarkovText, replicates: int = 2, n: int = 200, **params) -> Transformer:
    model = family(src, replicates, **params)
    model.fit(src.sample(replicates, n, np.random.default_rng(0)), None, 0, False)
    return model


def every_sequence(vocab: int, length: int, replicates: int) -> np.ndarray:
    """All vocab^length sequences, for every replicate: (R, V^L, L)."""
    cells = np.array(list(itertools.product(range(vocab), repeat=length)))
    return np.broadcast_to(cells, (replicates, *cells.shape)).copy()


def cell_counts(samples: np.ndarray, vocab: int) -> np.ndarray:
    """How often each sequence occurs per replicate (R, V^L), cells in `every_sequence` order."""
    codes = (samples * vocab ** np.arange(samples.shape[-1])[::-1]).sum(-1)
    r = samples.shape[0]
    flat = (np.arange(r)[:, None] * vocab ** samples.shape[-1] + codes).ravel()
    return np.bincount(flat, minlength=r * vocab ** samples.shape[-1]).reshape(r, -1)


def biased_law(model: Transformer, cells: np.ndarray) -> np.ndarray:
    """The exact probability (R, V^L) of each sequence under the model's sampling law (psi,
    top_p), token by token from the full forward pass (no cache)."""
    with torch.no_grad():
        tokens = torch.as_tensor(cells)
        logits = model.network(model.net.ema, model.inputs(tokens))
        law = next_token_law(logits, model.p.psi, model.p.top_p)
        return law.gather(-1, tokens[..., None])[..., 0].prod(-1).numpy()


def assert_draws_law(samples: np.ndarray, law: np.ndarray, vocab: int) -> None:
    """Every cell's count is within Z binomial standard errors of n times its probability."""
    n = samples.shape[1]
    counts = cell_counts(samples, vocab)
    se = np.sqrt(n * law * (1 - law))
    z = np.abs(counts - n * law) / np.where(se > 0, se, 1)
    assert z.max() < Z, z.max()
    assert np.all(counts[law == 0] == 0)


def test_log_probs_sum_to_one_and_the_sampler_at_temperature_one_draws_them():
    src = source()
    model = trained(src)
    cells = every_sequence(3, 3, 2)
    law = np.exp(model.log_prob(cells))
    np.testing.assert_allclose(law.sum(1), 1.0, rtol=1e-5)
    assert law.min() < 0.5 / 27 < 2 / 27 < law.max()  # trained: far from uniform
    assert_draws_law(model.sample(20_000, np.random.default_rng(1), 1), law, 3)


@pytest.mark.parametrize(("psi", "top_p"), [(0.5, 1.0), (1.0, 0.6), (2.0, 0.5)])
def test_the_sampler_draws_the_tempered_nucleus_law(psi, top_p):
    src = source()
    model = trained(src, psi=psi, top_p=top_p)
    law = biased_law(model, every_sequence(3, 3, 2))
    np.testing.assert_allclose(law.sum(1), 1.0, rtol=1e-9)
    if top_p < 1:
        assert (law == 0).any()  # the nucleus dropped some sequences
    assert_draws_law(model.sample(20_000, np.random.default_rng(2), 1), law, 3)


def test_top_p_one_is_the_softmax_and_a_tiny_top_p_keeps_the_argmax():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125], [0.1, 0.2, 0.3, 0.4]]))
    np.testing.assert_allclose(next_token_law(logits, 1.0, 1.0), logits.double().softmax(-1))
    tiny = next_token_law(logits, 1.0, 1e-9)
    np.testing.assert_array_equal(tiny, [[1, 0, 0, 0], [0, 0, 0, 1]])
    # the fewest most likely tokens holding 0.65 of the mass: two in each row
    kept = next_token_law(logits, 1.0, 0.65)
    np.testing.assert_allclose(kept, [[2 / 3, 1 / 3, 0, 0], [0, 0, 3 / 7, 4 / 7]], rtol=1e-6)


def test_temperature_to_zero_is_the_argmax_without_nans():
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(0)) * 3
    for psi in (1e-6, 1e-300):
        law = next_token_law(logits, psi, 1.0)
        assert torch.isfinite(law).all()
        np.testing.assert_array_equal(law.argmax(-1), logits.argmax(-1))
        np.testing.assert_array_equal(law.max(-1).values, torch.ones(5, dtype=law.dtype))
    src = source(vocab=4, length=5)
    model = trained(src, psi=1e-300)
    samples = model.sample(50, np.random.default_rng(3), 1)
    greedy = torch.full((2, 1, 1), 4)  # the beginning symbol, decoded greedily by full passes
    with torch.no_grad():
        for _ in range(5):
            logits = model.network(model.net.ema, greedy)[:, :, -1]
            greedy = torch.cat([greedy, logits.argmax(-1)[..., None]], dim=-1)
    np.testing.assert_array_equal(samples, np.broadcast_to(greedy[:, :, 1:].numpy(), samples.shape))


def test_a_replicate_samples_and_scores_alike_whatever_r_and_the_decoding_blocks(monkeypatch):
    src = source(vocab=4, length=6)
    x = src.sample(3, 100, np.random.default_rng(0))
    one, three = family(src, 1), family(src, 3)
    one.fit(x[:1], None, 0, False)
    three.fit(x, None, 0, False)
    test = src.sample(3, 40, np.random.default_rng(1))
    np.testing.assert_array_equal(one.log_prob(test[:1]), three.log_prob(test)[:1])
    whole, scores = three.sample(30, np.random.default_rng(2), 1), three.log_prob(test)
    np.testing.assert_array_equal(one.sample(30, np.random.default_rng(2), 1), whole[:1])
    monkeypatch.setattr(tf, "BLOCK_FLOATS", 1)  # one sequence per block
    np.testing.assert_array_equal(three.sample(30, np.random.default_rng(2), 1), whole)
    np.testing.assert_allclose(three.log_prob(test), scores, rtol=1e-6)  # other matmul shapes


def test_a_restored_state_fine_tunes_and_samples_identically():
    """A resumed run builds the family afresh (same streams) and loads the stored state: weights,
    EMA and Adam's moments carry over, so the next warm fit is the one the first process ran."""
    src = source(vocab=4, length=6)
    x = src.sample(2, 100, np.random.default_rng(0))
    a = trained(src, finetune_steps=20, ema_decay=0.99)
    b, fresh = family(src, finetune_steps=20, ema_decay=0.99), family(src, finetune_steps=20)
    b.load_state_dict(a.state_dict())
    loss_a, loss_b = a.fit(x, None, 1, True)["loss"], b.fit(x, None, 1, True)["loss"]
    np.testing.assert_array_equal(loss_a, loss_b)
    rng = np.random.default_rng
    np.testing.assert_array_equal(a.sample(20, rng(4), 2), b.sample(20, rng(4), 2))
    assert not np.array_equal(fresh.fit(x, None, 1, True)["loss"], loss_a)


def test_zero_weights_drop_training_rows_exactly():
    """Minibatch rows are drawn by weight: junk rows of weight 0 after a set change nothing (the
    inverse CDF of the weights 1, .., 1, 0, .., 0 picks the rows uniform draws pick)."""
    src = source(vocab=4, length=6)
    x = src.sample(2, 50, np.random.default_rng(0))
    with_junk = np.concatenate([x, np.zeros_like(x)], axis=1)
    weights = np.repeat(np.r_[np.ones(50), np.zeros(50)][None], 2, axis=0)
    a, b, c = family(src), family(src), family(src)
    loss = a.fit(x, None, 0, False)["loss"]
    np.testing.assert_array_equal(b.fit(with_junk, weights, 0, False)["loss"], loss)
    zeros = np.zeros((2, 1, 6), dtype=np.int64)
    np.testing.assert_array_equal(a.log_prob(zeros), b.log_prob(zeros))
    c.fit(with_junk, None, 0, False)  # the junk counted: the all-zero window becomes likely
    assert (c.log_prob(zeros) > a.log_prob(zeros) + 1).all()


@pytest.mark.slow
def test_cross_entropy_on_a_markov_language_approaches_its_entropy():
    """Per-token cross-entropy on held-out windows minus the exact entropy per token is the KL per
    token, estimated without bias by the paired mean of (log P - log q) / L. It must be >= 0 up to
    Z standard errors (a model that sees the future beats the source: this catches a causal mask
    that leaks), and at most Z standard errors above 10 d / (2 N L), ten times the asymptotic
    excess of the maximum-likelihood fit of the true chain on the same N windows (d = V (V - 1) +
    V - 1 free parameters; the transformer is not that fit and Adam's noise, averaged by the EMA,
    adds to it)."""
    v, length, n, m = 4, 16, 8000, 4000
    src = source(vocab=v, length=length, concentration=1.0)
    model = trained(src, n=n, train_steps=1000, ema_decay=0.999)
    test = src.sample(2, m, np.random.default_rng(1))
    kl = (src.log_prob(test) - model.log_prob(test)) / length
    se = kl.std(1, ddof=1) / math.sqrt(m)
    allowance = 10 * (v * (v - 1) + v - 1) / (2 * n * length)
    assert np.all(kl.mean(1) > -Z * se), (kl.mean(1), se)
    assert np.all(kl.mean(1) < allowance + Z * se), (kl.mean(1), se, allowance)
    unigram_gap = -(src.token_probs @ np.log(src.token_probs)) - src.entropy_rate()
    assert allowance + Z * se.max() < unigram_gap / 20  # the bound separates it from a unigram


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ("{n_embd: 30, n_head: 4}", "model.params.n_head"),
        ("{top_p: 0}", "model.params.top_p"),
        ("{dtype: bfloat16}", "model.params.dtype"),
        ("{n_layer: 0}", "model.params.n_layer"),
        ("{psi: -1}", "model.params.psi"),
    ],
)
def test_bad_transformer_params_exit_2_naming_the_key(store_path, params, needle):
    args = ["run", "ngram-theory", "--quick", "--store", str(store_path), "--set"]
    sets = ["model.kind=transformer", "--set", f"model.params={params}"]
    result = CliRunner().invoke(app, [*args, *sets])
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1 and needle in lines[0], result.output
    assert not store_path.exists()


def test_the_transformer_refuses_data_that_is_not_tokens(store_path):
    args = ["run", "eight-gaussians-collapse", "--quick", "--store", str(store_path)]
    result = CliRunner().invoke(
        app, [*args, "--set", "model.kind=transformer", "--set", "model.params={}"]
    )
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1 and "model.kind" in lines[0], result.output


def test_a_transformer_too_large_for_memory_is_refused_naming_its_width():
    """The family declares its weights, Adam state and training activations (`memory_terms`), per
    window of data.params.length tokens: a run that cannot fit names the key to lower."""
    from selfconsume.errors import ConfigError
    from selfconsume.limits import check_memory, estimate_bytes
    from selfconsume.plan import resolve

    def config(n_embd: int, length: int) -> dict:
        model = {"kind": "transformer", "params": {"n_embd": n_embd, "n_layer": 8}}
        data = {"kind": "markov_text", "n_real": 10, "params": {"length": length}}
        return {"name": "big", "replicates": 4, "data": data, "model": model}

    small = estimate_bytes(resolve(config(64, 32)))
    assert estimate_bytes(resolve(config(64, 64))) > 1.9 * small - 2**22  # activations grow with L
    with pytest.raises(ConfigError, match=r"^model\.params\.n_embd: .*lower model\.params\.n_embd"):
        check_memory(resolve(config(4096, 32)), available=2**33)
