"""Real data from a user's file of points (.npy or .csv), treated as the whole population.

The file is validated once, when the source is built; every problem is a one-line ConfigError naming
the file. A .npy file's header (dtype, shape) is checked against the file's size and the memory left
before its data is read. The rows are split once, by a permutation seeded with `seed`, into a test
part (a fraction `test_fraction`) and a real part (the rest): real sets are drawn from the real part
and test sets from the test part, each uniformly with replacement (the file is the population), so a
real set and a test set never share a row.
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib import format as fmt
from pydantic import Field

from selfconsume.data.base import DATA, Params
from selfconsume.data.split import partition
from selfconsume.errors import ConfigError
from selfconsume.memory import machine_bytes
from selfconsume.registry import Example
from selfconsume.regular import UnreadableFile, open_regular

MIN_ROWS = 2
MAX_LINE = 1 << 20
"""Longest first line of a .csv read to count its columns (a longer one is not a points file)."""


class FileParams(Params):
    path: str
    standardize: bool = False
    dim: int | None = Field(default=None, ge=1)
    test_fraction: float = Field(default=0.5, gt=0, lt=1)
    seed: int = Field(default=0, ge=0)


def _read_header(f: object) -> tuple[tuple[int, ...], np.dtype, int]:
    version = fmt.read_magic(f)
    readers = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"unsupported .npy format version {version}")
    shape, _, dtype = readers[version](f)
    return shape, dtype, f.tell()


def npz_header(f: BinaryIO, name: str) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """Shape, dtype and data size in bytes of array `name` of an open .npz file, from its header
    (None when the archive has no such array); zipfile or ValueError errors when unreadable."""
    with zipfile.ZipFile(f) as archive:
        if f"{name}.npy" not in archive.namelist():
            return None
        info = archive.getinfo(f"{name}.npy")
        with archive.open(info) as member:
            shape, dtype, offset = _read_header(member)
        return shape, dtype, info.file_size - offset


def _npy_problem(size: int, shape: tuple[int, ...], dtype: np.dtype, offset: int) -> str | None:
    """What is wrong with a .npy file's declared contents, before reading them (None if fine)."""
    if dtype.hasobject:
        return "holds Python objects (dtype object), not numbers"
    if dtype.kind == "c":
        return f"holds complex numbers ({dtype}); the points must be real"
    if dtype.kind not in "biuf":
        return f"dtype {dtype} is not numeric"
    if len(shape) != 2:
        return f"not a 2-D array of points (shape {shape})"
    need = math.prod(shape) * dtype.itemsize
    have = size - offset
    if need > have:
        return f"header claims shape {shape} ({need} bytes) but {have} bytes follow (truncated?)"
    return too_big(math.prod(shape) * 8)


def too_big(nbytes: int) -> str | None:
    """Why `nbytes` of data cannot be loaded (more than this machine's memory), or None."""
    machine = machine_bytes()
    if nbytes > machine:
        return f"needs ~{nbytes / 1e9:.3g} GB as float64, more than the {machine / 1e9:.3g} GB this machine has"
    return None


def file_columns(path_str: str) -> int:
    """Columns of a points file from its .npy header or its .csv's first line, without loading
    it; 1 where the file cannot be read, or is not a regular file (building the source says so)."""
    path = Path(path_str).expanduser()
    try:
        with open_regular(path) as f:
            if path.suffix == ".npy":
                shape = _read_header(f)[0]
                return shape[1] if len(shape) == 2 else 1
            if path.suffix == ".npz":  # images (N, H, W[, C]), flattened
                header = npz_header(f, "x")
                return math.prod(header[0][1:]) if header and len(header[0]) > 1 else 1
            return len(f.readline(MAX_LINE).split(b","))
    except (OSError, ValueError, zipfile.BadZipFile):
        return 1


