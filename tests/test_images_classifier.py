"""The data's CNN classifier: held-out accuracy on digits, trained once then loaded from the cache,
retrained (to the same weights) when the cache file is bad, and the classifier_confidence reward on
images (max confidence, a target class, their logs)."""

from __future__ import annotations

import numpy as np
import pytest

from selfconsume.data.base import DATA
from selfconsume.errors import ConfigError
from selfconsume.rewards import image_classifier
from selfconsume.rewards.base import build_reward
from selfconsume.seeding import Streams


def test_the_digits_cnn_is_at_least_97_percent_accurate_on_its_held_out_split(digits):
    clf = image_classifier.data_classifier(digits)
    x_test, y_test = digits.test_split()
    assert clf.accuracy == (clf.proba(x_test).argmax(-1) == y_test).mean()
    assert clf.accuracy >= 0.97
    assert clf.features(x_test[:5]).shape == (5, image_classifier.ARCH["features"])
    proba = clf.proba(digits.sample(2, 7, np.random.default_rng(0)))
    assert proba.shape == (2, 7, 10) and np.allclose(proba.sum(-1), 1)


def test_it_is_trained_once_then_loaded_from_the_cache(digits, cache, monkeypatch):
    monkeypatch.setattr(image_classifier, "_LOADED", {})
    first = image_classifier.data_classifier(digits)
    assert (cache / f"classifier-{image_classifier.cache_key(digits, 0)}.npz").is_file()
    monkeypatch.setattr(image_classifier, "_LOADED", {})

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of loading the cache")

    monkeypatch.setattr(image_classifier, "train", no_training)
    loaded = image_classifier.data_classifier(digits)
    assert loaded is not first and loaded.accuracy == first.accuracy
    x = digits.test_split()[0]
    np.testing.assert_array_equal(loaded.proba(x), first.proba(x))


@pytest.mark.slow
def test_a_bad_cache_file_is_retrained_to_the_same_weights(digits, cache, monkeypatch):
    reference = image_classifier.data_classifier(digits)
    path = cache / f"classifier-{image_classifier.cache_key(digits, 0)}.npz"
    keep = path.read_bytes()
    path.write_bytes(b"not an npz")
    calls = []
    real_train = image_classifier.train

    def counted(*args, **kwargs):
        calls.append(1)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(image_classifier, "_LOADED", {})
    monkeypatch.setattr(image_classifier, "train", counted)
    try:
        again = image_classifier.data_classifier(digits)
    finally:
        path.write_bytes(keep)
    x = digits.test_split()[0]
    assert calls == [1]
    np.testing.assert_array_equal(again.proba(x), reference.proba(x))  # deterministic training


def test_the_cache_key_changes_with_the_data_split_and_the_seed(digits):
    other = DATA.make("digits", {"seed": 1})
    keys = {
        image_classifier.cache_key(digits, 0),
        image_classifier.cache_key(other, 0),
        image_classifier.cache_key(digits, 1),
    }
    assert len(keys) == 3
    assert image_classifier.cache_key(digits, 0) == image_classifier.cache_key(
        DATA.make("digits"), 0
    )


def test_the_reward_is_the_cnn_confidence_its_target_class_and_their_logs(digits):
    clf = image_classifier.data_classifier(digits)
    x = digits.sample(2, 20, Streams(0).per_replicate("real", 0))
    proba = clf.proba(x)
    max_log = build_reward("classifier_confidence", {}, digits)(x)
    np.testing.assert_allclose(max_log, np.log(proba.max(-1)))
    prob3 = build_reward("classifier_confidence", {"target": 3, "output": "prob"}, digits)(x)
    np.testing.assert_allclose(prob3, proba[..., 3])
    log3 = build_reward("classifier_confidence", {"target": 3, "classifier": "cnn"}, digits)(x)
    np.testing.assert_allclose(log3, np.log(np.maximum(proba[..., 3], 1e-12)))
    with pytest.raises(ConfigError, match=r"target: class 10 not in"):
        build_reward("classifier_confidence", {"target": 10}, digits)


def test_the_target_class_reward_is_high_on_images_of_that_class(digits):
    """On real test images the reward for class 3 averages at least the accuracy's share on 3s
    and at most the error rate elsewhere (a wrong class in the reward would fail this)."""
    x, y = digits.test_split()
    r = build_reward("classifier_confidence", {"target": 3, "output": "prob"}, digits)(x[None])[0]
    error = 1 - image_classifier.data_classifier(digits).accuracy
    assert r[y == 3].mean() > 1 - 10 * error and r[y != 3].mean() < 10 * error


def test_the_cnn_needs_labelled_images(tmp_path):
    gaussians = DATA.make("eight_gaussians")
    with pytest.raises(ConfigError, match=r"classifier: cnn needs labelled image data"):
        build_reward("classifier_confidence", {"classifier": "cnn"}, gaussians)
    auto = build_reward("classifier_confidence", {"n_train": 200}, gaussians)  # logistic
    assert auto(gaussians.modes[None]).shape == (1, 8)
    np.savez(tmp_path / "u.npz", x=np.random.default_rng(0).random((20, 4, 4)))
    unlabelled = DATA.make("image_file", {"path": str(tmp_path / "u.npz")})
    with pytest.raises(ConfigError, match="needs labelled data"):
        build_reward("classifier_confidence", {}, unlabelled)


def test_a_curated_run_on_digits_scores_with_the_cnn(tmp_path):
    from helpers import metric, run_raw

    raw = {
        "name": "curated-digits",
        "replicates": 2,
        "generations": 2,
        "data": {"kind": "digits", "n_real": 60, "n_test": 60},
        "model": {"kind": "kde", "params": {"bandwidth": 0.2}},
        "scheme": {"kind": "mix", "lam": 0.5},
        "curation": {
            "kind": "bradley_terry",
            "k": 4,
            "reward": {"kind": "classifier_confidence", "params": {"output": "prob"}},
        },
        "metrics": ["reward", "classes"],
    }
    store, (run_id,) = run_raw(raw, tmp_path / "s.sqlite")
    assert store.run(run_id).status == "done"
    reward = metric(store, run_id, "reward_mean")
    confidence = metric(store, run_id, "confidence_mean")
    assert reward.shape == (3, 2) and np.all((reward > 0) & (reward <= 1))
    # the reward (max probability) and the classes group's confidence: one network, one sample
    np.testing.assert_allclose(reward, confidence, rtol=1e-12)
