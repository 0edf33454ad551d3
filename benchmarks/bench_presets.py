"""Wall time of the stability-lambda preset at its default scale on 2 worker processes."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from selfconsume.api import run_experiment

LIMIT_SECONDS = 180.0


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        outcomes = run_experiment("stability-lambda", store=Path(tmp) / "s.sqlite", workers=2)
        wall = time.perf_counter() - start
    assert all(o.status == "done" for o in outcomes), outcomes
    return [
        {
            "name": "stability-lambda preset, default scale, 2 workers (wall time)",
            "value": wall,
            "baseline": LIMIT_SECONDS,
            "ratio": wall / LIMIT_SECONDS,
            "target": "value < 180",
            "unit": "s",
        },
    ]
