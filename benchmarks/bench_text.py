"""ngram sampling throughput (tokens per second, one process) against the raw rate of the uniforms
it consumes (one rng.random draw per token): issue 20's target is >= 1e6 tokens/s per core."""

from __future__ import annotations

import numpy as np
from timing import best_times

from selfconsume.data.text import MarkovText, MarkovTextParams
from selfconsume.models.ngram import NgramModel, NgramParams
from selfconsume.seeding import Streams

REPLICATES, SEQUENCES, LENGTH, VOCAB, ORDER = 8, 2_000, 64, 64, 3  # 1,024,000 tokens a draw


def run() -> list[dict]:
    source = MarkovText(MarkovTextParams(vocab=VOCAB, order=2, length=LENGTH))
    rng = np.random.default_rng(0)
    model = NgramModel(
        NgramParams(order=ORDER, smoothing="kneser_ney"), LENGTH, REPLICATES, Streams(0), source
    )
    model.fit(source.sample(REPLICATES, 500, rng), None, 0, False)
    tokens = REPLICATES * SEQUENCES * LENGTH
    times = best_times(
        {
            "ours": lambda: model.sample(SEQUENCES, rng, 1),
            "base": lambda: rng.random((REPLICATES, SEQUENCES, LENGTH)),
        },
        repeats=3,
    )
    value, reference = tokens / times["ours"], tokens / times["base"]
    return [
        {
            "name": f"ngram sampling (order {ORDER}, V = {VOCAB}) tokens/s / uniforms/s",
            "value": value,
            "baseline": reference,
            "ratio": value / reference,
            "target": "value >= 1e6",
            "unit": "tokens/s",
        }
    ]
