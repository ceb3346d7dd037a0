"""Shared fixtures: tiny synthetic data sets so the suite stays fast on 2 CPU cores."""

import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def tiny_cells():
    """60 cells of 32x32 from 12 subjects (8 'all', 4 'hem' subjects)."""
    from sklearn_leuko.datasets import make_cells

    return make_cells(n_subjects=12, cells_per_subject=5, image_size=32, random_state=0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
