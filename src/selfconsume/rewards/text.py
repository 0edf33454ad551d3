"""Rewards of text samples (token windows (..., L)) for curation: how often a lexicon's words
occur, the share of characters of a class, and the log-odds of a classifier of real text.

- `lexicon` (character data): occurrences of the lexicon's words in a window, counted where the
  word's characters stand between non-alphanumeric characters or the window's ends (whole words;
  `whole_words: false` counts them inside words too).
- `char_class` (character data): the share of a window's characters in a class (letters, digits,
  spaces, upper-case, punctuation) or in a given set of characters.
- `text_classifier` (any token data): the log-odds that a window is real text rather than a
  degraded copy of it, from a logistic regression on its token and token-pair frequencies trained
  once, with the reward's seed, on the data's classifier split (fresh draws of the source where it
  has none) against the same windows degraded: their tokens shuffled within each window
  (`negatives: shuffled`, so only the order tells them apart) or drawn i.i.d. from the split's
  token frequencies (`unigram`). The reward is b + sum_i w1[x_i] / L + sum_i w2[x_i, x_i+1] / L,
  a gather and a sum over the window, vectorised over every sample.

Each is deterministic: the same samples and params give the same rewards.
"""

from __future__ import annotations

import string
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from selfconsume.data.base import data_is
from selfconsume.data.text import Characters, Tokens
from selfconsume.errors import ConfigError
from selfconsume.registry import Example
from selfconsume.rewards.base import REWARDS, Params, Reward

CHARACTER_DATA = data_is(
    Characters, "character tokens (data.kind stdlib_text or text_file, tokens: characters)"
)
TOKEN_DATA = data_is(Tokens, "token data (data.kind markov_text, stdlib_text or text_file)")
CLASSES = {
    "letter": str.isalpha,
    "digit": str.isdigit,
    "space": str.isspace,
    "upper": str.isupper,
    "punctuation": lambda c: c in string.punctuation,
}
CHARACTER_EXAMPLE = Example(
    {"words": ["the"]}, config={"data": {"kind": "stdlib_text", "params": {"length": 16}}}
)


class LexiconParams(Params):
    words: list[str] = Field(min_length=1, max_length=1000)
    """The lexicon: each occurrence of one of its words adds 1."""
    whole_words: bool = True
    """Count a word only between non-alphanumeric characters (or the window's ends)."""


def _codes(source: Characters, text: str, key: str) -> np.ndarray:
    """The token ids of `text` in the source's alphabet (a ConfigError names `key` otherwise)."""
    code = {c: i for i, c in enumerate(source.alphabet)}
    missing = sorted(set(text) - set(code))
    if not text or missing:
        what = "is empty" if not text else f"has characters not in the data: {missing[:5]}"
        raise ConfigError(f"curation.reward.params.{key}: {text!r} {what}")
    return np.array([code[c] for c in text], dtype=np.int64)


def occurrences(x: np.ndarray, word: np.ndarray, boundary: np.ndarray | None) -> np.ndarray:
    """How many times the token string `word` occurs in each window of x (..., L); with a
    `boundary` table (V,) (True: a word boundary character) only as a whole word."""
    length, m = x.shape[-1], len(word)
    if m > length:
        return np.zeros(x.shape[:-1])
    starts = length - m + 1
    hit = np.ones((*x.shape[:-1], starts), dtype=bool)
    for j, token in enumerate(word):
        hit &= x[..., j : j + starts] == token
    if boundary is not None:
        edge = np.ones((*x.shape[:-1], 1), dtype=bool)
        hit &= np.concatenate([edge, boundary[x[..., : starts - 1]]], axis=-1)
        hit &= np.concatenate([boundary[x[..., m:]], edge], axis=-1)
    return hit.sum(-1).astype(float)


@REWARDS.register("lexicon", LexiconParams, needs=[CHARACTER_DATA], example=CHARACTER_EXAMPLE)
def lexicon(params: LexiconParams, source: Characters) -> Reward:
    """Occurrences of the lexicon's words in a window (whole words by default)."""
    words = [_codes(source, w, "words") for w in params.words]
    boundary = None
    if params.whole_words:
        boundary = np.array([not c.isalnum() for c in source.alphabet])

    def reward(x: np.ndarray) -> np.ndarray:
        return sum(occurrences(x, word, boundary) for word in words)

    return reward


