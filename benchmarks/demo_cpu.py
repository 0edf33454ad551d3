"""CPU seconds of `make demo`, per preset and per run, as JSON: keeps the demo in its time budget.

Runs the demo's configs in this one process, in the demo's order (so a shared generation-0 model
and the data classifier are computed once, as in the demo), each into a fresh temporary store, on
one thread, and times each run by this process's CPU time (user + system): a loaded machine
changes the wall time, hardly the CPU time. The demo's sweep runs these on 2 workers, so its
quiet wall time is about the total / 2 (when no single run is longer than that), plus the serial
parts (install, start-up, report) that the JSON also reports.

    .venv/bin/python benchmarks/demo_cpu.py --out bench-results/demo-cpu.json [--only digits]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds of this process (or of its finished children)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed_child(argv: list[str]) -> dict:
    """CPU and wall seconds of a child process (start-up costs: imports, the report)."""
    before, start = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return {
        "cpu_s": round(cpu_seconds(resource.RUSAGE_CHILDREN) - before, 2),
        "wall_s": round(time.perf_counter() - start, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results/demo-cpu.json")
    parser.add_argument("--only", default="", help="substring of the preset names to run")
    parser.add_argument("--no-report", action="store_true", help="skip timing the report")
    parser.add_argument("--keep", default=None, help="a folder to keep the store and report in")
    args = parser.parse_args()

    import_cpu = timed_child([sys.executable, "-c", "import selfconsume.demo, torch"])
    from selfconsume.api import run_configs
    from selfconsume.demo import DEMO_PRESETS, schedule
    from selfconsume.plan import load

    names = [n for n in DEMO_PRESETS if args.only in n]
    cfgs = schedule([cfg for name in names for cfg in load(name, [], quick=True)])
    runs, per_preset = [], defaultdict(float)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.keep or scratch)
        store = tmp / "store.sqlite"
        for cfg in cfgs:
            before, start = cpu_seconds(), time.perf_counter()
            (outcome,) = run_configs([cfg], store=store, workers=1)
            cpu = cpu_seconds() - before
            runs.append(
                {
                    "preset": cfg.name,
                    "run_id": cfg.run_id,
                    "status": outcome.status,
                    "cpu_s": round(cpu, 2),
                    "wall_s": round(time.perf_counter() - start, 2),
                }
            )
            per_preset[cfg.name] += cpu
            print(f"{cfg.name} {cfg.run_id[:8]}: {cpu:.1f} s CPU", file=sys.stderr)
        report = None
        if not args.no_report:
            cli = [
                str(Path(sys.executable).parent / "selfconsume"),
                "report",
                "--store",
                str(store),
            ]
            report = timed_child([*cli, "--out", str(tmp / "report")])
    total = sum(per_preset.values())
    longest = max(r["cpu_s"] for r in runs)
    result = {
        "total_cpu_s": round(total, 1),
        "sweep_estimate_2_workers_s": round(max(total / 2, longest), 1),
        "longest_run_cpu_s": longest,
        "per_preset_cpu_s": {n: round(per_preset[n], 1) for n in names},
        "import_start_up": import_cpu,
        "report": report,
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    return 0 if all(r["status"] == "done" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