def _load(f: BinaryIO, suffix: str, size: int) -> np.ndarray:
    """The open file's array: .npy checked from its header first, .csv as comma-separated numbers
    (header optional)."""
    if suffix == ".npy":
        problem = _npy_problem(size, *_read_header(f))
        if problem:
            raise _Refused(problem)
        f.seek(0)
        return np.load(f, allow_pickle=False)
    if suffix == ".csv":
        problem = too_big(4 * size)  # >= 2 characters per number
        if problem:
            raise _Refused(problem)
        try:
            return np.loadtxt(f, delimiter=",", ndmin=2)
        except ValueError:
            f.seek(0)
            if _complex_row(f.readline(MAX_LINE)):
                raise _Refused("holds complex numbers; the points must be real") from None
            f.seek(0)
            with warnings.catch_warnings():  # a header and no rows: said below, in one line
                warnings.simplefilter("ignore", UserWarning)
                return np.loadtxt(f, delimiter=",", ndmin=2, skiprows=1)
    raise ValueError(f"unsupported extension {suffix!r} (use .npy or .csv)")


def _complex_row(line: bytes) -> bool:
    """Whether a .csv's first line is numbers, some complex (data to refuse, not a header to skip)."""
    try:
        return any(complex(x.strip()).imag != 0 for x in line.decode().split(","))
    except ValueError:
        return False


class _Refused(Exception):
    """A file whose contents are known to be wrong before they are read."""


def load_points(path_str: str, dim: int | None = None) -> np.ndarray:
    """A validated float64 (rows, columns) array; a ConfigError names the file and the problem."""
    path = Path(path_str).expanduser()

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"data.params.path: {path_str}: {problem}")

    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise _Refused("the file is empty")
            points = _load(f, path.suffix, size)
    except (_Refused, UnreadableFile) as exc:
        raise fail(str(exc)) from None
    except (OSError, ValueError, TypeError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"unreadable ({reason})") from None
    points = points.astype(np.float64, copy=False)
    if points.ndim != 2:
        raise fail(f"not a 2-D array of points (shape {points.shape})")
    if not np.all(np.isfinite(points)):
        row = int(np.argwhere(~np.isfinite(points))[0, 0])
        raise fail(f"non-finite value (NaN or inf) in row {row}")
    if dim is not None and points.shape[1] != dim:
        raise fail(f"has {points.shape[1]} columns but data.params.dim is {dim}")
    if points.shape[0] < MIN_ROWS:
        raise fail(f"has {points.shape[0]} row(s); at least {MIN_ROWS} are needed")
    return points


def example_points(folder: Path) -> dict[str, str]:
    """The contract suite's example: 200 points in 2-D written to a .npy in `folder`."""
    path = folder / "points.npy"
    np.save(path, np.random.default_rng(0).standard_normal((200, 2)))
    return {"path": str(path)}


@DATA.register("file", FileParams, example=Example(example_points))
class FileSource:
    """Points from a .npy or .csv file (the population; rows drawn uniformly with replacement,
    real and test sets from disjoint parts); params path (relative to the working directory),
    standardize (false), dim (checked if given), test_fraction (0.5), seed (0, of the split)."""

    def __init__(self, params: FileParams) -> None:
        points = load_points(params.path, params.dim)
        if params.standardize:
            std = points.std(axis=0)
            if np.any(std == 0):
                column = int(np.argmin(std))
                raise ConfigError(
                    f"data.params.path: {params.path}: column {column} is constant, "
                    "cannot standardize"
                )
            points = (points - points.mean(axis=0)) / std
        self.points = points
        self.dim = points.shape[1]
        self.test_rows, self.real_rows = partition(len(points), [params.test_fraction], params.seed)
        for rows, what in ((self.test_rows, "test"), (self.real_rows, "real")):
            if len(rows) == 0:
                raise ConfigError(
                    f"data.params.test_fraction: {params.test_fraction} of {len(points)} rows "
                    f"leaves no row for the {what} sets"
                )

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Real sets: rows of the real part, with replacement."""
        return self.points[self.real_rows[rng.integers(len(self.real_rows), size=(replicates, n))]]

    def sample_test(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Test sets: rows of the test part, with replacement."""
        return self.points[self.test_rows[rng.integers(len(self.test_rows), size=(replicates, n))]]

    def check_sizes(self, n_real: int, n_test: int) -> None:
        """Any sizes fit: both parts are resampled with replacement."""
