"""The report: safe with any run name, read-only, never imports user code, arms labelled in the
talk's words, and its theory tables and reference curves computed from each run's stored config."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from helpers import record, run_raw
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.errors import ConfigError
from selfconsume.report.html import load_experiments, write_report
from selfconsume.report.labels import run_labels, talk_order
from selfconsume.store.reader import StoreReader
from selfconsume.store.sqlite import Store
from selfconsume.theory import gaussian as theory

WARMUP = {
    "name": "warmup",
    "seed": 1,
    "replicates": 400,
    "generations": 4,
    "data": {"kind": "gaussian", "n_real": 5, "n_test": 2, "params": {"std": 2.0}},
    "model": {"kind": "gaussian"},
    "metrics": ["gaussian_params", "w2"],
}
ALLOWED_ATTRIBUTES = {"lang", "charset", "name", "content", "href", "id", "src", "alt", "class"}


class Page(HTMLParser):
    """Collects the tags, attribute names and the section headings of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.sources: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}
        self.sources += [value for name, value in attrs if name in ("src", "href") and tag != "a"]
        self.sources += [
            v for n, v in attrs if tag == "a" and n == "href" and not v.startswith("#")
        ]
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag):
        self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data)


def parse(page) -> Page:
    parser = Page()
    parser.feed(page.read_text())
    return parser


def rename(store_path, name: str) -> None:
    """Give every run of a store another experiment name, in its row and its stored config."""
    db = sqlite3.connect(store_path)
    for run_id, text in db.execute("SELECT run_id, config_json FROM runs").fetchall():
        config = json.loads(text) | {"name": name}
        db.execute(
            "UPDATE runs SET name=?, config_json=? WHERE run_id=?",
            (name, json.dumps(config), run_id),
        )
    db.commit()
    db.close()


def files_under(folder) -> set:
    """Files under a folder, less SQLite's shared-memory and WAL files (any reader may add them)."""
    return {p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(("-shm", "-wal"))}


@pytest.mark.parametrize(
    "name",
    [
        "../../escaped",
        "ABSOLUTE",
        'x" onerror="alert(1)',
        "<script>alert(1)</script>",
        "n" * 200,  # the longest a config may give (a longer one is a crafted store's)
        ".",
    ],
)
def test_any_run_name_stays_inside_out_and_escaped(tmp_path, name):
    if name == "ABSOLUTE":
        name = str(tmp_path / "elsewhere" / "figure")
    store, _ = run_raw(WARMUP | {"replicates": 20, "generations": 2}, tmp_path / "store.sqlite")
    store.close()
    rename(tmp_path / "store.sqlite", name)  # any name a config may hold
    out = tmp_path / "a" / "b" / "report"
    before = files_under(tmp_path)
    write_report(tmp_path / "store.sqlite", out)
    new = files_under(tmp_path) - before
    assert new and all(out in p.parents for p in new), sorted(map(str, new))
    page = parse(out / "index.html")
    assert page.attributes <= ALLOWED_ATTRIBUTES and "script" not in page.tags
    assert page.headings == [name]
    for source in page.sources:
        assert (out / source).is_file(), source


def test_report_never_imports_user_code(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "sc_user_reward.py").write_text(
        "import os, pathlib\n"
        "pathlib.Path(os.environ['SC_MARKER']).write_text('top-level code ran')\n"
        "def reward(x):\n    return x[:, 0].astype(float)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SC_MARKER", str(marker))
    raw = {
        "name": "curated-callable",
        "replicates": 5,
        "generations": 2,
        "data": {"kind": "discrete", "n_real": 50, "params": {"probs": [0.5, 0.3, 0.2]}},
        "model": {"kind": "discrete"},
        "curation": {
            "kind": "bradley_terry",
            "k": 2,
            "reward": {"kind": "callable", "params": {"target": "sc_user_reward:reward"}},
        },
        "metrics": ["mass", "reward"],
    }
    store, _ = run_raw(raw, tmp_path / "store.sqlite")
    store.close()
    assert marker.exists()  # the run itself did import it
    marker.unlink()
    monkeypatch.delitem(sys.modules, "sc_user_reward")
    page = write_report(tmp_path / "store.sqlite", tmp_path / "report")
    assert not marker.exists() and "sc_user_reward" not in sys.modules
    assert "reward under curated retraining" in page.read_text()


