"""Text rewards for curation (`lexicon`, `char_class`, `text_classifier`) against reference
implementations on decoded text, and every selection kind on text: the rules with a text reward
and the reward-free filters (on token frequencies) run; the verifier, with no truth of text,
is refused."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import metric, run_raw

from selfconsume.data.text import CharacterCorpus, MarkovText, MarkovTextParams, StdlibTextParams
from selfconsume.errors import ConfigError
from selfconsume.plan import resolve
from selfconsume.rewards.base import build_reward

DOCS = [
    "The cat sat on the mat; then the other cat ate.",
    "Theory: the thesis is that the end is near (2024).",
    "He said: THE END, then THE_END_2 and the... the",
] * 6


def corpus(length: int = 24) -> CharacterCorpus:
    return CharacterCorpus(DOCS, StdlibTextParams(length=length, classifier_fraction=0.0))


def windows(source: CharacterCorpus) -> np.ndarray:
    return np.concatenate([source.real_windows, source.test_windows])[None]  # (1, m, L)


@pytest.mark.parametrize("whole", [True, False])
def test_lexicon_counts_the_words_as_a_regex_does(whole):
    source = corpus()
    x = windows(source)
    got = build_reward("lexicon", {"words": ["the", "cat", "he"], "whole_words": whole}, source)(x)
    expected = []
    for w in x[0]:
        text = source.decode(w)
        pattern = r"(?<![^\W_]){}(?![^\W_])" if whole else r"(?={})"
        expected.append(
            sum(len(re.findall(pattern.format(word), text)) for word in ("the", "cat", "he"))
        )
    np.testing.assert_array_equal(got[0], expected)
    assert got.max() >= 2


def test_char_class_is_the_share_of_the_windows_characters_in_the_class():
    source = corpus()
    x = windows(source)
    texts = [source.decode(w) for w in x[0]]
    letters = build_reward("char_class", {"char_class": "letter"}, source)(x)[0]
    np.testing.assert_allclose(letters, [sum(c.isalpha() for c in t) / 24 for t in texts])
    vowels = build_reward("char_class", {"chars": "aeiou"}, source)(x)[0]
    np.testing.assert_allclose(vowels, [sum(c in "aeiou" for c in t) / 24 for t in texts])


def test_the_text_classifier_tells_real_windows_from_shuffled_ones_deterministically():
    source = MarkovText(MarkovTextParams(vocab=6, order=2, length=20, concentration=0.3))
    rng = np.random.default_rng(11)
    real = source.sample(1, 1000, rng)[0]
    shuffled = rng.permuted(real, axis=1)
    reward = build_reward("text_classifier", {"n_train": 1000, "seed": 1}, source)
    r_real, r_fake = reward(real), reward(shuffled)
    auc = (r_real[:, None] > r_fake[None, :]).mean()
    se = np.sqrt((2 * 1000 + 1) / (12 * 1000**2))  # the AUC's SE by chance (Mann-Whitney)
    assert auc > 0.5 + 10 * se, auc
    again = build_reward("text_classifier", {"n_train": 1000, "seed": 1}, source)
    np.testing.assert_array_equal(again(real[None])[0], r_real)


@pytest.mark.parametrize(
    ("reward", "key"),
    [
        ({"kind": "lexicon", "params": {"words": ["naïve€"]}}, "curation.reward.params.words"),
        (
            {"kind": "char_class", "params": {"char_class": "letter", "chars": "a"}},
            "curation.reward.params",
        ),
    ],
)
def test_bad_text_reward_params_name_the_key(tmp_path, reward, key):
    from selfconsume.data.text import write_example_corpus

    raw = text_run(tmp_path, {"kind": "bradley_terry", "params": {"k": 2}, "reward": reward})
    raw["data"]["params"]["path"] = str(write_example_corpus(tmp_path / "c.txt"))
    with pytest.raises(ConfigError, match=f"^{re.escape(key)}"):
        resolve(raw)


def text_run(tmp_path, curation: dict) -> dict:
    from selfconsume.data.text import write_example_corpus

    return {
        "name": "curated-text",
        "replicates": 3,
        "generations": 2,
        "data": {
            "kind": "text_file",
            "n_real": 40,
            "n_test": 30,
            "params": {"path": str(write_example_corpus(tmp_path / "corpus.txt")), "length": 16},
        },
        "model": {"kind": "ngram", "params": {"order": 2, "add_k": 0.1}},
        "scheme": {"kind": "replace"},
        "curation": curation,
        "metrics": ["text"],
    }


LEXICON = {"kind": "lexicon", "params": {"words": ["the", "model"]}}


@pytest.mark.parametrize(
    "curation",
    [
        {"kind": "bradley_terry", "params": {"k": 4}, "reward": LEXICON},
        {
            "kind": "top_fraction",
            "params": {"fraction": 0.5},
            "reward": {"kind": "char_class", "params": {"char_class": "space"}},
        },
        {
            "kind": "threshold",
            "params": {"threshold": 0.0},
            "reward": {"kind": "text_classifier", "params": {"n_train": 50}},
        },
        {
            "kind": "discriminator",
            "params": {"select": {"kind": "top_fraction", "params": {"fraction": 0.5}}},
        },
        {"kind": "likelihood", "params": {"components": 4}},
    ],
    ids=lambda c: c["kind"],
)
def test_every_selection_kind_runs_on_text(tmp_path, curation):
    raw = text_run(tmp_path, curation)
    if "reward" in curation:
        raw["metrics"] = ["text", "reward"]
    store, (rid,) = run_raw(raw, tmp_path / "s.sqlite")
    assert store.runs()[0].status == "done", store.runs()[0].error
    assert np.isfinite(metric(store, rid, "distinct_2")).all()


def test_the_verifier_refuses_text_it_has_no_truth_of(tmp_path):
    raw = text_run(tmp_path, {"kind": "verifier"})
    with pytest.raises(ConfigError, match="needs data with a known truth"):
        resolve(raw)
