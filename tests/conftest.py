"""Shared fixtures: one BLAS/torch thread per test process, a fresh store per test, a classifier
cache of the session's own (never ~/.cache), the digits data, a module's config file and a user's
reward module importable here, in subprocesses and on workers.

Tests marked `slow` (a preset at quick scale, a deep model trained to a tolerance, a real
browser) run in `make test` like the others; `pytest -m "not slow"` is the quick loop while
editing (see pyproject's markers)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SELFCONSUME_CACHE", tempfile.mkdtemp(prefix="selfconsume-cache-"))

import pytest
import torch
from helpers import USER_REWARDS

from selfconsume.cache import CACHE_ENV
from selfconsume.data.base import DATA

torch.set_num_threads(1)


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "store.sqlite"


@pytest.fixture(scope="session")
def cache() -> Path:
    """The session's classifier cache: each data classifier is trained once per session."""
    return Path(os.environ[CACHE_ENV])


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits with the default split (sources are read-only, so one is shared)."""
    return DATA.make("digits")


@pytest.fixture
def config_file(request, tmp_path) -> Path:
    """The test module's `CONFIG` (YAML text) written to a file."""
    path = tmp_path / "config.yaml"
    path.write_text(request.module.CONFIG)
    return path


@pytest.fixture
def user_rewards(tmp_path, monkeypatch) -> Path:
    """The folder of the user's reward module `userrewards` (helpers.USER_REWARDS), importable
    in this process, its pool workers, Dask workers and subprocesses (PYTHONPATH)."""
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "userrewards.py").write_text(USER_REWARDS)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), *sys.path]))
    sys.modules.pop("userrewards", None)
    return folder
