"""The text presets at quick scale: text-accumulate (replace vs accumulate), text-curated
(Bradley-Terry with a lexicon reward, replace vs mix 1/2) and text-collapse (a transformer
fine-tuned on its own samples, 0 % vs 10 % real) run from the CLI, every arm from the same
generation-0 model, and the report draws Shumailov's histograms for every arm."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import metric
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.store.reader import StoreReader
from selfconsume.store.sqlite import Store


@pytest.mark.slow
@pytest.mark.parametrize(
    ("preset", "arms", "names"),
    [
        ("text-accumulate", 3, ["perplexity", "p0_perplexity_q99", "support_lost_2"]),
        ("text-curated", 2, ["reward_mean", "distinct_2", "p0_perplexity"]),
        ("text-collapse", 2, ["perplexity", "p0_perplexity_q99", "support_lost_3"]),
    ],
)
def test_a_text_preset_runs_quick_and_the_report_draws_its_histograms(
    tmp_path, preset, arms, names
):
    from selfconsume.report.html import load_experiments
    from selfconsume.report.text import p0_perplexity_histograms

    store_path = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, ["run", preset, "--quick", "--store", str(store_path)])
    assert result.exit_code == 0, result.output
    store = Store(store_path)
    runs = store.runs()
    assert len(runs) == arms and all(r.status == "done" for r in runs)
    for name in names:
        values = [metric(store, r.run_id, name) for r in runs]
        assert all(np.isfinite(v).all() for v in values), name
        np.testing.assert_array_equal(values[0][0], values[-1][0])  # one generation 0 for all
    with StoreReader(store_path) as reader:
        (exp,) = load_experiments(reader)
        figures = p0_perplexity_histograms(exp, tmp_path)
    assert all(f.path.exists() for f in figures) and len(figures) == 2


def test_text_collapse_keeps_ten_percent_real_beside_the_same_sample_count():
    """text-collapse's 10 % arm trains on the real set plus as many samples as the 0 % arm
    trains on, so one tenth of its training set is real; both arms share generation 0 (same
    data, model and seed under common random numbers) and fine-tune it (warm start)."""
    from selfconsume.loop.schemes import scheme_of
    from selfconsume.plan import load

    replace, mix = load("text-collapse")
    n_real = mix.data.n_real
    kept = scheme_of(mix.scheme, n_real)
    assert n_real / (n_real + kept.n_synthetic) == pytest.approx(0.1)
    assert scheme_of(replace.scheme, n_real).n_synthetic == kept.n_synthetic
    assert replace.model == mix.model and replace.data == mix.data
    assert replace.common_random_numbers and replace.model.warm_start
