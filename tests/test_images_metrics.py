"""Feature-space image metrics: the Fréchet distance against its closed form, fd of real images far
below fd of noise, the memorisation rate at 1/2 for fresh images and 1 for copies, FLS near 0 for
fresh images and flagging copies, the class histogram, and every group through the run loop."""

from __future__ import annotations

import numpy as np
import pytest

from selfconsume.errors import ConfigError
from selfconsume.metrics import features
from selfconsume.metrics.base import METRICS, MetricContext
from selfconsume.plan import resolve
from selfconsume.rewards import image_classifier
from selfconsume.seeding import Streams
from selfconsume.theory.gaussian import gaussian_w2_sq

R = 8
N_TRAIN = 200


@pytest.fixture(scope="module")
def sets(digits):
    """Per replicate: a training set and fresh images (disjoint halves of a draw of the real pool),
    a test set, copies of the training set (a memorising model) and uniform noise images."""
    pool = digits.sample(R, 2 * N_TRAIN, Streams(0).per_replicate("real", 0))
    test = digits.sample_test(R, N_TRAIN, Streams(0).per_replicate("test", 0))
    rng = np.random.default_rng(1)
    train, fresh = pool[:, :N_TRAIN], pool[:, N_TRAIN:]
    copies = train + 1e-3 * rng.standard_normal(train.shape)
    noise = rng.uniform(-1, 1, train.shape)
    f = image_classifier.data_classifier(digits).features
    return {
        k: f(v)
        for k, v in dict(train=train, fresh=fresh, test=test, copies=copies, noise=noise).items()
    }


def test_frechet_distance_is_the_closed_form_on_the_fitted_moments():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 300, 4)) @ rng.standard_normal((4, 4))
    y = 0.5 + rng.standard_normal((3, 200, 4)) @ rng.standard_normal((4, 4))
    fd = features.frechet_distance(x, y)
    for r in range(3):
        expected = gaussian_w2_sq(
            x[r].mean(0)[None], np.cov(x[r].T)[None], y[r].mean(0), np.cov(y[r].T)
        )[0]
        assert fd[r] == pytest.approx(expected, rel=1e-8)
    np.testing.assert_allclose(features.frechet_distance(y, x), fd, rtol=1e-8)
    np.testing.assert_allclose(features.frechet_distance(x, x), 0, atol=1e-8)


def test_fd_of_real_against_real_is_far_below_fd_of_real_against_noise(sets):
    real = features.frechet_distance(sets["test"], sets["fresh"])
    noise = features.frechet_distance(sets["test"], sets["noise"])
    assert np.all(10 * real < noise)


def test_the_memorisation_rate_is_one_half_for_fresh_images_and_one_for_copies(sets):
    """A fresh image's nearest neighbour among N training and N test images (all exchangeable) is a
    training image with probability 1/2: the mean over replicates is within 4 standard errors."""
    from helpers import z_score

    fresh = features.memorization_rate(sets["train"], sets["test"], sets["fresh"])
    assert z_score(fresh, 0.5) < 4
    copies = features.memorization_rate(sets["train"], sets["test"], sets["copies"])
    np.testing.assert_array_equal(copies, 1.0)


def test_the_bandwidth_fit_is_the_maximum_likelihood_variance():
    """With one centre and the origin's weight near 0, EM's fixed point is the closed-form MLE of
    an isotropic variance: the mean squared distance to the centre over the dimension."""
    rng = np.random.default_rng(0)
    points, centre = rng.standard_normal((2, 500, 3)) * 2.0, np.zeros((2, 1, 3))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(features, "FLS_ORIGIN_WEIGHT", 1e-12)
        var = features.fit_bandwidths(points, centre)
    np.testing.assert_allclose(var[:, 0], (points**2).sum(-1).mean(1) / 3, rtol=1e-6)


def test_fls_is_near_zero_for_fresh_images_and_flags_copies(sets):
    fresh = features.fls_scores(sets["train"], sets["test"], sets["fresh"])
    copies = features.fls_scores(sets["train"], sets["test"], sets["copies"])
    noise = features.fls_scores(sets["train"], sets["test"], sets["noise"])
    # the reference implementation warns of memorisation beyond 1000 (fls) and -1000 (gap)
    assert np.all(copies["fls"] > 1000) and np.all(copies["fls_gap"] < -1000)
    assert np.all(np.abs(fresh["fls"]) < 0.2 * noise["fls"])
    assert np.all(np.abs(fresh["fls_gap"]) < 100) and np.all(np.abs(noise["fls_gap"]) < 100)


class Fixed:
    """A stand-in model whose samples are given images (R, n, dim)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def sample(self, n: int, rng, generation: int) -> np.ndarray:
        return self.x[:, :n]


def test_the_class_histogram_counts_predicted_labels(digits):
    x, y = digits.test_split()
    threes = np.broadcast_to(x[y == 3][:40], (2, 40, 64))
    mixed = np.stack([x[:40], x[40:80]])
    ctx = MetricContext(Fixed(np.concatenate([threes, mixed])), digits, mixed, mixed, 0, Streams(0))
    out = METRICS.get("classes").obj(ctx)
    hist = np.stack([out[f"class_hist_{j}"] for j in range(10)], axis=1)
    np.testing.assert_allclose(hist.sum(1), 1)
    clf = image_classifier.data_classifier(digits)
    predicted = clf.proba(ctx.samples).argmax(-1)
    np.testing.assert_allclose(hist, (predicted[..., None] == np.arange(10)).mean(1))
    assert np.all(hist[:2, 3] >= 1 - 40 * (1 - clf.accuracy))  # nearly all 3s
    p = hist[2:]
    entropy = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0).sum(1)
    np.testing.assert_allclose(out["class_entropy"][2:], entropy)
    assert np.all(out["class_entropy"][:2] < out["class_entropy"][2:])
    np.testing.assert_array_equal(out["classifier_accuracy"], clf.accuracy)


def test_image_metrics_need_labelled_images():
    raw = {
        "name": "fd-2d",
        "data": {"kind": "eight_gaussians", "n_real": 20, "n_test": 20},
        "model": {"kind": "gmm"},
        "metrics": ["fd"],
    }
    with pytest.raises(ConfigError, match=r"metrics: fd needs labelled image data"):
        resolve(raw)


def test_every_group_through_the_loop_flags_the_memorising_kde(tmp_path):
    from helpers import metric, run_raw

    groups = ["fd", "feature_prd", "fls", "classes", "memorization"]
    ids = {}
    for h in (1e-3, 0.5):
        raw = {
            "name": f"kde-{h}",
            "replicates": 3,
            "generations": 1,
            "data": {"kind": "digits", "n_real": 100, "n_test": 100},
            "model": {"kind": "kde", "params": {"bandwidth": h}},
            "metrics": groups,
        }
        store, (ids[h],) = run_raw(raw, tmp_path / "s.sqlite")
    names = {m for _, m, _ in store.metric_arrays(ids[1e-3])}
    expected = {"fd", "precision", "recall", "density", "coverage", "fls", "fls_gap"}
    expected |= {"class_entropy", "confidence_mean", "classifier_accuracy", "memorization"}
    assert expected | {f"class_hist_{j}" for j in range(10)} <= names
    np.testing.assert_array_equal(metric(store, ids[1e-3], "memorization"), 1.0)
    gap_copy, gap_blur = metric(store, ids[1e-3], "fls_gap"), metric(store, ids[0.5], "fls_gap")
    assert np.all(gap_copy < -1000) and np.all(gap_copy < gap_blur)
