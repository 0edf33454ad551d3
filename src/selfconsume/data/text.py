"""Text data: token sequences of a fixed length L, int64 arrays (replicates, n, L).

`markov_text` is a synthetic language with a known law: an order-k Markov chain over a vocabulary
of V tokens whose transition rows are Dirichlet(concentration) draws from `transition_seed`. The
first k tokens of a sequence come from the chain's stationary law over k-token contexts, so the
process is stationary: its token marginal, entropy rate, perplexity floor and every sequence's
log-probability (`log_prob`) are exact. Order 0 is i.i.d. tokens from one Dirichlet draw.

`stdlib_text` is real English: the docstrings of the standard library's own source files, read
with `ast` (nothing is imported, nothing downloaded), one docstring per document, character tokens
(the corpus's distinct characters, in code-point order). Documents are split once, by a
permutation seeded with `seed`, into disjoint classifier / test / real parts, as the image tier
does; each part is its documents joined by a blank line and cut into non-overlapping windows of L
tokens. A replicate's real set is n_real distinct windows of the real part, its test set n_test
distinct windows of the test part. The corpus is read once per process.

`tokens: bpe` (the `bpe` extra, `tokenizers`) replaces the characters by a byte-pair encoding of at
most `bpe_vocab` tokens learnt on the real part only (the test and classifier parts never shape
it): every character of the corpus is a token, words are split before their leading space (GPT-2's
pre-tokenisation), and a token's text is its piece, so decoding is concatenation and exact. Such a
source has no character `alphabet`, so the character rewards (lexicon, char_class) refuse it.

`text_file` is a user's own corpus, cut and split the same way (`CharacterCorpus`): a UTF-8 file
whose documents are separated by blank lines, or a folder whose files (hidden ones skipped) are one
document each. A byte that is not UTF-8 is bad input naming the file and its byte offset.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import Field, model_validator

from selfconsume.data.base import DATA, Params
from selfconsume.data.split import check_fits, draw_without_replacement, partition
from selfconsume.errors import ConfigError
from selfconsume.registry import Example
from selfconsume.regular import read_regular

MAX_STATES = 2**20
"""Most entries of the Markov source's transition table, V^(k+1)."""
SKIPPED = frozenset(
    {"test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3", "turtledemo"}
)
"""Standard-library folders that hold test data, tools or third-party code, not documentation."""
MAX_CORPUS_BYTES = 256 * 2**20
"""Most bytes a text_file corpus may hold (a file, or a folder's files together)."""
WORDS = r" ?[^\s]+|\s"
"""BPE pre-tokenisation: a word with its leading space, or one white-space character; merges
never cross these pieces."""


@runtime_checkable
class Tokens(Protocol):
    """Token sequences: rows of dim = L tokens in 0..vocab_size-1."""

    vocab_size: int
    dim: int


@runtime_checkable
class Characters(Protocol):
    """Character tokens: token i is the character alphabet[i]."""

    alphabet: list[str]
    vocab_size: int
    dim: int


@runtime_checkable
class KnownLanguage(Protocol):
    """A language with an exact law: every sequence's log-probability and its entropy."""

    vocab_size: int
    token_probs: np.ndarray

    def log_prob(self, x: np.ndarray) -> np.ndarray: ...

    def sequence_entropy(self) -> float: ...


class MarkovTextParams(Params):
    vocab: int = Field(default=8, ge=2, le=4096)
    """V, the number of tokens."""
    order: int = Field(default=1, ge=0, le=8)
    """k, how many previous tokens a token depends on (0: i.i.d. tokens)."""
    concentration: float = Field(default=0.5, gt=0, le=1e6)
    """The Dirichlet concentration of each transition row: small is peaked, large near uniform."""
    length: int = Field(default=32, ge=1, le=100_000)
    """L, the tokens per sequence."""
    transition_seed: int = Field(default=0, ge=0)
    """The seed of the transition table (the language itself, shared by every replicate)."""

    @model_validator(mode="after")
    def _size(self) -> MarkovTextParams:
        if self.vocab ** (self.order + 1) > MAX_STATES:
            raise ValueError(f"vocab^(order+1) must be at most {MAX_STATES}")
        return self


