"""skorch callbacks and the checkpoint folder: best-epoch restore, resumable
checkpoints (atomic, validated, locked) and the divergence guard."""

import copy
import hashlib
import json
import math
import os
import socket
import warnings
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback

from ..utils._files import atomic_write, check_writable

CHECKPOINT_FILENAME = "checkpoint.pt"
LOCK_FILENAME = "checkpoint.lock"
#: Written into every checkpoint; a file without it was not written here.
CHECKPOINT_FORMAT = "sklearn-leuko-checkpoint"


class StopTraining(KeyboardInterrupt):
    """Raised by a callback to end training cleanly (early stopping).

    skorch ends training on ``KeyboardInterrupt``; a real Ctrl-C, unlike this
    subclass, is passed on to the caller by :class:`LeukoNetClassifier`.
    """


def _cpu_state_dict(module):
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class RestoreBestWeights(Callback):
    """Keep the weights of the epoch with the best validation score in memory.

    The paper's protocol: "Models resulting from best validation set accuracy
    were used on the test set." At the end of training the best weights are
    loaded back into the module. Ties keep the earliest epoch.

    Parameters
    ----------
    monitor : str, default="valid_acc"
        History key to maximise.
    patience : int or None, default=None
        Stop training (:class:`StopTraining`) after this many epochs without
        improvement.
    """

    def __init__(self, monitor="valid_acc", patience=None):
        self.monitor = monitor
        self.patience = patience

    def initialize(self):
        self.best_score_ = None
        self.best_epoch_ = None
        self.best_state_ = None
        return self

    def on_epoch_end(self, net, **kwargs):
        score = net.history[-1].get(self.monitor)
        if score is None:
            return
        epoch = int(net.history[-1, "epoch"])
        if self.best_score_ is None or score > self.best_score_:
            self.best_score_ = float(score)
            self.best_epoch_ = epoch
            self.best_state_ = _cpu_state_dict(net.module_)
        elif self.patience is not None and epoch - self.best_epoch_ >= self.patience:
            raise StopTraining

    def on_train_end(self, net, **kwargs):
        if self.best_state_ is not None:
            net.module_.load_state_dict(self.best_state_)

    def get_state(self):
        return {
            "best_score": self.best_score_,
            "best_epoch": self.best_epoch_,
            "best_state": self.best_state_,
        }

    def set_state(self, state):
        self.best_score_ = state["best_score"]
        self.best_epoch_ = state["best_epoch"]
        self.best_state_ = state["best_state"]


class StopOnDivergence(Callback):
    """Stop training with a clear error as soon as it diverges.

    A too large learning rate makes the loss and then every weight NaN or
    infinite (``lr=1e12``), or blows the loss up to absurd but finite values
    (``lr=1e6``: a loss of 10**6, every cell predicted as one class); the
    validation "accuracy" of such a network can even look good. This
    callback raises a ``ValueError`` that names the epoch, the batch and the
    fix when

    - the loss of a training or validation batch is not finite;
    - at the end of an epoch, before the best-epoch and checkpoint callbacks
      run, a weight or buffer is not finite, or the mean training loss
      exceeds ``100 * ln(n_classes)`` (about 69 for two classes: a guess
      scores ``ln(n_classes)``, and a fit that trains is far below it).

    No model is kept; a checkpoint keeps the last finite epoch.

    Parameters
    ----------
    lr : float
        The learning rate, quoted in the message.
    n_classes : int, default=2
    """

    def __init__(self, lr, n_classes=2):
        self.lr = lr
        self.n_classes = n_classes

    def on_epoch_begin(self, net, **kwargs):
        self.batches_ = {True: 0, False: 0}

    def diverged(self, epoch, where):
        return diverged_error(self.lr, epoch, where)

    def on_batch_end(self, net, batch=None, training=False, loss=None, **kwargs):
        self.batches_[training] += 1
        if loss is not None and not bool(torch.isfinite(loss.detach()).all()):
            kind = "training" if training else "validation"
            raise self.diverged(
                len(net.history),
                f"the {kind} loss is {float(loss.detach().float().mean())} at "
                f"{kind} batch {self.batches_[training]}",
            )

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history)
        for name, tensor in net.module_.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise self.diverged(epoch, f"the weights {name} are no longer finite")
        loss = net.history[-1].get("train_loss")
        limit = 100 * math.log(max(2, self.n_classes))
        if loss is not None and loss > limit:
            raise self.diverged(
                epoch,
                f"the mean training loss exploded to {loss:.3g} (a guess scores "
                f"{limit / 100:.2f}; above {limit:.0f} counts as diverged)",
            )


