"""Interrupted training: a fit killed with SIGKILL resumes from its last checkpoint
and ends at the same weights as an uninterrupted fit (CPU, same seed)."""

import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import skorch
import torch
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback

from sklearn_leuko import LeukoNetClassifier
from sklearn_leuko._classifier._callbacks import (
    CHECKPOINT_FILENAME,
    LOCK_FILENAME,
    CheckpointLock,
    atomic_torch_save,
    data_digest,
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
    with pytest.raises(ValueError, match=r"other parameters \(lr: 0.001 -> 0.5\)"):
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


# ----------------------------------------------- checkpoint folder rules
QUICK = {**PARAMS, "max_epochs": 1, "augment": "off"}


class _StopAfterEpoch(Callback):
    """Ctrl-C at the end of an epoch, after the checkpoint was written."""

    def __init__(self, epoch=1):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


def _no_training(monkeypatch):
    def train_step(self, *args, **kwargs):
        raise AssertionError("trained, but should not have")

    monkeypatch.setattr(skorch.NeuralNetClassifier, "train_step", train_step)


def test_fingerprint_hashes_every_image(tiny_cells, tmp_path):
    """Before, only every len/16-th image was hashed: a change to image 1 of
    60 resumed silently on other data (issue 14)."""
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    clf = LeukoNetClassifier(checkpoint_dir=str(tmp_path), **QUICK)
    clf.fit(X, y, groups=g)
    changed = X.copy()
    changed[1, 5, 5, 0] ^= 1
    resumed = LeukoNetClassifier(checkpoint_dir=str(tmp_path), resume=True, **QUICK)
    with pytest.raises(ValueError, match=r"other data \(images, labels"):
        resumed.fit(changed, y, groups=g)
    regrouped = g.astype(object)
    regrouped[regrouped == regrouped[0]] = "someone else"
    with pytest.raises(ValueError, match=r"other data"):
        resumed.fit(X, y, groups=regrouped)


def test_data_digest_streams_and_distinguishes_types():
    X = np.arange(2 * 5 * 5 * 3, dtype=np.uint8).reshape(2, 5, 5, 3)
    assert data_digest(X) == data_digest(np.asfortranarray(X))  # same values
    assert data_digest(X) != data_digest(X.astype(np.int16))
    assert data_digest(np.array([7], object)) != data_digest(np.array(["7"], object))
    # chunked streaming equals one pass
    import hashlib

    from sklearn_leuko._classifier._callbacks import _update_digest

    one, chunked = hashlib.sha256(), hashlib.sha256()
    _update_digest(one, X)
    _update_digest(chunked, X, chunk_bytes=7)
    assert one.hexdigest() == chunked.hexdigest()


def test_resume_with_random_state_none_reuses_the_inner_split(monkeypatch, tmp_path):
    """The fit's seed is kept in the checkpoint; a resumed fit validates on the
    subjects it validated on before, not on subjects it trained on."""
    data = make_cells(n_subjects=40, cells_per_subject=2, image_size=16, random_state=0)
    X, y, g = data.images, data.target, data.groups
    splits = []
    original = LeukoNetClassifier._inner_split

    def recording(self, *args):
        splits.append(original(self, *args))
        return splits[-1]

    monkeypatch.setattr(LeukoNetClassifier, "_inner_split", recording)
    params = {**QUICK, "random_state": None, "max_epochs": 2}
    first = LeukoNetClassifier(
        checkpoint_dir=str(tmp_path), callbacks=[_StopAfterEpoch(1)], **params
    )
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, y, groups=g)
    saved = load_checkpoint(tmp_path)
    assert saved["epoch"] == 1 and not saved["completed"]
    assert isinstance(saved["fit_seed"], int)
    resumed = LeukoNetClassifier(checkpoint_dir=str(tmp_path), resume=True, **params)
    resumed.fit(X, y, groups=g)
    assert len(resumed.history_) == 2
    (train1, valid1), (train2, valid2) = splits
    np.testing.assert_array_equal(valid2, valid1)
    np.testing.assert_array_equal(train2, train1)