@DATA.register("markov_text", MarkovTextParams, example=Example({"vocab": 4, "length": 6}))
class MarkovText:
    """An order-k Markov chain over V tokens, sequences of L tokens (R, n, L), exact law; params:
    vocab, order, concentration, length, transition_seed."""

    def __init__(self, params: MarkovTextParams) -> None:
        v, k = params.vocab, params.order
        self.vocab_size, self.order, self.dim = v, k, params.length
        rng = np.random.default_rng(params.transition_seed)
        self.transitions = rng.dirichlet(np.full(v, params.concentration), size=v**k)
        """P(next token | context), (V^k, V); context c = sum_j x_{i-k+j} V^(k-1-j)."""
        self.context_probs = stationary(self.transitions, v, k)
        """The stationary law of the k-token context (V^k,): the first k tokens' law."""

    @property
    def token_probs(self) -> np.ndarray:
        """The stationary law of one token (V,)."""
        joint = self.context_probs[:, None] * self.transitions
        return joint.sum(0)

    def entropy_rate(self) -> float:
        """H = -sum_c pi(c) sum_w P(w|c) log P(w|c), nats per token: the per-token cross-entropy
        no model can beat on long sequences."""
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(self.transitions > 0, self.transitions * np.log(self.transitions), 0)
        return float(-(self.context_probs @ plogp.sum(1)))

    def sequence_entropy(self) -> float:
        """H(X_1..X_L) / L exactly (nats per token): the first k tokens' joint entropy plus
        (L - k) entropy rates, over L; its exp is the perplexity floor at length L."""
        k, length = self.order, self.dim
        first = min(k, length)
        pi = self.context_probs
        with np.errstate(divide="ignore"):
            h_context = float(-(pi[pi > 0] @ np.log(pi[pi > 0])))
        if first < k:  # the first L < k tokens: the marginal of the context's leading tokens
            lead = pi.reshape(self.vocab_size**first, -1).sum(1)
            h_context = float(-(lead[lead > 0] @ np.log(lead[lead > 0])))
        return (h_context + (length - first) * self.entropy_rate()) / length

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Sequences (replicates, n, L): the first k tokens from the stationary context law, then
        one token per position by inverse CDF, vectorised over replicates and sequences."""
        v, k, length = self.vocab_size, self.order, self.dim
        out = np.empty((replicates, n, max(length, k)), dtype=np.int64)
        context = inverse_cdf(np.cumsum(self.context_probs), rng.random((replicates, n)))
        for j in range(k):
            out[..., j] = context // v ** (k - 1 - j) % v
        cdf = np.cumsum(self.transitions, axis=1)
        for i in range(k, length):
            u = rng.random((replicates, n))
            out[..., i] = inverse_cdf_rows(cdf, context, u)
            context = (context * v + out[..., i]) % v**k
        return out[..., :length]

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """log P(x) of sequences x (..., L), exact: log pi(first k tokens) + the transitions'."""
        v, k = self.vocab_size, self.order
        first = min(k, x.shape[-1])
        context = np.zeros(x.shape[:-1], dtype=np.int64)
        for j in range(first):
            context = context * v + x[..., j]
        with np.errstate(divide="ignore"):
            lead = self.context_probs.reshape(v**first, -1).sum(1)
            out = np.log(lead[context])
            log_t = np.log(self.transitions)
        for i in range(k, x.shape[-1]):
            out = out + log_t[context, x[..., i]]
            context = (context * v + x[..., i]) % v**k
        return out


def stationary(transitions: np.ndarray, v: int, k: int) -> np.ndarray:
    """The stationary law (V^k,) of the chain on k-token contexts (c -> c * V % V^k + w), by the
    eigenvector of eigenvalue 1 of its transition matrix (uniform-free: a Dirichlet row is
    positive almost surely, so the chain is irreducible and aperiodic)."""
    if k == 0:
        return np.ones(1)
    states = v**k
    matrix = np.zeros((states, states))
    nxt = (np.arange(states)[:, None] * v % states) + np.arange(v)[None, :]
    np.add.at(matrix, (np.repeat(np.arange(states), v), nxt.ravel()), transitions.ravel())
    values, vectors = np.linalg.eig(matrix.T)
    pi = np.abs(np.real(vectors[:, np.argmin(np.abs(values - 1))]))
    return pi / pi.sum()


def inverse_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The index i with cdf[i-1] <= u < cdf[i] for each uniform u, one shared cdf (S,)."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), cdf.size - 1)


