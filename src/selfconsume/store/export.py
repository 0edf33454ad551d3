"""The store in long format (one record per value), as a DataFrame, CSV or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from selfconsume.store.sqlite import Store

COLUMNS = ["run_id", "name", "replicate", "generation", "metric", "value"]


def _frames(store: Store, name: str | None = None):
    for run in store.runs(name):
        for generation, metric, values in store.metric_arrays(run.run_id):
            r = len(values)
            yield pd.DataFrame(
                {
                    "run_id": run.run_id,
                    "name": run.name,
                    "replicate": np.arange(r),
                    "generation": generation,
                    "metric": metric,
                    "value": values,
                }
            )


def long_frame(store: Store, name: str | None = None) -> pd.DataFrame:
    frames = list(_frames(store, name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def export_long(path: Path, fmt: str, out: TextIO) -> None:
    """Stream every value of the store at `path` to `out`: CSV with a header, or one JSON array."""
    store = Store(path)
    first = True
    if fmt == "json":
        out.write("[")
    for frame in _frames(store):
        if fmt == "csv":
            frame.to_csv(out, index=False, header=first, float_format="%.17g")
        else:
            for record in frame.to_dict(orient="records"):
                out.write(("\n" if first else ",\n") + json.dumps(record))
                first = False
        first = False
    if fmt == "json":
        out.write("\n]\n")
    store.close()
