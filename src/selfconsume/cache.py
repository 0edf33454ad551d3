"""The local cache beside a store: what is costly to compute and identical across runs (a data
classifier, a sweep's shared first model), keyed by what determines it: the settings that made it
and, where no version number covers the code (a first model), this code's own fingerprint, so an
edited selfconsume never reads a stale entry.

$SELFCONSUME_CACHE names the folder (`api.run_experiment` sets it to `cache/` beside the store), else
~/.cache/selfconsume. Files are written atomically; `locked` lets one process compute an entry while
the others that want it wait and then read it.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "SELFCONSUME_CACHE"


def cache_dir() -> Path:
    """$SELFCONSUME_CACHE, else ~/.cache/selfconsume."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "selfconsume")


@functools.cache
def code_fingerprint() -> str:
    """A hash of every module of this package: any edit gives new cache keys."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.relative_to(Path(__file__).parent).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a uniquely named temporary file renamed over `path`, so no reader ever sees
    half a file (the store's artifacts are written so too)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` + '.lock' (processes on one host wait for each other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
