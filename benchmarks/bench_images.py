"""Images on a CPU: the digits CNN's training time and held-out accuracy (trained afresh in a
temporary cache) against scikit-learn's logistic regression on the same split, and each feature-metric group's time for 3 replicates x 500 samples against one
feature pass of the classifier over the same images (the floor every group pays once)."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
from timing import best_of

from selfconsume.cache import CACHE_ENV
from selfconsume.data.base import DATA
from selfconsume.metrics.base import METRICS, MetricContext
from selfconsume.plan import build, resolve
from selfconsume.rewards import image_classifier

REPLICATES, N = 3, 500
GROUPS = ("fd", "feature_prd", "fls", "classes", "memorization")


def run() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        os.environ[CACHE_ENV] = folder
        digits = DATA.get("digits").obj(DATA.parse_params("digits", {}, "data.params"))
        clf = image_classifier.data_classifier(digits)
        from sklearn.linear_model import LogisticRegression

        start = time.perf_counter()
        logistic = LogisticRegression(max_iter=1000).fit(*digits.classifier_split())
        logistic_seconds = time.perf_counter() - start
        logistic_accuracy = logistic.score(*digits.test_split())
        rows.append(
            {
                "name": "digits CNN training (719 images) / logistic regression",
                "value": clf.train_seconds,
                "baseline": logistic_seconds,
                "ratio": clf.train_seconds / logistic_seconds,
                "target": "value < 30",
                "unit": "s",
            }
        )
        rows.append(
            {
                "name": "digits CNN held-out accuracy (539 images) / logistic regression",
                "value": clf.accuracy,
                "baseline": logistic_accuracy,
                "ratio": clf.accuracy / logistic_accuracy,
                "target": "value >= 0.97",
                "unit": "",
            }
        )
        cfg = resolve(
            {
                "name": "bench-images",
                "replicates": REPLICATES,
                "data": {"kind": "digits", "n_real": N, "n_test": N},
                "model": {"kind": "kde", "params": {"bandwidth": 0.3}},
                "metrics": list(GROUPS),
            }
        )
        plan = build(cfg)
        real = plan.source.sample(REPLICATES, N, plan.streams.per_replicate("real", 0))
        test = plan.source.sample_test(REPLICATES, N, plan.streams.per_replicate("test", 0))
        plan.model.fit(real, None, 0, False)
        samples = plan.model.sample(N, plan.streams.per_replicate("eval", 0), 0)

        def context() -> MetricContext:
            ctx = MetricContext(plan.model, plan.source, real, test, 0, plan.streams)
            vars(ctx)["samples"] = samples
            return ctx

        features = best_of(lambda: clf.features(np.concatenate([samples, test, real])), 3)
        for name in GROUPS:
            seconds = best_of(lambda name=name: METRICS.get(name).obj(context()), 3)
            rows.append(
                {
                    "name": f"metric {name} (R=3 x 500) / features of 4,500 images",
                    "value": seconds,
                    "baseline": features,
                    "ratio": seconds / features,
                    "target": "value < 10",
                    "unit": "s",
                }
            )
        del os.environ[CACHE_ENV]
    return rows
