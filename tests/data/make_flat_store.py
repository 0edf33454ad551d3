"""Write tests/data/flat-store/ (a small store) and tests/data/flat_run_ids.json with the code of
bdb15ed, the last main whose scheme and curation blocks were flat: run it from a worktree of that
commit (`git worktree add /tmp/old bdb15ed`) as `PYTHONPATH=/tmp/old/src python
tests/data/make_flat_store.py`. `tests/test_flat_configs.py` checks that today's resolution gives
the same run ids, that today's store opens the flat store, and that rerunning its runs gives the
same numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from selfconsume.config import preset_names
from selfconsume.loop.run import run_config
from selfconsume.plan import load, resolve
from selfconsume.store.sqlite import Store

HERE = Path(__file__).parent
INF = float("inf")
GAUSS_1D = {"kind": "gaussian", "n_real": 6, "n_test": 20, "params": {"dim": 1}}
GAUSS_2D = {"kind": "gaussian", "n_real": 8, "n_test": 20, "params": {"dim": 2}}
DISCRETE = {
    "kind": "discrete",
    "n_real": 10,
    "n_test": 20,
    "params": {"probs": [0.1, 0.2, 0.3, 0.4]},
}
TABLE = {"kind": "table", "params": {"values": [0, 1, 2, 3]}}
LINEAR = {"kind": "linear", "params": {"coef": [1.0]}}

SCHEMES = [
    {"kind": "replace"},
    {"kind": "replace", "n_synthetic": 4},
    {"kind": "mix", "lam": 0.5},
    {"kind": "mix", "lam": 0.0},
    {"kind": "mix", "n_synthetic": 3},
    {"kind": "accumulate"},
    {"kind": "accumulate", "lam": 0.5},
    {"kind": "accumulate_subsample"},
    {"kind": "accumulate_subsample", "lam": 0.5, "size": 5},
    {"kind": "fresh", "lam": 1.0},
]
CURATIONS = [
    {"kind": "bradley_terry", "k": 4, "beta": 1.0, "reward": LINEAR},
    {"kind": "bradley_terry", "k": 2, "beta": INF, "reward": LINEAR},
    {"kind": "top_fraction", "fraction": 0.5, "reward": LINEAR},
    {"kind": "threshold", "threshold": -0.5, "reward": LINEAR},
    {"kind": "discriminator"},
    {"kind": "discriminator", "select": "bradley_terry", "k": 3, "beta": 1.0},
    {"kind": "discriminator", "params": {"features": 8, "steps": 2}},
    {"kind": "likelihood", "select": "threshold", "threshold": -3.0},
    {"kind": "likelihood", "select": "top_fraction", "fraction": 0.25},
    {"kind": "likelihood", "params": {"bandwidth": 0.5}},
]
POPULATION = [
    None,
    {"kind": "bradley_terry", "k": INF, "beta": 1.0, "reward": TABLE},
    {"kind": "bradley_terry", "k": 3, "beta": 2.0, "reward": TABLE},
    {"kind": "top_fraction", "fraction": 0.3, "reward": TABLE},
    {"kind": "threshold", "threshold": 2.0, "reward": TABLE},
]


def base(name: str, data: dict, model: dict) -> dict:
    return {
        "name": name,
        "seed": 3,
        "replicates": 2,
        "generations": 2,
        "data": data,
        "model": model,
    }


def configs() -> list[dict]:
    """Tiny runs covering every scheme and every selection kind (sampled and population)."""
    gauss = {"kind": "gaussian", "params": {"estimator": "mle"}}
    out = [
        {**base("schemes", GAUSS_1D, gauss), "scheme": s, "metrics": ["gaussian_params"]}
        for s in SCHEMES
    ]
    for cur in CURATIONS:
        data = GAUSS_1D if "reward" in cur else GAUSS_2D
        scheme = {"kind": "mix", "lam": 1.0} if cur["kind"] == "likelihood" else {"kind": "replace"}
        one = {**base("curation", data, gauss), "scheme": scheme, "curation": cur}
        out.append({**one, "metrics": ["gaussian_params"]})
    population = {"kind": "discrete", "population": True}
    for cur in POPULATION:
        for scheme in ({"kind": "replace"}, {"kind": "mix", "lam": 0.5}):
            one = {**base("population", DISCRETE, population), "scheme": scheme, "curation": cur}
            out.append({**one, "metrics": ["mass"]})
    return out


def preset_ids() -> dict[str, list[str]]:
    """Every preset's run ids, at its full scale and with --quick."""
    return {
        f"{name}{suffix}": [c.run_id for c in load(name, quick=bool(suffix))]
        for name in preset_names()
        for suffix in ("", " --quick")
    }


def main() -> None:
    folder = HERE / "flat-store"
    shutil.rmtree(folder, ignore_errors=True)
    store = Store(folder / "store.sqlite")
    runs = []
    for raw in configs():
        cfg = resolve(raw)
        outcome = run_config(cfg, store)
        runs.append({"raw": raw, "run_id": cfg.run_id, "status": outcome.status})
    out = {"commit": "bdb15ed", "runs": runs, "presets": preset_ids()}
    (HERE / "flat_run_ids.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
