"""Shared fixtures: tiny synthetic data sets so the suite stays fast on 2 CPU cores."""

import os

# One torch thread everywhere, in this process and in the subprocesses that tests
# start: tiny networks gain nothing from more, and results are bit-reproducible
# only for a fixed thread count (see docs/reliability.md).
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Undo tests (e.g. the CLI run in-process) that change torch's thread count."""
    yield
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@pytest.fixture
def python_sigint_handler():
    """Python's own SIGINT handler for tests that send a real SIGINT.

    A shell starts background jobs with SIGINT ignored, and Python then keeps
    it ignored (as does the library, which never overrides a handler the user
    chose); these tests pin the behaviour under Python's default handler.
    """
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def tiny_cells():
    """60 cells of 32x32 from 12 subjects (8 'all', 4 'hem' subjects)."""
    from sklearn_leuko.datasets import make_cells

    return make_cells(n_subjects=12, cells_per_subject=5, image_size=32, random_state=0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
