"""A Gaussian or discrete run never imports torch or POT: start-up stays cheap for the numpy families."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

HEAVY = ("torch", "ot")
CONFIGS = {
    "gaussian": {
        "data": {"kind": "gaussian", "n_real": 20},
        "model": {"kind": "gaussian"},
        "metrics": ["gaussian_params", "w2"],
    },
    "discrete": {
        "data": {"kind": "discrete", "n_real": 20, "params": {"probs": [0.5, 0.3, 0.2]}},
        "model": {"kind": "discrete"},
        "metrics": ["mass", "divergence", "entropy", "states_lost"],
    },
}
PROBE = """
import json, sys
from selfconsume.cli import app
try:
    app(["run", sys.argv[1], "--store", sys.argv[2]], standalone_mode=False)
finally:
    print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_numpy_family_run_imports_neither_torch_nor_pot(tmp_path, family):
    raw = {"name": f"lean-{family}", "replicates": 3, "generations": 1} | CONFIGS[family]
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    probe = PROBE.format(heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", probe, str(path), str(tmp_path / "s.sqlite")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "1/1 runs done" in out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
