"""What every role's checks share: the run a kind is checked in (its `Example` over the suite's
default run), building it, and the assertions that recur (params round trip, equal arrays)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfconsume.config import Config
from selfconsume.plan import resolve
from selfconsume.registry import Entry, Example, Params, Registry

R = 3
"""Replicates of a checked run (independence is checked with 2 against 4)."""
N = 64
"""Samples per replicate: the real set, the test set and the draws a check makes."""
DEFAULT_RUN: dict[str, Any] = {
    "name": "contract",
    "replicates": R,
    "generations": 1,
    "data": {"kind": "eight_gaussians", "n_real": N, "n_test": N},
    "model": {"kind": "gmm"},
}
"""The run a kind is checked in unless its example says otherwise."""


@dataclass(frozen=True)
class Case:
    """One kind under check: its registry entry, its example params (written into `folder` when
    the example writes files) and the raw run config it is checked in."""

    entry: Entry[Any]
    registry: Registry[Any]
    folder: Path

    @property
    def kind(self) -> str:
        return self.entry.kind

    @property
    def example(self) -> Example:
        return self.entry.example

    def raw_params(self) -> dict[str, Any]:
        """The example's params (written into the folder first when they refer to a file)."""
        params = self.example.params
        return dict(params(self.folder) if callable(params) else params)

    def params(self) -> Params:
        """The example's params, validated."""
        return self.registry.parse_params(self.kind, self.raw_params(), self.registry.role)

    def run(self, replicates: int = R, **blocks: Any) -> dict[str, Any]:
        """The raw run config: the default run, the example's blocks, then `blocks` (the kind's
        own block), each block merged key by key."""
        raw = json.loads(json.dumps(DEFAULT_RUN))
        for extra in (self.example.config, blocks):
            for key, value in extra.items():
                if isinstance(value, dict) and isinstance(raw.get(key), dict):
                    raw[key] = {**raw[key], **value}
                else:
                    raw[key] = value
        raw["replicates"] = replicates
        return raw

    def config(self, replicates: int = R, **blocks: Any) -> Config:
        """The resolved run config (every need checked as `selfconsume run` checks it)."""
        return resolve(self.run(replicates, **blocks), f"example of {self.kind}")


def check_params_round_trip(case: Case) -> None:
    """The example's params survive a trip through JSON unchanged (they are the run's identity)."""
    params = case.params()
    again = case.registry.parse_params(case.kind, json.loads(params.model_dump_json()), "params")
    assert again == params, f"params {params!r} came back from JSON as {again!r}"
    assert case.registry.parse_params(case.kind, params.model_dump(), "params") == params


def assert_same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Bit-identical arrays (determinism: the same streams give the same numbers)."""
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=what)


def assert_first_replicates(small: np.ndarray, large: np.ndarray, what: str) -> None:
    """Replicate r's values do not depend on how many replicates run (to float rounding: a
    batched matmul may sum in another order)."""
    k = np.asarray(small).shape[0]
    np.testing.assert_allclose(
        np.asarray(small), np.asarray(large)[:k], rtol=1e-6, atol=1e-9, err_msg=what
    )


def assert_finite(x: np.ndarray, what: str) -> None:
    assert np.all(np.isfinite(np.asarray(x, dtype=float))), f"{what} is not finite"


def sample_norm(x: np.ndarray) -> np.ndarray:
    """A user reward for the `callable` kind's example: each sample's Euclidean norm (m, d) -> (m,)."""
    return np.linalg.norm(x, axis=-1)