def inverse_cdf_rows(cdf: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The same with a cdf row per draw: cdf (C, S), rows (...,) into it, uniforms u (...,). A
    vectorised binary search, log2(S) gathers per draw, never a loop over draws."""
    size = cdf.shape[-1]
    flat = cdf.reshape(-1)
    base = rows * size
    lo = np.zeros(u.shape, dtype=np.int64)
    hi = np.full(u.shape, size - 1, dtype=np.int64)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        right = flat[base + mid] <= u
        lo = np.where(active & right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)


class StdlibTextParams(Params):
    length: int = Field(default=64, ge=1, le=100_000)
    """L, the tokens (characters unless `tokens: bpe`) per window."""
    classifier_fraction: float = Field(default=0.2, ge=0, lt=1)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = Field(default=0, ge=0)
    """The seed of the split by document."""
    tokens: Literal["characters", "bpe"] = "characters"
    """characters, or a byte-pair encoding learnt on the real part (the `bpe` extra)."""
    bpe_vocab: int = Field(default=512, ge=2, le=4096)
    """bpe: the most tokens (never fewer than the corpus's distinct characters)."""

    LATER: ClassVar[dict[str, Any]] = {"tokens": "characters", "bpe_vocab": 512}

    @model_validator(mode="after")
    def _fractions(self) -> StdlibTextParams:
        if self.classifier_fraction + self.test_fraction >= 1:
            raise ValueError(
                "classifier_fraction + test_fraction must leave documents for real sets"
            )
        return self


def stdlib_files(root: Path) -> list[Path]:
    """The standard library's .py files in path order, never walking into a skipped folder (the
    site-packages beside it can hold far more files than the library itself)."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED and d != "__pycache__")
        found += [Path(folder, f) for f in files if f.endswith(".py")]
    return sorted(found)


@functools.cache
def stdlib_docstrings() -> tuple[str, ...]:
    """Every docstring (module, class, function) of the standard library's source files, read with
    ast in path order, once per process; test suites, tools and site-packages are skipped."""
    docs = []
    for path in stdlib_files(Path(sysconfig.get_paths()["stdlib"])):
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    docs.append(doc)
    return tuple(docs)


class CharacterCorpus:
    """Documents of text as token windows of L (R, n, L), characters or BPE tokens, split by
    document into disjoint classifier / test / real parts (see the module docstring); built by a
    kind from its documents and its params (length, classifier_fraction, test_fraction, seed,
    tokens, bpe_vocab)."""

    def __init__(self, docs: Sequence[str], params: StdlibTextParams) -> None:
        characters = sorted(set("".join(docs)) | {"\n"})
        fractions = [params.classifier_fraction, params.test_fraction]
        texts = [
            "\n\n".join(docs[i] for i in part)
            for part in partition(len(docs), fractions, params.seed)
        ]
        if params.tokens == "bpe":
            self.pieces, encode = byte_pairs(texts[2], characters, params.bpe_vocab)
        else:
            self.alphabet = self.pieces = characters
            encode = functools.partial(encode_characters, {c: i for i, c in enumerate(characters)})
        self.vocab_size, self.dim = len(self.pieces), params.length
        self.classifier_windows, self.test_windows, self.real_windows = (
            self._windows(encode(text)) for text in texts
        )
        for windows, key in ((self.test_windows, "test_fraction"), (self.real_windows, "seed")):
            if len(windows) == 0:
                raise ConfigError(
                    f"data.params.length: {params.length} tokens leave no window in a part "
                    f"(see {key})"
                )

    def _windows(self, tokens: np.ndarray) -> np.ndarray:
        """A part's tokens cut into non-overlapping windows of L (m, L)."""
        m = len(tokens) // self.dim
        return tokens[: m * self.dim].reshape(m, self.dim)

    def decode(self, x: np.ndarray) -> str:
        """The text of one token sequence (L,)."""
        return "".join(self.pieces[i] for i in x)

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Real sets: n distinct windows of the real part per replicate."""
        rows = np.arange(len(self.real_windows))
        check_fits("data.n_real", n, rows, "real part (windows of data.params.length)")
        return self.real_windows[draw_without_replacement(rows, replicates, n, rng)]

    def sample_test(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Test sets: n distinct windows of the test part per replicate."""
        rows = np.arange(len(self.test_windows))
        check_fits("data.n_test", n, rows, "test part (windows of data.params.length)")
        return self.test_windows[draw_without_replacement(rows, replicates, n, rng)]

    def check_sizes(self, n_real: int, n_test: int) -> None:
        what = "part (windows of data.params.length)"
        check_fits("data.n_real", n_real, np.arange(len(self.real_windows)), f"real {what}")
        check_fits("data.n_test", n_test, np.arange(len(self.test_windows)), f"test {what}")


def encode_characters(code: dict[str, int], text: str) -> np.ndarray:
    """The character tokens of text (len(text),) int64."""
    return np.fromiter((code[c] for c in text), dtype=np.int64, count=len(text))


def byte_pairs(
    text: str, characters: list[str], vocab: int
) -> tuple[list[str], Callable[[str], np.ndarray]]:
    """A byte-pair encoding of at most `vocab` tokens learnt on text (the real part) with the
    `tokenizers` library: its pieces (token i's text; every one of `characters` is one, so any
    part of the corpus encodes exactly) and its encoder, text -> tokens int64."""
    try:
        from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    except ImportError:
        raise ConfigError(
            "data.params.tokens: bpe needs the optional extra 'bpe' "
            "(pip install 'selfconsume[bpe]', which installs tokenizers)"
        ) from None
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(WORDS), behavior="isolated")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        initial_alphabet=characters,
        limit_alphabet=len(characters),
        show_progress=False,
    )
    tokenizer.train_from_iterator([text], trainer=trainer)
    ids = tokenizer.get_vocab()
    pieces = sorted(ids, key=ids.__getitem__)

    def encode(part: str) -> np.ndarray:
        return np.array(tokenizer.encode(part).ids, dtype=np.int64)

    return pieces, encode


