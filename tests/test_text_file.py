"""`text_file`: a user's UTF-8 corpus (a file of blank-line-separated documents, or a folder of
one document per file) as character windows split by document into disjoint parts; bad bytes are
bad input naming the file and the byte offset."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.data.text import TextFile, TextFileParams
from selfconsume.errors import ConfigError


def corpus(n: int) -> list[str]:
    return [f"<{i}> " + " ".join(["word"] * (3 + i % 5)) + f" </{i}>" for i in range(n)]


def doc_ids(source: TextFile, windows: np.ndarray) -> set[int]:
    """The documents whose marker a part's windows show."""
    text = "".join(source.decode(w) for w in windows)
    return {int(m) for m in re.findall(r"<(\d+)>", text)}


def test_a_file_splits_at_blank_lines_into_disjoint_parts(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\r\n\r\n".join(corpus(200)) + "\n \n\n", encoding="utf-8")
    source = TextFile(TextFileParams(path=str(path), length=8, seed=1))
    parts = [source.classifier_windows, source.test_windows, source.real_windows]
    ids = [doc_ids(source, w) for w in parts]
    assert all(ids) and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert abs(len(ids[2]) - 120) <= 8  # 60% of the documents, give or take the cut markers
    assert "\r" not in source.alphabet and source.vocab_size == len(
        set("".join(corpus(200))) | {"\n"}
    )
    x = source.sample(3, 10, np.random.default_rng(0))
    assert x.shape == (3, 10, 8) and x.dtype == np.int64


def test_a_folder_is_one_document_per_file_hidden_ones_skipped(tmp_path):
    for i, doc in enumerate(corpus(30)):
        (tmp_path / "docs" / f"sub{i % 3}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "docs" / f"sub{i % 3}" / f"{i:03d}.txt").write_text(doc + "\n\n" + doc)
    (tmp_path / "docs" / ".hidden").write_bytes(b"\xff never read")
    source = TextFile(TextFileParams(path=str(tmp_path / "docs"), length=4))
    every = set().union(
        *(
            doc_ids(source, w)
            for w in (source.classifier_windows, source.test_windows, source.real_windows)
        )
    )
    assert every <= set(range(30)) and len(every) >= 27


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("ok text\n\nthen \xe9t\xe9".encode("latin-1"), "not UTF-8 at byte offset 14"),
        (b"\n\n \n", "no text"),
    ],
)
def test_bad_corpus_exits_2_with_one_line_naming_the_file(tmp_path, content, needle):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    config = tmp_path / "run.yaml"
    raw = {
        "name": "bad",
        "replicates": 2,
        "generations": 1,
        "data": {"kind": "text_file", "n_real": 2, "n_test": 2, "params": {"path": str(path)}},
        "model": {"kind": "ngram"},
        "metrics": ["text"],
    }
    config.write_text(yaml.safe_dump(raw))
    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", str(config), "--store", str(store)])
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert str(path) in lines[0] and needle in lines[0] and "data.params.path" in lines[0]
    assert not store.exists()


def test_a_missing_corpus_names_the_key():
    with pytest.raises(ConfigError, match="^data.params.path: .*nowhere.txt: file not found"):
        TextFile(TextFileParams(path="/nowhere/nowhere.txt"))
