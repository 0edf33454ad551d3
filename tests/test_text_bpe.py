"""`tokens: bpe` (the `bpe` extra): a byte-pair encoding of a text corpus learnt on its real part
only, decoded exactly; without the extra it is bad input naming the key and the extra."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.data.split import partition
from selfconsume.data.text import Characters, TextFile, TextFileParams
from selfconsume.errors import ConfigError

FRACTIONS = (0.2, 0.2)


def corpus(folder, docs: list[str]) -> TextFileParams:
    """A folder of one file per document, read back with BPE tokens (length 8, 120 tokens)."""
    folder.mkdir(exist_ok=True)
    for i, doc in enumerate(docs):
        (folder / f"{i:03d}.txt").write_text(doc, encoding="utf-8")
    return TextFileParams(path=str(folder), length=8, tokens="bpe", bpe_vocab=120)


def documents(n: int) -> list[str]:
    words = ["the", "model", "retrained", "on", "its", "own", "text", "fades", "tails"]
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, 12 + i % 7)) + f". ({i})" for i in range(n)]


def part_texts(docs: list[str], seed: int = 0) -> list[str]:
    """The classifier, test and real parts' texts, as the corpus joins them."""
    return ["\n\n".join(docs[i] for i in part) for part in partition(len(docs), FRACTIONS, seed)]


def test_bpe_windows_decode_to_the_parts_text_exactly(tmp_path):
    pytest.importorskip("tokenizers")
    docs = documents(80)
    source = TextFile(corpus(tmp_path / "docs", docs))
    characters = set("".join(docs)) | {"\n"}
    assert len(characters) < source.vocab_size <= 120  # merges learnt beyond the characters
    assert characters <= set(source.pieces) and not isinstance(source, Characters)
    parts = (source.classifier_windows, source.test_windows, source.real_windows)
    for windows, text in zip(parts, part_texts(docs), strict=True):
        decoded = source.decode(windows.ravel())
        assert text.startswith(decoded) and len(text) - len(decoded) < 8 * 10  # < L tokens cut


def test_bpe_is_learnt_on_the_real_part_only(tmp_path):
    pytest.importorskip("tokenizers")
    docs = documents(80)
    classifier, test, _ = partition(len(docs), FRACTIONS, 0)
    changed = list(docs)
    for i in [*classifier, *test]:  # a word only the held-out parts hold, many times
        changed[i] = " ".join(["zyzzyva"] * 40)
    a = TextFile(corpus(tmp_path / "a", docs))
    b = TextFile(corpus(tmp_path / "b", changed))
    merged = [[p for p in s.pieces if len(p) > 1] for s in (a, b)]
    # the same merges in the same order, learnt from the same real part (b's extra characters
    # take the place of a's last merges in the vocabulary)
    assert merged[1] == merged[0][: len(merged[1])] and len(merged[1]) > 10
    assert not any("zy" in p for p in merged[1])  # none from the held-out parts' word
    c = TextFile(corpus(tmp_path / "c", docs))
    assert c.pieces == a.pieces  # deterministic


def test_bpe_without_its_extra_is_one_line_naming_the_key_and_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(ConfigError) as info:
        TextFile(corpus(tmp_path / "docs", documents(20)))
    message = str(info.value)
    assert "\n" not in message and "data.params.tokens" in message
    assert "selfconsume[bpe]" in message
    raw = {
        "name": "bpe-missing",
        "replicates": 1,
        "generations": 1,
        "data": {"kind": "stdlib_text", "n_real": 10, "n_test": 10, "params": {"tokens": "bpe"}},
        "model": {"kind": "ngram"},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", str(path), "--store", str(store)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "selfconsume[bpe]" in lines[0] and not store.exists()


def test_an_ngram_runs_on_bpe_tokens_and_character_rewards_refuse_them(tmp_path):
    pytest.importorskip("tokenizers")
    from helpers import metric

    from selfconsume.store.sqlite import Store

    raw = {
        "name": "bpe-run",
        "replicates": 2,
        "generations": 1,
        "data": {
            "kind": "stdlib_text",
            "n_real": 50,
            "n_test": 50,
            "params": {"length": 16, "tokens": "bpe", "bpe_vocab": 256},
        },
        "model": {"kind": "ngram", "params": {"order": 2, "smoothing": "kneser_ney"}},
        "metrics": ["text"],
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", str(path), "--store", str(store)])
    assert result.exit_code == 0, result.output
    (run,) = Store(store).runs()
    assert np.isfinite(metric(Store(store), run.run_id, "perplexity")).all()
    curated = {
        **raw,
        "curation": {
            "kind": "bradley_terry",
            "params": {"k": 2},
            "reward": {"kind": "lexicon", "params": {"words": ["the"]}},
        },
    }
    path.write_text(yaml.safe_dump(curated))
    result = CliRunner().invoke(app, ["run", str(path), "--store", str(tmp_path / "t.sqlite")])
    assert result.exit_code == 2 and "tokens: characters" in result.output, result.output
