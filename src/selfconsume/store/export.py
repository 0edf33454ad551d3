"""The store in long format, one record per value: run_id, name, replicate, generation, metric,
value, then one column per swept key. As a compact DataFrame, an xarray Dataset, CSV, JSON, Parquet
or Arrow; and the summary per (run, generation, metric): mean, sd, standard error, 95% interval.

Columns are built from the metric blobs with np.repeat / np.tile (never a loop over values); the
run, name, metric and swept-key columns are dictionary codes (pandas categoricals, Arrow dictionaries).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from selfconsume.errors import ConfigError
from selfconsume.store.reader import StoreReader
from selfconsume.store.reads import Block
from selfconsume.store.records import RunRecord, swept_keys

if TYPE_CHECKING:
    import pyarrow as pa
    import xarray as xr

STATS = ["n", "mean", "sd", "se", "ci_low", "ci_high"]
SUMMARY_COLUMNS = ["run_id", "name", "generation", "metric", *STATS]
FORMATS = ("csv", "json", "parquet", "arrow")
BINARY_FORMATS = ("parquet", "arrow")


def _code_dtype(size: int) -> np.dtype:
    """The smallest signed integer type for codes 0..size-1 and -1 (null)."""
    for dtype in (np.int8, np.int16, np.int32):
        if size < np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _dictionary(values: list[Any]) -> tuple[list[Any], list[int]]:
    """Distinct values of a swept key (numbers, strings or JSON text) and each run's code (-1: null)."""
    present = [v for v in values if v is not None]
    if not all(isinstance(v, str) for v in present) and not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in present
    ):
        present = [json.dumps(v, sort_keys=True) for v in present]
        values = [None if v is None else json.dumps(v, sort_keys=True) for v in values]
    elif any(isinstance(v, float) for v in present):
        present = [float(v) for v in present]
        values = [None if v is None else float(v) for v in values]
    distinct = list(dict.fromkeys(present))
    index = {v: i for i, v in enumerate(distinct)}
    return distinct, [-1 if v is None else index[v] for v in values]


@dataclass
class Layout:
    """What every batch of an export shares: the runs, and the categories of each coded column
    (run_id, name, metric, then every swept key) with each run's code in it."""

    runs: list[RunRecord]
    categories: dict[str, list[Any]]
    run_codes: dict[str, list[int]]

    @classmethod
    def of(cls, reader: StoreReader, name: str | None = None) -> Layout:
        runs = reader.runs(name)
        names = list(dict.fromkeys(r.name for r in runs))
        categories: dict[str, list[Any]] = {
            "run_id": [r.run_id for r in runs],
            "name": names,
            "metric": reader.metric_names([r.run_id for r in runs]),
        }
        run_codes = {"run_id": list(range(len(runs))), "name": [names.index(r.name) for r in runs]}
        for key in swept_keys(runs):
            categories[key], run_codes[key] = _dictionary([r.flat.get(key) for r in runs])
        return cls(runs, categories, run_codes)

    @property
    def keys(self) -> list[str]:
        """The swept keys, in the order of their columns."""
        return [k for k in self.categories if k not in ("run_id", "name", "metric")]

    def dtype(self, column: str) -> np.dtype:
        return _code_dtype(len(self.categories[column]))

    def allocate(self, size: int) -> dict[str, np.ndarray]:
        """Empty long-format columns for `size` values (codes for the categorical ones)."""
        out = {c: np.empty(size, self.dtype(c)) for c in ("run_id", "name")}
        out |= {"replicate": np.empty(size, np.int32), "generation": np.empty(size, np.int32)}
        out |= {"metric": np.empty(size, self.dtype("metric")), "value": np.empty(size)}
        return out | {k: np.empty(size, self.dtype(k)) for k in self.keys}

    def fill(self, reader: StoreReader, i: int, columns: dict[str, np.ndarray], start: int) -> int:
        """Write run i's values into the columns from `start`; return where they end."""
        stop = start + reader.value_count([self.runs[i].run_id])
        block = reader.block(self.runs[i].run_id, columns["value"][start:stop])
        metric_code = {m: c for c, m in enumerate(self.categories["metric"])}
        codes = np.array([metric_code[m] for m in block.metric], dtype=columns["metric"].dtype)
        columns["metric"][start:stop] = np.repeat(codes, block.lengths)
        columns["generation"][start:stop] = np.repeat(block.generation, block.lengths)
        columns["replicate"][start:stop] = _within(block.lengths)
        for column, codes_by_run in self.run_codes.items():
            columns[column][start:stop] = codes_by_run[i]
        return stop

    def pandas(self, columns: dict[str, np.ndarray]) -> pd.DataFrame:
        """The columns as a DataFrame, coded ones as categoricals (no copy of the value column)."""
        data = {
            c: pd.Categorical.from_codes(v, self.categories[c]) if c in self.categories else v
            for c, v in columns.items()
        }
        return pd.DataFrame(data, copy=False)

    def arrow(self, columns: dict[str, np.ndarray]) -> pa.Table:
        """The columns as an Arrow table, coded ones as dictionary arrays."""
        import pyarrow as pa

        arrays = {}
        for c, v in columns.items():
            if c in self.categories:
                indices = pa.array(v, mask=v < 0) if c in self.keys else pa.array(v)
                v = pa.DictionaryArray.from_arrays(indices, pa.array(self.categories[c]))
            arrays[c] = v
        return pa.table(arrays)