def test_interrupted_fit_leaves_no_fitted_model(tiny_cells, tmp_path):
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    clf = LeukoNetClassifier(
        callbacks=[_StopAfterEpoch(1)], **{**QUICK, "max_epochs": 2}
    )
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y, groups=g)
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_completed_checkpoint_is_returned_with_a_warning(
    tiny_cells, tmp_path, monkeypatch
):
    """A refit with resume=True of a fit that completed (here: a loaded model
    whose parameters name the folder) returns that fit's result, says so, and
    does not train; an early-stopped fit counts as completed."""
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    params = {**QUICK, "max_epochs": 6, "patience": 1, "lr": 1e-12}  # stops at epoch 2
    clf = LeukoNetClassifier(checkpoint_dir=str(tmp_path), resume=True, **params)
    clf.fit(X, y, groups=g)
    assert len(clf.history_) < 6 and load_checkpoint(tmp_path)["completed"]
    expected = clf.predict_proba(X)
    loaded = pickle.loads(pickle.dumps(clf))
    _no_training(monkeypatch)
    with pytest.warns(UserWarning, match="holds a completed fit.*without training"):
        loaded.fit(X, y, groups=g)
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    assert loaded.best_epoch_ == clf.best_epoch_


def test_resume_false_never_overwrites_a_checkpoint(tiny_cells, tmp_path, monkeypatch):
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    LeukoNetClassifier(checkpoint_dir=str(tmp_path), **QUICK).fit(X, y, groups=g)
    before = (tmp_path / CHECKPOINT_FILENAME).read_bytes()
    _no_training(monkeypatch)
    again = LeukoNetClassifier(checkpoint_dir=str(tmp_path), **{**QUICK, "lr": 0.5})
    with pytest.raises(
        ValueError, match=r"already holds a checkpoint \(a completed fit\).*resume=True"
    ):
        again.fit(X, y, groups=g)
    assert (tmp_path / CHECKPOINT_FILENAME).read_bytes() == before
    assert not (tmp_path / LOCK_FILENAME).exists()


@pytest.mark.parametrize(
    "content, match",
    [
        ({"module": {"w": torch.zeros(2)}}, r"has no 'fingerprint' entry"),
        ([1, 2, 3], r"it holds a list, not a checkpoint"),
        ({"format": "skorch"}, r"its format is 'skorch'"),
    ],
)
def test_foreign_checkpoint_is_a_clear_error(content, match, tiny_cells, tmp_path):
    """Before: KeyError 'fingerprint'."""
    torch.save(content, tmp_path / CHECKPOINT_FILENAME)
    clf = LeukoNetClassifier(checkpoint_dir=str(tmp_path), resume=True, **QUICK)
    with pytest.raises(ValueError, match=f"not written by sklearn-leuko.*{match}"):
        clf.fit(tiny_cells.images, tiny_cells.target, groups=tiny_cells.groups)


def test_checkpoint_of_another_network_shape_is_a_clear_error(tiny_cells, tmp_path):
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    LeukoNetClassifier(checkpoint_dir=str(tmp_path), **QUICK).fit(X, y, groups=g)
    state = load_checkpoint(tmp_path)
    state["completed"] = False
    key = next(k for k in state["module"] if k.endswith("classifier.weight"))
    state["module"][key] = torch.zeros(5, 5)
    atomic_torch_save(state, tmp_path / CHECKPOINT_FILENAME)
    clf = LeukoNetClassifier(checkpoint_dir=str(tmp_path), resume=True, **QUICK)
    with pytest.raises(ValueError, match="does not fit this network"):
        clf.fit(X, y, groups=g)


