"""Shared fixtures: one BLAS/torch thread per test process, a fresh store per test, and a
classifier cache of the session's own (never ~/.cache)."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SELFCONSUME_CACHE", tempfile.mkdtemp(prefix="selfconsume-cache-"))

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "store.sqlite"
