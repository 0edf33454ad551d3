"""The image report: grids of p_t's samples per arm in the talk's layout (real images above), the
feature-metric curves and class histograms, from a real digits run; a 2-D report keeps its set."""

from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import run_raw

from selfconsume.config import expand_sweep
from selfconsume.loop.run import SNAPSHOT_IMAGE_REPLICATES, SNAPSHOT_IMAGES
from selfconsume.plan import build, resolve
from selfconsume.report.base import slug
from selfconsume.report.html import load_experiments, write_report
from selfconsume.report.images import TILE, grid_figure, mosaic
from selfconsume.store.reader import StoreReader
from selfconsume.store.sqlite import Store

NAME = "digits <i>&amp;</i> kde"
DIGITS = {
    "name": NAME,
    "seed": 2,
    "replicates": 2,
    "generations": 3,
    "data": {"kind": "digits", "n_real": 40, "n_test": 30},
    "model": {"kind": "kde", "params": {"bandwidth": 0.3}},
    "scheme": {"kind": "replace"},
    "metrics": ["fd", "feature_prd", "classes"],
    "sweep": {"scheme": [{"kind": "mix", "lam": 0.5}, {"kind": "replace"}]},
}
IMAGE_FIGURES = ("images", "image-metrics", "class-histograms")


@pytest.fixture(scope="module")
def digits_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "store.sqlite"
    store, _ = run_raw(DIGITS, path)
    store.close()
    return path


def test_mosaic_places_image_k_at_row_k_div_side_and_column_k_mod_side():
    shape = (1, 2, 3)
    x = np.linspace(-1, 1, 5)[:, None] * np.ones((5, 6))  # image k is constant
    grid = mosaic(x, shape, side=3)
    assert grid.shape == (3 * 3 - 1, 3 * 4 - 1, 1)
    for k in range(9):
        r, c = divmod(k, 3)
        cell = grid[3 * r : 3 * r + 2, 4 * c : 4 * c + 3, 0]
        expected = (x[k, 0] + 1) / 2 if k < 5 else 0.5  # blank past the images given
        assert np.all(cell == expected), k


def test_image_snapshots_are_the_evaluation_samples(digits_store):
    """The stored tile is the first images of the n_test samples the metrics drew (no new draw)."""
    with StoreReader(digits_store) as store:
        record = store.runs()[0]
        snaps = store.samples(record.run_id)
    assert sorted(snaps) == list(range(DIGITS["generations"] + 1))
    assert {s.shape for s in snaps.values()} == {(SNAPSHOT_IMAGE_REPLICATES, SNAPSHOT_IMAGES, 64)}
    cfg = resolve(record.config)
    plan = build(cfg)
    store = Store(digits_store)
    generation, payload = store.load_checkpoint(record.run_id)
    store.close()
    plan.model.load_state_dict(payload["model"])
    t = generation
    drawn = plan.model.sample(cfg.data.n_test, plan.streams.per_replicate("eval", t), t)
    np.testing.assert_array_equal(snaps[t], drawn[:SNAPSHOT_IMAGE_REPLICATES, :SNAPSHOT_IMAGES])


def test_digits_report_has_the_image_figures_in_the_talks_layout(digits_store, tmp_path):
    with StoreReader(digits_store) as store:
        (exp,) = load_experiments(store)
        fig, layout = grid_figure(exp)
    assert layout.rows == ["real data", "fully synthetic", "λ = 0.5"]
    assert layout.generations == [0, 1, 2, 3]  # evenly spaced, first and last included
    axes = np.array(fig.axes).reshape(len(layout.rows), len(layout.generations))
    side = TILE * 9 - 1  # 8 x 8 digits with a line between them
    for ax in axes.flat:
        (image,) = ax.get_images()
        assert image.get_array().shape == (side, side)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == layout.rows
    assert [ax.get_title() for ax in axes[1]] == ["t = 0", "t = 1", "t = 2", "t = 3"]
    plt.close(fig)

    page = write_report(digits_store, tmp_path / "report")
    text = page.read_text()
    for suffix in IMAGE_FIGURES:
        png = tmp_path / "report" / f"{slug(NAME)}-{suffix}.png"
        assert png.stat().st_size > 0 and png.with_suffix(".svg").stat().st_size > 0
        assert f'src="{png.name}"' in text
    assert "<i>" not in text and html.escape(f"{NAME}: images across retrainings") in text
    assert "class_hist_0" not in text  # the class shares are drawn as histograms only


def test_a_2d_report_keeps_its_figures(tmp_path):
    raw = {
        "name": "moons",
        "replicates": 2,
        "generations": 2,
        "data": {"kind": "two_moons", "n_real": 50, "n_test": 40},
        "model": {"kind": "kde"},
        "metrics": ["mmd", "prd"],
    }
    store, (run_id,) = run_raw(raw, tmp_path / "store.sqlite")
    snaps = store.samples(run_id)
    store.close()
    cfg = resolve(next(iter(expand_sweep(raw, None))))
    assert {s.shape for s in snaps.values()} == {(2, min(2000, cfg.data.n_test), 2)}
    write_report(tmp_path / "store.sqlite", tmp_path / "report")
    made = {p.name for p in (tmp_path / "report").glob("*.png")}
    assert made == {"moons-metrics.png", "moons-scatter.png"}
