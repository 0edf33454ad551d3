"""The demo: the talk's experiments, and the cheap ones of its open questions, at quick scale, into
one store (what `make demo` runs).

All their runs form one sweep on the workers, ordered so that no worker sits idle: the run that
fits a shared generation-0 model starts first and its sibling arms, which wait for that model,
come after every other first run (run one preset after another and a worker waits, or has
nothing to do beside a preset's last run)."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from selfconsume.api import run_configs
from selfconsume.config import Config
from selfconsume.loop.first_model import first_model_key
from selfconsume.plan import load

DEMO_PRESETS = (
    "stability-digits",
    "curated-digits",
    "warmup-gaussian",
    "warmup-gaussian-mixed",
    "stability-lambda",
    "stability-lambda-flow",
    "curated-discrete",
    "curated-toy",
    "sampling-bias",
    "filtering",
    "stability-map-gaussian",
    "text-accumulate",
    "text-curated",
)
"""The longest generation-0 fits (the digits U-Nets) first. Not `eight-gaussians-collapse`: its
run is stability-lambda's fully synthetic arm under another name (the same numbers, drawn in
that preset's figures)."""


def schedule(cfgs: list[Config]) -> list[Config]:
    """The first run of each shared generation-0 model (`loop.first_model`), then the runs that
    load it, each part in the given order."""
    seen: set[str] = set()
    first, rest = [], []
    for cfg in cfgs:
        key = first_model_key(cfg) or cfg.run_id
        (rest if key in seen else first).append(cfg)
        seen.add(key)
    return first + rest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", default="runs/store.sqlite")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    cfgs = [cfg for name in DEMO_PRESETS for cfg in load(name, [], quick=True)]
    start = time.perf_counter()
    outcomes = run_configs(schedule(cfgs), store=args.store, workers=args.workers)
    names = {cfg.run_id: cfg.name for cfg in cfgs}
    done = Counter(names[o.run_id] for o in outcomes if o.status == "done")
    total = Counter(names.values())
    for name in DEMO_PRESETS:
        print(f"{name}: {done[name]}/{total[name]} runs done", file=sys.stderr)
    print(f"{len(outcomes)} runs in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return 0 if sum(done.values()) == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