@DATA.register("stdlib_text", StdlibTextParams, example=Example({"length": 16}))
class StdlibText(CharacterCorpus):
    """The standard library's docstrings as token windows of L (R, n, L), split by document into
    classifier / test / real parts; params: length, classifier_fraction, test_fraction, seed,
    tokens (characters | bpe), bpe_vocab."""

    def __init__(self, params: StdlibTextParams) -> None:
        docs = stdlib_docstrings()
        if not docs:
            raise ConfigError("data.kind: stdlib_text found no docstring in the standard library")
        super().__init__(docs, params)


class TextFileParams(StdlibTextParams):
    path: str
    """A UTF-8 text file (documents separated by blank lines) or a folder (one file a document)."""


def _decoded(path: Path, data: bytes) -> str:
    """UTF-8 text with Unix line ends (a leading byte-order mark dropped); bad bytes are a
    ConfigError naming the file and the offset of the first one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"data.params.path: {path}: not UTF-8 at byte offset {exc.start} ({exc.reason})"
        ) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def corpus_files(root: Path) -> list[Path]:
    """A folder's files in path order, subfolders too, hidden files and folders skipped."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        found += [Path(folder, name) for name in names if not name.startswith(".")]
    return sorted(found)


def read_documents(path: Path) -> list[str]:
    """A folder's files (hidden ones skipped, in path order, subfolders too), one document each,
    or one file's paragraphs (split at blank lines); at most MAX_CORPUS_BYTES in all."""
    if path.is_dir():
        files = corpus_files(path)
        docs, left = [], MAX_CORPUS_BYTES
        for file in files:
            data = _read(file, left)
            left -= len(data)
            docs.append(_decoded(file, data).strip())
    else:
        text = _decoded(path, _read(path, MAX_CORPUS_BYTES))
        docs = [d.strip() for d in re.split(r"\n[ \t]*\n", text)]
    docs = [d for d in docs if d]
    if not docs:
        raise ConfigError(f"data.params.path: {path}: no text")
    return docs


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        return read_regular(path, max_bytes)
    except OSError as exc:
        raise ConfigError(f"data.params.path: {path}: {exc}") from None


@DATA.register(
    "text_file",
    TextFileParams,
    example=Example(
        lambda folder: {"path": str(write_example_corpus(folder / "corpus.txt")), "length": 16}
    ),
)
class TextFile(CharacterCorpus):
    """A user's UTF-8 corpus as token windows of L (R, n, L), split by document into classifier /
    test / real parts; params: path (a file of blank-line-separated documents, or a folder of one
    document per file), length, classifier_fraction, test_fraction, seed, tokens, bpe_vocab."""

    def __init__(self, params: TextFileParams) -> None:
        super().__init__(read_documents(Path(params.path)), params)


def write_example_corpus(path: Path, documents: int = 60) -> Path:
    """A small corpus of numbered English paragraphs (for examples and tests)."""
    words = [
        "the",
        "model",
        "is",
        "retrained",
        "on",
        "its",
        "own",
        "text",
        "and",
        "the",
        "tails",
        "of",
        "its",
        "law",
        "fade",
        "away",
    ]
    rng = np.random.default_rng(0)
    paragraphs = [
        f"Paragraph {i}: " + " ".join(rng.choice(words, 24)) + "." for i in range(documents)
    ]
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path
