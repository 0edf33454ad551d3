"""The ngram family's support loss under replace (selfconsume.theory.text) against simulation at
Monte Carlo tolerance: the unigram's tokens lost over generations (a Wright-Fisher chain per
token) and the expected n-grams of the next fit given p_t (a walk with one step removed)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import z_score

from selfconsume.data.text import MarkovText, MarkovTextParams
from selfconsume.models.ngram import NgramModel, NgramParams
from selfconsume.seeding import Streams
from selfconsume.theory import text as theory

Z = 4.5


def ngram(order: int, replicates: int, source: MarkovText) -> NgramModel:
    return NgramModel(NgramParams(order=order), source.dim, replicates, Streams(0), truth=source)


def test_unigram_tokens_lost_follow_the_wright_fisher_chain():
    source = MarkovText(MarkovTextParams(vocab=12, order=1, length=4, concentration=0.4))
    r, n_seq, rng = 4000, 5, np.random.default_rng(1)
    model = ngram(1, r, source)
    model.fit(source.sample(r, n_seq, rng), None, 0, False)
    p0 = model.unigram_probs().copy()
    for t in range(1, 9):
        model.fit(model.sample(n_seq, rng, t), None, t, False)
        if t in (1, 3, 8):
            lost = ((p0 > 0) & (model.unigram_probs() == 0)).sum(1) / (p0 > 0).sum(1)
            law = theory.unigram_support_lost(t, n_seq * 4, p0)  # given each replicate's p_0
            assert z_score(lost - law, 0.0) < Z, t
    one_fit = np.where(p0 > 0, (1 - p0) ** 20, 0).sum(1) / (p0 > 0).sum(1)
    np.testing.assert_allclose(theory.unigram_support_lost(1, 20, p0), one_fit, rtol=1e-9)
    assert theory.unigram_support_lost(400, 20, p0[:1])[0] == pytest.approx(
        1 - 1 / (p0[0] > 0).sum(), abs=1e-3
    )  # in the end one token holds every draw


@pytest.mark.parametrize(("order", "k_source"), [(2, 1), (3, 2)])
def test_ngrams_of_the_next_fit_match_the_walk_with_one_step_removed(order, k_source):
    source = MarkovText(MarkovTextParams(vocab=4, order=k_source, length=6, concentration=0.5))
    rng = np.random.default_rng(order)
    real = source.sample(1, 8, rng)  # one real set: p_0 is fixed, the next fit is random
    r, m = 3000, 5
    model = ngram(order, r, source)
    model.fit(np.broadcast_to(real, (r, *real.shape[1:])).copy(), None, 0, False)
    reachable, expected = theory.ngram_support_step(model.conditionals[0], 4, m, 6)
    assert reachable == (model.counts[0] > 0).sum()  # every counted n-gram, nothing else here
    model.fit(model.sample(m, rng, 0), None, 1, False)
    counted = (model.counts > 0).sum((1, 2))
    assert z_score(counted - expected, 0.0) < Z
    assert counted.mean() < reachable  # the fit does lose n-grams


def test_for_a_unigram_the_one_step_walk_is_the_wright_fisher_first_step():
    source = MarkovText(MarkovTextParams(vocab=6, order=0, length=3))
    model = ngram(1, 1, source)
    model.fit(source.sample(1, 4, np.random.default_rng(0)), None, 0, False)
    p0 = model.unigram_probs()[0]
    reachable, expected = theory.ngram_support_step(model.conditionals[0], 6, 7, 3)
    lost = theory.unigram_support_lost(1, 21, p0)
    assert reachable == (p0 > 0).sum()
    np.testing.assert_allclose(expected, reachable * (1 - lost), rtol=1e-9)
