"""Shared fixtures: one BLAS/torch thread per test process, and a fresh store per test."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "store.sqlite"
