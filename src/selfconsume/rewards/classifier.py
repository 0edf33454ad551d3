"""Classifier-confidence reward for labelled data: the talk's "confidence of a pretrained classifier".

On labelled images (`classifier: auto` or `cnn`) the classifier is the data's small CNN
(rewards.image_classifier), trained once on the data's classifier split with the reward's `seed`
and cached on disk, so a sweep trains it once (`n_train` is not used: it takes the whole split).
Otherwise a small scikit-learn classifier (multinomial logistic regression, the `auto` choice, or
an MLP) is trained when the run starts on `n_train` labelled real samples drawn with the reward's
own seed. Labels come from the source's `labelled(n, rng) -> (x (n, dim), y (n,))` when it has one,
otherwise from the nearest of its mixture `modes` (so 8 Gaussians works too). The reward of a
sample is the classifier's probability of class `target`, or of its most likely class when `target`
is null (max confidence); with `output: log_prob` its logarithm, floored at log(1e-12) to stay
finite. Nothing is downloaded.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from selfconsume.data.base import HasLabels, HasModes, Images, Labelled
from selfconsume.errors import ConfigError
from selfconsume.registry import Example, Need
from selfconsume.rewards.base import REWARDS, Params, Reward
from selfconsume.rewards.toy import nearest_mode

FLOOR = 1e-12


class ClassifierParams(Params):
    target: int | None = Field(default=None, ge=0)
    output: Literal["log_prob", "prob"] = "log_prob"
    classifier: Literal["auto", "logistic", "mlp", "cnn"] = "auto"
    n_train: int = Field(default=5000, ge=10)
    seed: int = Field(default=0, ge=0)
    batch_size: int = Field(default=65536, ge=1)


def labelled_data(
    source: object, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """n labelled real samples: the source's own labels, or the nearest mode of a mixture."""
    if isinstance(source, Labelled):
        x, y = source.labelled(n, rng)
        return np.asarray(x, dtype=float).reshape(n, -1), np.asarray(y)
    if isinstance(source, HasModes):
        x = np.asarray(source.sample(1, n, rng)[0], dtype=float)
        return x, nearest_mode(x, np.asarray(source.modes, dtype=float))
    raise ConfigError(
        "curation.reward.kind: classifier_confidence needs labelled data (a source with labels or modes)"
    )


def train(params: ClassifierParams, x: np.ndarray, y: np.ndarray) -> object:
    """Fit the scikit-learn classifier named by `params.classifier` (auto: logistic)."""
    if params.classifier in ("auto", "logistic"):
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(max_iter=1000)
    else:
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=500, random_state=params.seed)
    return clf.fit(x, y)


LABELS = Need(
    "labelled data (a source with labels or modes)",
    lambda source, model: isinstance(source, (Labelled, HasModes)),
)


def _classifier(params: ClassifierParams, source: object) -> tuple[Reward, list[int]]:
    """The classifier's probabilities, (m, dim) -> (m, k), and its classes."""
    images = isinstance(source, Images) and isinstance(source, HasLabels)
    if params.classifier == "cnn" or (params.classifier == "auto" and images):
        if not images:
            raise ConfigError(
                "curation.reward.params.classifier: cnn needs labelled image data "
                "(digits, mnist, image_file with y)"
            )
        from selfconsume.rewards.image_classifier import data_classifier

        cnn = data_classifier(source, params.seed)
        return cnn.proba, list(range(cnn.n_classes))
    x, y = labelled_data(source, params.n_train, np.random.default_rng(params.seed))
    clf = train(params, x, y)
    return clf.predict_proba, list(clf.classes_)


@REWARDS.register(
    "classifier_confidence", ClassifierParams, needs=[LABELS], example=Example({"n_train": 200})
)
def classifier_confidence(params: ClassifierParams, source: object) -> Reward:
    """Probability (or log) of class `target`, or the max confidence, of a classifier of the data
    (the data's CNN on labelled images, logistic regression otherwise, by default)."""
    predict_proba, classes = _classifier(params, source)
    column = None
    if params.target is not None:
        if params.target not in classes:
            raise ConfigError(
                f"curation.reward.params.target: class {params.target} not in the data's labels"
            )
        column = classes.index(params.target)

    def reward(samples: np.ndarray) -> np.ndarray:
        flat = np.asarray(samples, dtype=float).reshape(-1, samples.shape[-1])
        out = np.empty(flat.shape[0])
        for start in range(0, flat.shape[0], params.batch_size):
            proba = predict_proba(flat[start : start + params.batch_size])
            conf = proba.max(axis=1) if column is None else proba[:, column]
            out[start : start + proba.shape[0]] = conf
        if params.output == "log_prob":
            out = np.log(np.maximum(out, FLOOR))
        return out.reshape(samples.shape[:-1])

    return reward
