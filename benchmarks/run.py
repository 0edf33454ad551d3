"""Run every benchmarks/bench_*.py, print one table of ratios and write them as JSON.

Each module exposes `run() -> list[dict]` with rows {name, value, baseline, ratio, target, unit};
`target` is a condition on the ratio such as ">= 0.5" (or on the value for wall times, "value < 180").
Times are noisy on a shared CPU, so every row compares two things measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # the benchmarks share timing.py


def meets(row: dict) -> bool | None:
    """Whether a row meets its target: "[value ]>= x", "[value ]<= x", "[value ]< x", or ≥/≤."""
    text = str(row.get("target", "")).replace("≥", ">=").replace("≤", "<=").replace("×", "")
    subject = "ratio"
    if text.startswith("value"):
        subject, text = "value", text[len("value") :].strip()
    for op in (">=", "<=", "<", ">"):
        if text.startswith(op):
            try:
                bound = float(text[len(op) :].strip())
            except ValueError:
                return None
            x = row[subject]
            return {">=": x >= bound, "<=": x <= bound, "<": x < bound, ">": x > bound}[op]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench-results/bench.json")
    parser.add_argument("--only", default="", help="substring of the module names to run")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    for path in sorted(HERE.glob("bench_*.py")):
        if args.only not in path.stem:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        start = time.perf_counter()
        for row in module.run():
            row["module"] = path.stem
            row["meets_target"] = meets(row)
            rows.append(row)
        print(f"{path.stem}: {time.perf_counter() - start:.1f}s", file=sys.stderr)
    table = Table("benchmark", "ours", "baseline", "ratio", "target", "ok")
    for r in rows:
        ok = {True: "yes", False: "NO", None: "-"}[r["meets_target"]]
        table.add_row(
            r["name"],
            f"{r['value']:.4g} {r['unit']}",
            f"{r['baseline']:.4g}",
            f"{r['ratio']:.3g}",
            str(r["target"]),
            ok,
        )
    Console().print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count()}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