class CharClassParams(Params):
    char_class: Literal["letter", "digit", "space", "upper", "punctuation"] | None = None
    """A class of characters, or null to reward the characters of `chars`."""
    chars: str | None = Field(default=None, min_length=1)
    """The rewarded characters (with char_class null); those the data never holds are ignored."""

    @model_validator(mode="after")
    def _one(self) -> CharClassParams:
        if (self.char_class is None) == (self.chars is None):
            raise ValueError("give exactly one of char_class and chars")
        return self


@REWARDS.register(
    "char_class",
    CharClassParams,
    needs=[CHARACTER_DATA],
    example=Example({"char_class": "letter"}, config=CHARACTER_EXAMPLE.config),
)
def char_class(params: CharClassParams, source: Characters) -> Reward:
    """The share of a window's characters in a class (or in `chars`)."""
    if params.chars is not None:
        table = np.array([c in params.chars for c in source.alphabet], dtype=float)
        if not table.any():
            raise ConfigError(
                f"curation.reward.params.chars: none of {params.chars!r} is in the data"
            )
    else:
        table = np.array([CLASSES[params.char_class](c) for c in source.alphabet], dtype=float)

    def reward(x: np.ndarray) -> np.ndarray:
        return table[x].mean(-1)

    return reward


class TextClassifierParams(Params):
    negatives: Literal["shuffled", "unigram"] = "shuffled"
    """The degraded text the classifier tells real text from (see the module docstring)."""
    n_train: int = Field(default=4000, ge=10, le=10**6)
    """Real windows trained on (at most the classifier split's), and as many degraded ones."""
    c: float = Field(default=1.0, gt=0, le=1e6)
    """Inverse L2 strength of the logistic regression (scikit-learn's C)."""
    seed: int = Field(default=0, ge=0)


def pair_frequencies(x: np.ndarray, vocab: int) -> np.ndarray:
    """Token and token-pair frequencies per window, as a sparse matrix (m, V + V^2): the
    classifier's features of windows x (m, L)."""
    from scipy.sparse import csr_matrix

    m, length = x.shape
    pairs = vocab + x[:, :-1] * vocab + x[:, 1:]
    cols = np.concatenate([x, pairs], axis=1)
    rows = np.repeat(np.arange(m), cols.shape[1])
    data = np.full(cols.size, 1.0 / length)
    return csr_matrix((data, (rows, cols.ravel())), shape=(m, vocab + vocab * vocab))


def classifier_windows(
    source: Tokens, n: int, rng: np.random.Generator, key: str = "n_train"
) -> np.ndarray:
    """Up to n real windows (m, L) of the data's classifier split, or n fresh draws of a source
    without one (a known language)."""
    split = getattr(source, "classifier_windows", None)
    if split is None:
        return source.sample(1, n, rng)[0]
    if len(split) < 2:
        raise ConfigError(
            f"curation.reward.params.{key}: the data's classifier split holds {len(split)} "
            "windows (raise data.params.classifier_fraction)"
        )
    return split[rng.permutation(len(split))[:n]]


def degraded(real: np.ndarray, negatives: str, vocab: int, rng: np.random.Generator) -> np.ndarray:
    """The real windows degraded: each one's tokens shuffled, or i.i.d. from their frequencies."""
    if negatives == "shuffled":
        return rng.permuted(real, axis=1)
    freq = np.bincount(real.ravel(), minlength=vocab) / real.size
    return rng.choice(vocab, size=real.shape, p=freq)


@REWARDS.register(
    "text_classifier",
    TextClassifierParams,
    needs=[TOKEN_DATA],
    example=Example(
        {"n_train": 200}, config={"data": {"kind": "markov_text", "params": {"length": 8}}}
    ),
)
def text_classifier(params: TextClassifierParams, source: Tokens) -> Reward:
    """Log-odds that a window is real text rather than degraded (shuffled or unigram) text, by
    a logistic regression on token and token-pair frequencies trained on the classifier split."""
    from sklearn.linear_model import LogisticRegression

    vocab = source.vocab_size
    rng = np.random.default_rng(params.seed)
    real = classifier_windows(source, params.n_train, rng)
    fake = degraded(real, params.negatives, vocab, rng)
    x = pair_frequencies(np.concatenate([real, fake]), vocab)
    y = np.repeat([1, 0], len(real))
    clf = LogisticRegression(C=params.c, max_iter=2000).fit(x, y)
    w1, w2 = clf.coef_[0, :vocab], clf.coef_[0, vocab:]
    bias = float(clf.intercept_[0])

    def reward(x: np.ndarray) -> np.ndarray:
        pairs = x[..., :-1] * vocab + x[..., 1:]
        return bias + (w1[x].sum(-1) + w2[pairs].sum(-1)) / x.shape[-1]

    return reward
