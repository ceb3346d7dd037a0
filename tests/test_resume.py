"""Interrupted training: a fit killed with SIGKILL resumes from its last checkpoint
and ends at the same weights as an uninterrupted fit (CPU, same seed)."""

import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sklearn_leuko import LeukoNetClassifier
from sklearn_leuko._classifier._callbacks import (
    CHECKPOINT_FILENAME,
    atomic_torch_save,
    load_checkpoint,
)
from sklearn_leuko.datasets import make_cells

PARAMS = dict(
    preprocessing="od",
    widths=(4, 4, 8, 8, 8, 8),
    augment="all",
    max_epochs=4,
    batch_size=8,
    verbose=0,
    random_state=7,
)
DATA = dict(n_subjects=8, cells_per_subject=5, image_size=24, random_state=1)

CHILD = """
import os, signal
import skorch, torch
torch.set_num_threads({threads})  # bit-identical only at the same thread count
from sklearn_leuko import LeukoNetClassifier
from sklearn_leuko.datasets import make_cells

calls = {{"n": 0}}
original = skorch.NeuralNetClassifier.train_step

def train_step_then_die(self, *args, **kwargs):
    out = original(self, *args, **kwargs)
    calls["n"] += 1
    if calls["n"] == {kill_after}:
        os.kill(os.getpid(), signal.SIGKILL)
    return out

skorch.NeuralNetClassifier.train_step = train_step_then_die
data = make_cells(**{data!r})
LeukoNetClassifier(checkpoint_dir={ckpt!r}, **{params!r}).fit(
    data.images, data.target, groups=data.groups)
"""


def _state(clf):
    return {k: v.clone() for k, v in clf.net_.module_.state_dict().items()}


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    data = make_cells(**DATA)
    X, y, g = data.images, data.target, data.groups
    reference = LeukoNetClassifier(**PARAMS).fit(X, y, groups=g)

    ckpt = str(tmp_path / "ckpt")
    # 32 training cells / batch 8 = 4 batches per epoch: die in epoch 3.
    script = CHILD.format(
        kill_after=10,
        data=DATA,
        ckpt=ckpt,
        params=PARAMS,
        threads=torch.get_num_threads(),
    )
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)])
    assert proc.returncode == -signal.SIGKILL
    saved = load_checkpoint(ckpt)
    assert saved is not None and 1 <= saved["epoch"] < PARAMS["max_epochs"]
    assert not list((tmp_path / "ckpt").glob("*.tmp"))

    resumed = LeukoNetClassifier(checkpoint_dir=ckpt, resume=True, **PARAMS)
    resumed.fit(X, y, groups=g)
    assert len(resumed.history_) == PARAMS["max_epochs"]
    assert resumed.best_epoch_ == reference.best_epoch_
    expected, got = _state(reference), _state(resumed)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))


def test_resume_without_checkpoint_trains_from_scratch(tiny_cells, tmp_path):
    params = {**PARAMS, "max_epochs": 1}
    clf = LeukoNetClassifier(checkpoint_dir=str(tmp_path), resume=True, **params)
    clf.fit(tiny_cells.images, tiny_cells.target, groups=tiny_cells.groups)
    assert len(clf.history_) == 1
    assert (tmp_path / CHECKPOINT_FILENAME).exists()


def test_resume_refuses_other_configuration(tiny_cells, tmp_path):
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    params = {**PARAMS, "max_epochs": 1}
    LeukoNetClassifier(checkpoint_dir=str(tmp_path), **params).fit(X, y, groups=g)
    other = LeukoNetClassifier(
        checkpoint_dir=str(tmp_path), resume=True, **{**params, "lr": 0.5}
    )
    with pytest.raises(ValueError, match="other parameters or data"):
        other.fit(X, y, groups=g)


def test_atomic_save_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "c.pt"
    atomic_torch_save({"a": torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_torch_save({"a": Unpicklable()}, path)
    assert torch.load(path, weights_only=True)["a"].tolist() == [1.0, 1.0]
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_checkpoint_gives_clear_error(tmp_path):
    (tmp_path / CHECKPOINT_FILENAME).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        load_checkpoint(tmp_path)