def diverged_error(lr, epoch, where):
    """The error of a fit that diverged; ``epoch`` is 1-based."""
    fix = f"lower the learning rate (lr={lr!r}; the default is 1e-3)"
    return ValueError(
        f"training diverged: {where} in epoch {epoch}. No model was kept; {fix}, and "
        "check that the input holds finite values."
    )


# ------------------------------------------------------------- checkpoints
def _plain(obj):
    """History entries hold numpy scalars; ``weights_only`` loading wants plain
    Python types."""
    return json.loads(json.dumps(obj, default=lambda o: o.item()))


def atomic_torch_save(obj, path):
    """``torch.save`` to a temporary file, then rename: a kill never leaves
    a half-written checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        torch.save(obj, handle)


def _update_digest(digest, array, chunk_bytes=1 << 26):
    """Feed ``array`` (its dtype, shape and every value) to ``digest``.

    Numeric arrays are streamed in chunks of about 64 MiB straight from their
    buffer (no copy of a contiguous array or memmap; a non-contiguous one is
    copied one chunk at a time). Object arrays (subject IDs) are hashed by the
    ``repr`` of each value, so ``7`` and ``"7"`` differ.
    """
    array = np.asarray(array)
    digest.update(f"{array.dtype.str}{array.shape};".encode())
    if array.dtype.kind == "O":
        digest.update("\x00".join(map(repr, array.ravel().tolist())).encode())
        return
    if array.ndim == 0 or array.size == 0:
        digest.update(array.tobytes())
        return
    row_bytes = max(1, array[0].nbytes)
    step = max(1, chunk_bytes // row_bytes)
    for start in range(0, len(array), step):
        chunk = np.ascontiguousarray(array[start : start + step])
        digest.update(memoryview(chunk).cast("B"))


def data_digest(*arrays):
    """SHA-256 of every value of ``arrays`` (``None`` entries allowed).

    Used by the resume fingerprint: a resumed fit must see exactly the data
    of the interrupted one. SHA-256 runs at about 0.7 GB/s on one core of
    the project's CPU (1.4 s for 1 GB of uint8 images).
    """
    digest = hashlib.sha256()
    for array in arrays:
        if array is None:
            digest.update(b"None;")
        else:
            _update_digest(digest, array)
    return digest.hexdigest()


class ResumableCheckpoint(Callback):
    """Write everything needed to resume training after every epoch.

    The file holds the module and optimizer states, the history, the state
    of :class:`RestoreBestWeights`, the torch random number generator state,
    the seed of the fit's own random draws (inner split, resampling) and a
    fingerprint of the estimator's configuration and data. It is written
    atomically (temporary file + rename). At the end of a fit that was not
    interrupted it is written once more, marked ``completed``.

    Parameters
    ----------
    directory : str or path-like
    fingerprint : dict
        Configuration and data summary; a resumed fit must match it.
    best_callback : RestoreBestWeights or None
    fit_seed : int or None, default=None
        Seed of the fit's random draws when ``random_state`` is not an int;
        a resumed fit reuses it, so it validates on the same subjects.
    """

    def __init__(self, directory, fingerprint, best_callback=None, fit_seed=None):
        self.directory = directory
        self.fingerprint = fingerprint
        self.best_callback = best_callback
        self.fit_seed = fit_seed

    @property
    def path(self):
        return Path(self.directory) / CHECKPOINT_FILENAME

    def _save(self, net, completed):
        state = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self.fingerprint,
            "fit_seed": self.fit_seed,
            "completed": completed,
            "epoch": len(net.history),
            "module": _cpu_state_dict(net.module_),
            "optimizer": copy.deepcopy(net.optimizer_.state_dict()),
            "history": _plain(net.history.to_list()),
            "best": None
            if self.best_callback is None
            else self.best_callback.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        atomic_torch_save(state, self.path)

    def on_epoch_end(self, net, **kwargs):
        self._save(net, completed=False)

    def on_train_end(self, net, **kwargs):
        # skorch also ends training this way after Ctrl-C: that is no end.
        if not getattr(net, "interrupted_", False):
            self._save(net, completed=True)


def _foreign(path, what):
    return ValueError(
        f"checkpoint {path} was not written by sklearn-leuko's LeukoNetClassifier "
        f"({what}); delete it, or choose another checkpoint_dir."
    )


def _is_state_dict(value):
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def _check_checkpoint(state, path):
    """Refuse anything but a checkpoint of :class:`ResumableCheckpoint`."""
    if not isinstance(state, dict):
        raise _foreign(path, f"it holds a {type(state).__name__}, not a checkpoint")
    if "format" in state and state["format"] != CHECKPOINT_FORMAT:
        raise _foreign(path, f"its format is {state['format']!r}")
    checks = {
        "fingerprint": lambda v: (
            isinstance(v, dict)
            and all(isinstance(v.get(k), str) for k in ("params", "data", "version"))
        ),
        "epoch": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "module": _is_state_dict,
        "optimizer": lambda v: isinstance(v, dict) and "state" in v,
        "history": lambda v: isinstance(v, list),
        "best": lambda v: (
            v is None
            or (
                isinstance(v, dict)
                and {"best_score", "best_epoch", "best_state"} <= set(v)
            )
        ),
        "torch_rng": lambda v: isinstance(v, torch.Tensor) and v.dtype == torch.uint8,
    }
    for key, ok in checks.items():
        if key not in state:
            raise _foreign(path, f"it has no {key!r} entry")
        if not ok(state[key]):
            raise _foreign(path, f"its {key!r} entry is not what a checkpoint holds")
    # Written by versions before these entries existed.
    state.setdefault("completed", False)
    state.setdefault("fit_seed", None)
    return state


def load_checkpoint(directory):
    """Load and check a checkpoint written by :class:`ResumableCheckpoint`.

    No code runs (``weights_only=True``).

    Returns
    -------
    state : dict or None
        ``None`` if there is none.

    Raises
    ------
    ValueError
        The file cannot be read, or it is not a checkpoint of this library
        (another program's file, a truncated or corrupt file).
    """
    path = Path(directory) / CHECKPOINT_FILENAME
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"checkpoint {path} could not be read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); delete it to start over."
        ) from exc
    return _check_checkpoint(state, path)


def fingerprint_mismatch(saved, current):
    """What differs between two fingerprints, in words (``None``: nothing)."""
    if saved == current:
        return None
    try:
        old, new = json.loads(saved["params"]), json.loads(current["params"])
    except (TypeError, ValueError):
        old, new = {}, {}
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    parts = []
    if changed:
        shown = ", ".join(
            f"{k}: {old.get(k, '(unset)')} -> {new.get(k, '(unset)')}"
            for k in changed[:4]
        )
        parts.append(f"other parameters ({shown})")
    elif saved.get("params") != current.get("params"):
        parts.append("other parameters")
    if saved.get("data") != current.get("data"):
        parts.append("other data (images, labels, subject IDs or validation_data)")
    if saved.get("version") != current.get("version"):
        parts.append(
            f"another sklearn-leuko version ({saved.get('version')} -> "
            f"{current.get('version')})"
        )
    return " and ".join(parts) or "another configuration"


# ------------------------------------------------------------------- locks
def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return True
    return True


class CheckpointLock:
    """One fit at a time per checkpoint folder: a lock file holding the pid.

    The lock file is created with ``O_CREAT | O_EXCL``, so of two fits that
    start together exactly one gets it; the other is refused with the pid
    that holds the folder. A lock left behind by a process that no longer
    runs (killed with SIGKILL, machine crash) is taken over with a warning.
    A lock written on another host cannot be checked and is never taken over.

    Parameters
    ----------
    directory : str or path-like
        The checkpoint folder; it must exist.
    """

    def __init__(self, directory):
        self.path = Path(directory) / LOCK_FILENAME
        self.token = f"{os.getpid()}@{socket.gethostname()}"
        self.held = False

    def _create(self):
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.token + "\n")

    def _owner(self):
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return None, None
        except OSError:
            return "", ""
        pid, _, host = text.partition("@")
        return (int(pid) if pid.isdigit() else None), host

    def _refuse(self, owner):
        return ValueError(
            f"checkpoint_dir {self.path.parent} is in use by {owner} (lock file "
            f"{self.path}): two fits must not write one checkpoint. Wait for it to "
            "end or choose another checkpoint_dir; if no such fit runs, delete the "
            "lock file."
        )

    def acquire(self):
        for _ in range(2):
            try:
                self._create()
                self.held = True
                return self
            except FileExistsError:
                pass
            pid, host = self._owner()
            if pid is None and host is None:
                continue  # released meanwhile: try again
            here = socket.gethostname()
            if pid is None or host != here:
                raise self._refuse(f"process {pid or '?'} on host {host or '?'}")
            if pid == os.getpid() or _process_alive(pid):
                raise self._refuse(f"process {pid}")
            warnings.warn(
                f"checkpoint_dir {self.path.parent}: taking over the lock of process "
                f"{pid}, which no longer runs (it was probably killed).",
                UserWarning,
                stacklevel=4,
            )
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        # Lost the race for a stale lock to another process.
        pid, host = self._owner()
        raise self._refuse(f"process {pid or '?'}")

    def release(self):
        if not self.held:
            return
        self.held = False
        pid, host = self._owner()
        if pid == os.getpid() and host == socket.gethostname():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def check_checkpoint_dir(directory):
    """Fail before training, naming the folder, if checkpoints cannot be written."""
    return check_writable(Path(directory) / CHECKPOINT_FILENAME, "checkpoint_dir")