def one_line_exit_2(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


def test_report_refuses_missing_empty_and_foreign_stores_without_writing(tmp_path):
    runner = CliRunner()
    missing = tmp_path / "missing.sqlite"
    assert "no such store" in one_line_exit_2(
        runner.invoke(app, ["report", "--store", str(missing), "--out", str(tmp_path / "r")])
    )
    assert not missing.exists() and not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="no such store"):
        StoreReader(missing)
    assert not missing.exists()
    blank = tmp_path / "blank.sqlite"
    blank.touch()  # an empty file is an empty SQLite database: a writer would add tables to it
    assert "not a selfconsume store" in one_line_exit_2(
        runner.invoke(app, ["report", "--store", str(blank), "--out", str(tmp_path / "r")])
    )
    assert blank.stat().st_size == 0
    assert "--out" in one_line_exit_2(
        runner.invoke(app, ["report", "--store", str(blank), "--out", str(blank)])
    )
    empty = tmp_path / "empty.sqlite"
    Store(empty).close()
    assert "no runs" in one_line_exit_2(
        runner.invoke(app, ["report", "--store", str(empty), "--out", str(tmp_path / "r")])
    )


def test_report_leaves_the_store_unchanged(tmp_path):
    store, _ = run_raw(WARMUP | {"replicates": 20, "generations": 2}, tmp_path / "store.sqlite")
    store.close()
    digest = hashlib.sha256((tmp_path / "store.sqlite").read_bytes()).hexdigest()
    write_report(tmp_path / "store.sqlite", tmp_path / "report")
    assert hashlib.sha256((tmp_path / "store.sqlite").read_bytes()).hexdigest() == digest


def labelled(configs: list[dict]) -> list[str]:
    records = [record(c, i) for i, c in enumerate(configs)]
    return run_labels([records[i] for i in talk_order(records)])


def test_arms_are_labelled_and_ordered_as_in_the_talk():
    data = {"kind": "discrete", "n_real": 10, "params": {"probs": [0.5, 0.5]}}
    base = {"name": "s", "data": data, "model": {"kind": "discrete"}}
    schemes = [{"kind": "mix", "lam": 0.0}, {"kind": "replace"}, {"kind": "mix", "lam": 0.5}]
    configs = [base | {"scheme": s} for s in schemes]
    assert labelled(configs) == ["fully synthetic", "λ = 0.5", "λ = 0 (real only)"]
    reward = {"kind": "table", "params": {"values": [0.0, 1.0]}}
    curation = {"kind": "bradley_terry", "k": 4.0, "beta": 1.0, "reward": reward}
    curated = [
        base | {"scheme": s, "curation": curation | {"k": k}}
        for k in (2.0, 4.0)
        for s in schemes[1:]
    ]
    assert labelled(curated) == [
        "only curated synthetic, K = 2",
        "only curated synthetic, K = 4",
        "real & curated synthetic (λ = 0.5), K = 2",
        "real & curated synthetic (λ = 0.5), K = 4",
    ]
    warmup = [
        {
            "name": "w",
            "data": {"kind": "gaussian", "n_real": n},
            "model": {"kind": "gaussian", "params": {"estimator": e}},
        }
        for n in (10, 100)
        for e in ("unbiased", "mle")
    ]
    assert labelled(warmup) == [  # n_synthetic, resolved to n_real, differs too: named
        "fully synthetic, n = 10, unbiased",
        "fully synthetic, n = 10, MLE",
        "fully synthetic, n = 100, unbiased",
        "fully synthetic, n = 100, MLE",
    ]