def _within(lengths: np.ndarray) -> np.ndarray:
    """0..length-1 for each row, concatenated (the replicate index of every value)."""
    if lengths.size and np.all(lengths == lengths[0]):
        return np.tile(np.arange(lengths[0], dtype=np.int32), lengths.size)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return (np.arange(int(lengths.sum())) - starts).astype(np.int32)


def long_frame(reader: StoreReader, name: str | None = None) -> pd.DataFrame:
    """Every value of the store (or of one experiment) as one compact long-format DataFrame."""
    layout = Layout.of(reader, name)
    columns = layout.allocate(reader.value_count([r.run_id for r in layout.runs]))
    start = 0
    for i in range(len(layout.runs)):
        start = layout.fill(reader, i, columns, start)
    return layout.pandas(columns)


def long_batches(reader: StoreReader, layout: Layout) -> Iterator[dict[str, np.ndarray]]:
    """The long-format columns one run at a time (what the file writers stream)."""
    for i, run in enumerate(layout.runs):
        columns = layout.allocate(reader.value_count([run.run_id]))
        layout.fill(reader, i, columns, 0)
        yield columns


def xarray_dataset(reader: StoreReader, name: str | None = None) -> xr.Dataset:
    """Dataset with dims run x replicate x generation, one variable per metric (NaN where a run
    has fewer replicates or generations); each run's name and swept keys are coordinates on `run`."""
    import xarray as xr

    layout = Layout.of(reader, name)
    blocks = [reader.block(r.run_id) for r in layout.runs]
    width = max((int(b.lengths.max()) for b in blocks if b.lengths.size), default=0)
    depth = max((int(b.generation.max()) + 1 for b in blocks if b.generation.size), default=0)
    metrics = layout.categories["metric"]
    data = {m: np.full((len(blocks), width, depth), np.nan) for m in metrics}
    for i, block in enumerate(blocks):
        starts = np.cumsum(block.lengths) - block.lengths
        for b, (g, m) in enumerate(zip(block.generation, block.metric, strict=True)):
            data[m][i, : block.lengths[b], g] = block.values[
                starts[b] : starts[b] + block.lengths[b]
            ]
    coords: dict[str, Any] = {
        "run": layout.categories["run_id"],
        "replicate": np.arange(width),
        "generation": np.arange(depth),
        "name": ("run", [r.name for r in layout.runs]),
    }
    for key in layout.keys:
        categories = layout.categories[key]
        numeric = all(isinstance(v, int | float) for v in categories)
        missing = np.nan if numeric else None
        coords[key] = ("run", [categories[c] if c >= 0 else missing for c in layout.run_codes[key]])
    dims = ("run", "replicate", "generation")
    return xr.Dataset({m: (dims, v) for m, v in data.items()}, coords=coords)


