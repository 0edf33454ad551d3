"""The demo: the talk's experiments, and the cheap ones of its open questions, at quick scale, into
one store (what `make demo` runs)."""

from __future__ import annotations

import argparse
import sys
import time

from selfconsume.api import run_experiment
from selfconsume.config import preset_names

DEMO_PRESETS = (
    "warmup-gaussian",
    "warmup-gaussian-mixed",
    "eight-gaussians-collapse",
    "stability-lambda",
    "stability-lambda-flow",
    "curated-discrete",
    "curated-toy",
    "stability-digits",
    "curated-digits",
    "sampling-bias",
    "filtering",
    "stability-map-gaussian",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", default="runs/store.sqlite")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    failed = 0
    for name in (p for p in DEMO_PRESETS if p in preset_names()):
        start = time.perf_counter()
        outcomes = run_experiment(name, store=args.store, workers=args.workers, quick=True)
        bad = [o for o in outcomes if o.status != "done"]
        failed += len(bad)
        print(
            f"{name}: {len(outcomes) - len(bad)}/{len(outcomes)} runs done in "
            f"{time.perf_counter() - start:.1f}s",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