def test_theory_table_uses_each_runs_stored_setting(tmp_path):
    raw = WARMUP | {
        "sweep": {"data.n_real": [5, 20], "model.params.estimator": ["unbiased", "mle"]}
    }
    store, _ = run_raw(raw, tmp_path / "store.sqlite")
    from selfconsume.report.warmup import warmup_theory

    (exp,) = load_experiments(store)
    rows = warmup_theory(exp)
    assert {r.quantity for r in rows} == {"E[σ_t]", "E[σ_t²]", "E[(μ_t − μ)²]", "E[W₂²]"}
    assert len(rows) == 4 * 4 * 3  # runs x quantities x generations (1, 2, 4)
    for r in rows:
        n, est = (5 if "n = 5" in r.run else 20), ("mle" if "MLE" in r.run else "unbiased")
        if r.quantity == "E[σ_t]":
            assert r.theory == pytest.approx(theory.expected_sigma(r.generation, n, 2.0, est))
        assert abs(r.z) < 4.5, r


def test_mixed_reference_curves_use_each_runs_own_n(tmp_path):
    raw = WARMUP | {
        "replicates": 20,
        "scheme": {"kind": "mix", "lam": 0.5},
        "sweep": {"data.n_real": [4, 40]},
    }
    store, _ = run_raw(raw, tmp_path / "store.sqlite")
    from selfconsume.report.warmup import _warmup_runs, mixed_variance_figure

    (exp,) = load_experiments(store)
    fig = mixed_variance_figure(_warmup_runs(exp, "mix"))
    references = {
        line.get_label(): line.get_ydata()
        for line in fig.axes[1].lines
        if "theory" in line.get_label()
    }
    gens = np.arange(WARMUP["generations"] + 1)
    for n in (4, 40):
        expected = theory.expected_sigma(gens, n, 2.0, "unbiased")
        np.testing.assert_allclose(references[f"fully synthetic (theory, n = {n})"], expected)


def test_covariance_table_and_figure_for_a_d_dimensional_gaussian(tmp_path):
    from selfconsume.report.warmup import covariance_collapse, covariance_theory

    raw = WARMUP | {
        "replicates": 1500,
        "data": {"kind": "gaussian", "n_real": 12, "n_test": 2, "params": {"dim": 3}},
        "sweep": {"model.params.estimator": ["unbiased", "mle"]},
    }
    store, _ = run_raw(raw, tmp_path / "store.sqlite")
    (exp,) = load_experiments(store)
    rows = covariance_theory(exp)
    assert {r.quantity for r in rows} == {"E[log det Σ_t]", "E[tr Σ_t]", "E‖μ_t − μ‖²"}
    assert all(abs(r.z) < 4.5 for r in rows), rows
    mle = [r for r in rows if "MLE" in r.run and r.quantity == "E[tr Σ_t]"]
    assert all(r.theory == pytest.approx(3 * (11 / 12) ** (r.generation + 1)) for r in mle)
    (figure,) = covariance_collapse(exp, tmp_path)
    assert figure.path.is_file() and figure.svg.is_file()


def test_worker_processes_draw_the_same_report_and_pass_back_what_they_skipped(tmp_path):
    """Two processes drawing the experiments write the page, figures and skipped-run lines that
    one process writes; a run whose metrics cannot be read is skipped, not the report."""
    path = tmp_path / "store.sqlite"
    for name in ("warmup", "damaged", "mixed"):
        store, ids = run_raw(WARMUP | {"name": name, "replicates": 20, "generations": 2}, path)
        store.close()
        if name == "damaged":
            damaged = ids[0]
            db = sqlite3.connect(path)
            db.execute("UPDATE metrics SET value=x'00' WHERE run_id=? AND generation=1", ids)
            db.commit()
            db.close()
    pages, figures, skipped = [], [], []
    for workers in (1, 2):
        problems: list[str] = []
        out = tmp_path / f"report-{workers}"
        page = write_report(path, out, problems, workers)
        pages.append(page.read_text().split("UTC</p>", 1)[1])  # less the time stamp
        figures.append({p.name: p.read_bytes() for p in out.glob("*.png")})
        skipped.append(problems)
        assert parse(page).headings == ["warmup", "mixed"]
    assert pages[0] == pages[1] and figures[0] == figures[1] and figures[0]
    assert skipped[0] == skipped[1] and len(skipped[0]) == 1 and damaged in skipped[0][0]