def describe(block: Block) -> dict[str, np.ndarray]:
    """Per row (generation, metric) of a block: count of finite values, mean, sd (ddof 1),
    standard error sd / sqrt(n) and the 95% t interval mean +- t_{0.975, n-1} se (NaN for n < 2)."""
    from scipy.stats import t as student

    if block.lengths.size == 0:
        return {k: np.empty(0) for k in STATS}
    starts = np.cumsum(block.lengths) - block.lengths
    finite = np.isfinite(block.values)
    n = np.add.reduceat(finite, starts, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.add.reduceat(np.where(finite, block.values, 0.0), starts) / n
        dev = np.where(finite, block.values - np.repeat(mean, block.lengths), 0.0)
        sd = np.sqrt(np.add.reduceat(dev * dev, starts) / (n - 1))
        sd[n < 2] = np.nan
        se = sd / np.sqrt(n)
        half = student.ppf(0.975, np.maximum(n - 1, 1)) * se
    return {"n": n, "mean": mean, "sd": sd, "se": se, "ci_low": mean - half, "ci_high": mean + half}


def summary_frame(reader: StoreReader, name: str | None = None) -> pd.DataFrame:
    """mean, sd, se and 95% interval over replicates per (run, generation, metric), swept keys after."""
    layout = Layout.of(reader, name)
    frames = []
    for i, run in enumerate(layout.runs):
        block = reader.block(run.run_id)
        frame = pd.DataFrame(
            {"run_id": run.run_id, "name": run.name, "generation": block.generation}
            | {"metric": block.metric}
            | describe(block)
        )
        for key in layout.keys:
            code = layout.run_codes[key][i]
            frame[key] = layout.categories[key][code] if code >= 0 else None
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    for column in ("run_id", "name", "metric"):
        frame[column] = frame[column].astype("category")
    return frame


# --- writing files ------------------------------------------------------------------------------


def check_request(store: Path, fmt: str, out: Path | None, stdout: IO[str]) -> None:
    """Refuse bad export requests before anything is read: one line naming the option."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt in BINARY_FORMATS and out is None and stdout.isatty():
        raise ConfigError(f"--format {fmt}: binary output needs --out FILE (or a pipe)")
    if out is not None and out.is_dir():
        raise ConfigError(f"--out: {out} is a folder; give a file name")
    if out is not None and not out.parent.is_dir():
        raise ConfigError(f"--out: {out.parent} is not a folder")
    if out is not None and out.resolve() == store.resolve():
        raise ConfigError("--out: would overwrite the store")


def export(
    store: str | os.PathLike[str],
    fmt: str = "csv",
    out: str | os.PathLike[str] | None = None,
    summary: bool = False,
    stdout: IO[str] | None = None,
) -> None:
    """Write the store's values (or their summary) in long format to the file `out` or stdout."""
    stdout = stdout or sys.stdout
    store, out = Path(store), (None if out is None else Path(out))
    check_request(store, fmt, out, stdout)
    with StoreReader(store) as reader:
        layout = Layout.of(reader)
        if not layout.runs:
            raise ConfigError(f"{store}: the store has no runs")
        reader.check_metrics()  # before a byte is written
        if summary:
            import pyarrow as pa

            tables = iter([pa.Table.from_pandas(summary_frame(reader), preserve_index=False)])
        else:
            tables = (layout.arrow(c) for c in long_batches(reader, layout))
        if out is None:
            _write(tables, fmt, stdout.buffer if fmt in BINARY_FORMATS else stdout)
            return
        tmp = out.with_name(out.name + ".partial")
        binary = fmt in BINARY_FORMATS
        with open(tmp, "wb") if binary else open(tmp, "w", newline="") as sink:
            _write(tables, fmt, sink)
        os.replace(tmp, out)


def _write(tables: Iterator[pa.Table], fmt: str, sink: IO[Any]) -> None:
    """Stream Arrow tables of one schema to an open file in the given format."""
    first = next(tables)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        # dictionaries only where the columns are coded (a float column would try one and fall
        # back, at half the speed); integer columns delta-encoded (replicate counts up)
        coded = [f.name for f in first.schema if pa.types.is_dictionary(f.type)]
        ints = [f.name for f in first.schema if pa.types.is_integer(f.type)]
        delta = dict.fromkeys(ints, "DELTA_BINARY_PACKED")
        with pq.ParquetWriter(
            sink, first.schema, use_dictionary=coded, column_encoding=delta
        ) as writer:
            for table in _chain(first, tables):
                writer.write_table(table)
    elif fmt == "arrow":
        import pyarrow as pa

        with pa.ipc.new_file(sink, first.schema) as writer:
            for table in _chain(first, tables):
                writer.write_table(table)
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow(first.column_names)
        sink.write(header.getvalue())
        options = pcsv.WriteOptions(include_header=False, quoting_style="needed")
        for table in _chain(first, tables):
            buf = io.BytesIO()
            pcsv.write_csv(table, buf, options)
            sink.write(buf.getvalue().decode())
    else:
        sink.write("[")
        separator = "\n"
        for table in _chain(first, tables):
            names = table.column_names
            columns = [_json_values(table.column(c).to_pylist()) for c in names]
            for row in zip(*columns, strict=True):
                sink.write(separator + json.dumps(dict(zip(names, row, strict=True))))
                separator = ",\n"
        sink.write("\n]\n")


def _json_values(values: list[Any]) -> list[Any]:
    """NaN and infinities as null: JSON has no such numbers."""
    return [None if isinstance(v, float) and not np.isfinite(v) else v for v in values]


def _chain(first: pa.Table, rest: Iterator[pa.Table]) -> Iterator[pa.Table]:
    yield first
    yield from rest
