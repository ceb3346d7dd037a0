"""skorch callbacks: best-epoch restore and atomic, resumable checkpoints."""

import copy
import json
from pathlib import Path

import torch
from skorch.callbacks import Callback

from ..utils._files import atomic_write

CHECKPOINT_FILENAME = "checkpoint.pt"


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


class ResumableCheckpoint(Callback):
    """Write everything needed to resume training after every epoch.

    The file holds the module and optimizer states, the history, the state
    of :class:`RestoreBestWeights`, the torch random number generator state
    and a fingerprint of the estimator's configuration and data. It is
    written atomically (temporary file + rename).

    Parameters
    ----------
    directory : str or path-like
    fingerprint : dict
        Configuration and data summary; a resumed fit must match it.
    best_callback : RestoreBestWeights or None
    """

    def __init__(self, directory, fingerprint, best_callback=None):
        self.directory = directory
        self.fingerprint = fingerprint
        self.best_callback = best_callback

    @property
    def path(self):
        return Path(self.directory) / CHECKPOINT_FILENAME

    def on_epoch_end(self, net, **kwargs):
        state = {
            "fingerprint": self.fingerprint,
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


def load_checkpoint(directory):
    """Load a checkpoint written by :class:`ResumableCheckpoint` (no code runs:
    ``weights_only=True``). Returns ``None`` if there is none."""
    path = Path(directory) / CHECKPOINT_FILENAME
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"checkpoint {path} could not be read ({exc}); delete it to start over."
        ) from exc
