"""A scheme added from outside the package: one class registered with `SCHEMES` is resolved,
identified, run, sized by limits.py and labelled by the report through its own hooks."""

from __future__ import annotations

import numpy as np
from helpers import metric
from pydantic import Field

from selfconsume.limits import terms
from selfconsume.loop.run import run_config
from selfconsume.loop.schemes import SCHEMES, Scheme, concat
from selfconsume.plan import build, resolve
from selfconsume.registry import Params
from selfconsume.report.labels import scheme_label
from selfconsume.store.sqlite import Store


class HalfRealParams(Params):
    n_synthetic: int = Field(default=6, ge=1)
    """Samples of p_t per replicate."""


@SCHEMES.register("half_real", HalfRealParams)
class HalfReal(Scheme):
    """The first half of the real set plus n_synthetic samples of p_t."""

    params: HalfRealParams

    @property
    def n_synthetic(self) -> int:
        return self.params.n_synthetic

    def population_lam(self) -> float | None:
        return self.n_synthetic / (self.n_real // 2)

    def label(self, curated: bool) -> str:
        return f"half real & {self.n_synthetic} synthetic"

    def build(self, real, synthetic, weights, pool, rng):
        return concat([real[:, : self.n_real // 2], synthetic]), None


RAW = {
    "name": "toy-scheme",
    "replicates": 3,
    "generations": 2,
    "data": {"kind": "gaussian", "n_real": 8, "params": {"dim": 1}},
    "model": {"kind": "gaussian", "params": {"estimator": "mle"}},
    "scheme": {"kind": "half_real", "params": {"n_synthetic": 4}},
    "metrics": ["gaussian_params"],
}


def test_a_scheme_registered_from_a_test_module_resolves_and_runs(tmp_path):
    cfg = resolve(RAW)
    assert cfg.scheme.params == HalfRealParams(n_synthetic=4)
    assert resolve({**RAW, "scheme": {"kind": "half_real"}}).run_id != cfg.run_id
    assert cfg.model_dump(mode="json")["scheme"] == {
        "kind": "half_real",
        "params": {"n_synthetic": 4},
    }
    store = Store(tmp_path / "s.sqlite")
    assert run_config(cfg, store).status == "done"
    std = metric(store, cfg.run_id, "std")
    assert std.shape == (3, 3) and np.all(std > 0)


def test_the_toy_scheme_hooks_are_what_limits_and_the_report_read():
    cfg = resolve(RAW)
    scheme = build(cfg).scheme
    assert (scheme.n_synthetic, scheme.population_lam()) == (4, 1.0)
    candidates = next(t for t in terms(cfg) if t.what == "synthetic candidates")
    assert candidates.factors["scheme.params.n_synthetic"] == 4
    assert scheme_label(cfg) == "half real & 4 synthetic"
    assert "half_real" in SCHEMES.names()