def test_live_lock_refuses_a_second_fit(tiny_cells, tmp_path, monkeypatch):
    """Two fits sharing a folder: the second is refused with the holder's pid."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILENAME).write_text(f"{holder.pid}@{socket.gethostname()}\n")
        _no_training(monkeypatch)
        clf = LeukoNetClassifier(checkpoint_dir=str(tmp_path), **QUICK)
        with pytest.raises(ValueError, match=f"in use by process {holder.pid}"):
            clf.fit(tiny_cells.images, tiny_cells.target, groups=tiny_cells.groups)
        assert (tmp_path / LOCK_FILENAME).exists()  # still the holder's
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_is_taken_over_with_a_warning(tiny_cells, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_FILENAME).write_text(f"{dead.pid}@{socket.gethostname()}\n")
    clf = LeukoNetClassifier(checkpoint_dir=str(tmp_path), **QUICK)
    with pytest.warns(UserWarning, match=f"taking over the lock of process {dead.pid}"):
        clf.fit(tiny_cells.images, tiny_cells.target, groups=tiny_cells.groups)
    assert not (tmp_path / LOCK_FILENAME).exists()  # released after the fit
    assert (tmp_path / CHECKPOINT_FILENAME).exists()


def test_lock_is_exclusive_within_one_process(tmp_path):
    with CheckpointLock(tmp_path):
        with pytest.raises(ValueError, match=f"in use by process {os.getpid()}"):
            CheckpointLock(tmp_path).acquire()
    with CheckpointLock(tmp_path):  # released, so free again
        pass


def test_unwritable_checkpoint_dir_fails_before_training(
    tiny_cells, tmp_path, monkeypatch
):
    """Before, the error came only after the first epoch."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _no_training(monkeypatch)
    clf = LeukoNetClassifier(checkpoint_dir=str(blocker / "ckpt"), **QUICK)
    with pytest.raises(ValueError, match=r"checkpoint_dir .*a-file/ckpt.*cannot"):
        clf.fit(tiny_cells.images, tiny_cells.target, groups=tiny_cells.groups)


# ------------------------------------------------------------- divergence
@pytest.mark.parametrize(
    "lr, where",
    [
        (1e6, "the mean training loss exploded to"),  # finite but absurd
        (1e12, "the training loss is nan at training batch 2"),
        (1e38, "the optimizer step overflowed"),  # Adam's step size
    ],
)
def test_divergence_stops_the_fit_and_keeps_no_model(lr, where, tiny_cells, tmp_path):
    """Before: NaN weights, valid_acc 1.0, best_epoch_=1, predict says 'all'."""
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    clf = LeukoNetClassifier(
        checkpoint_dir=str(tmp_path), **{**QUICK, "max_epochs": 3, "lr": lr}
    )
    with pytest.raises(ValueError, match=r"training diverged: .* in epoch 1\b") as info:
        clf.fit(X, y, groups=g)
    assert where in str(info.value)
    assert f"lower the learning rate (lr={lr!r}" in str(info.value)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    saved = load_checkpoint(tmp_path)
    if saved is not None:  # only finite epochs are ever checkpointed
        assert all(torch.isfinite(t).all() for t in saved["module"].values())
    assert not (tmp_path / LOCK_FILENAME).exists()


def test_weights_that_become_non_finite_are_caught_at_epoch_end(
    tiny_cells, monkeypatch
):
    """With one batch per epoch and no validation no loss follows the last
    update: the epoch-end check of the weights catches it."""
    X, y = tiny_cells.images[:16], tiny_cells.target[:16]
    original = skorch.NeuralNetClassifier.train_step

    def poisoning_step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        with torch.no_grad():
            next(self.module_.parameters()).fill_(float("nan"))
        return out

    monkeypatch.setattr(skorch.NeuralNetClassifier, "train_step", poisoning_step)
    clf = LeukoNetClassifier(**{**QUICK, "batch_size": 16, "validation_fraction": None})
    with pytest.raises(ValueError, match=r"the weights .* are no longer finite"):
        clf.fit(X, y)
