"""Real data from a user's file of points (.npy or .csv), treated as the whole population.

The file is validated once, when the source is built; every problem is a one-line ConfigError naming
the file. Sampling draws rows uniformly with replacement, so the real set (n_real points) and the
test set (n_test points) are both resamples of the file and may share rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from selfconsume.data.base import DATA, Params
from selfconsume.errors import ConfigError

MIN_ROWS = 2


class FileParams(Params):
    path: str
    standardize: bool = False
    dim: int | None = Field(default=None, ge=1)


def _load(path: Path) -> np.ndarray:
    """The file's array: .npy via np.load, .csv as comma-separated numbers (header optional)."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".csv":
        try:
            return np.loadtxt(path, delimiter=",", ndmin=2)
        except ValueError:
            return np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1)
    raise ValueError(f"unsupported extension {path.suffix!r} (use .npy or .csv)")


def load_points(path_str: str, dim: int | None = None) -> np.ndarray:
    """A validated float64 (rows, columns) array; a ConfigError names the file and the problem."""
    path = Path(path_str).expanduser()

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"data.params.path: {path_str}: {problem}")

    if not path.is_file():
        raise fail("file not found")
    try:
        points = np.asarray(_load(path), dtype=np.float64)
    except (OSError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"unreadable ({reason})") from None
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


@DATA.register("file", FileParams)
class FileSource:
    """Points from a .npy or .csv file (the population; rows drawn uniformly with replacement);
    params path (relative to the working directory), standardize (false), dim (checked if given)."""

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

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.points[rng.integers(len(self.points), size=(replicates, n))]
