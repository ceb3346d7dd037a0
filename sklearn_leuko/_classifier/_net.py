"""The skorch net inside LeukoNetClassifier and the small modules it needs."""

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.dataset import get_len

from ._callbacks import StopTraining
from ._datapath import BatchLoader

__all__ = ["OPTIMIZERS", "ScaleToUnit", "SkorchNet"]

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


_SAME_AS_MODULE_ = "<the module_ attribute>"


class SkorchNet(NeuralNetClassifier):
    """skorch's classifier, without host synchronisations in the batch loop.

    Differences from :class:`skorch.NeuralNetClassifier`:

    - ``interrupted_`` remembers a Ctrl-C: skorch ends ``fit`` quietly on
      ``KeyboardInterrupt``, and :class:`~sklearn_leuko.LeukoNetClassifier`
      passes a real one on (early stopping raises :class:`StopTraining`,
      which is not one);
    - with ``defer_loss_sync=True``, the per-batch losses go to the history
      at the end of each epoch, in one transfer, instead of one
      ``loss.item()`` per batch (each one waits for a GPU to finish the
      batch, so the host cannot queue the next one meanwhile). During the
      epoch the history holds the loss as a 0-d tensor (``float(...)``
      works); callbacks also get it as ``loss`` in ``on_batch_end``, as in
      skorch;
    - ``predict_proba`` keeps the batch outputs on the device and copies
      them to the host once, instead of once per batch;
    - a :class:`~sklearn_leuko._classifier._datapath.BatchLoader` iterator
      gets the net's ``device`` (also after a CUDA model is unpickled on a
      machine without CUDA, where skorch moves the net to the CPU).

    Parameters
    ----------
    *args, **kwargs
        As for :class:`skorch.NeuralNetClassifier`.
    defer_loss_sync : bool, default=False
        See above. Worth it on CUDA only: on the CPU ``item()`` costs nothing.
    """

    interrupted_ = False

    def __init__(self, *args, defer_loss_sync=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.defer_loss_sync = defer_loss_sync

    def __getstate__(self):
        state = dict(super().__getstate__())
        # skorch pickles ``module_`` apart from the ``module`` it was built
        # from; here they are one object, so store the weights once.
        if state.get("module") is self.__dict__.get("module_"):
            state["module"] = _SAME_AS_MODULE_
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if isinstance(self.__dict__.get("module"), str) and (
            self.module == _SAME_AS_MODULE_
        ):
            self.module = self.module_

    def fit_loop(self, *args, **kwargs):
        try:
            return super().fit_loop(*args, **kwargs)
        except StopTraining:
            return self
        except KeyboardInterrupt:
            self.interrupted_ = True
            raise

    def get_iterator(self, dataset, training=False):
        prefix = "iterator_train" if training else "iterator_valid"
        iterator = getattr(self, prefix)
        kwargs = self.get_params_for(prefix)
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        if isinstance(iterator, type) and issubclass(iterator, BatchLoader):
            kwargs["device"] = self.device
        return iterator(dataset, **kwargs)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if not self.defer_loss_sync:
            return super().run_single_epoch(
                iterator, training, prefix, step_fn, **fit_params
            )
        if iterator is None:
            return None
        key = prefix + "_loss"
        batch_count = 0
        losses, rows = [], []
        try:
            for batch in iterator:
                self.notify("on_batch_begin", batch=batch, training=training)
                step = step_fn(batch, **fit_params)
                loss = step["loss"].detach()
                self.history.record_batch(key, loss)
                losses.append(loss)
                rows.append(self.history[-1]["batches"][-1])
                batch_size = (
                    get_len(batch[0])
                    if isinstance(batch, (tuple, list))
                    else get_len(batch)
                )
                self.history.record_batch(prefix + "_batch_size", batch_size)
                self.notify("on_batch_end", batch=batch, training=training, **step)
                batch_count += 1
        finally:
            # Also when a callback stops the epoch: no tensor stays in the history.
            if losses:
                # The one synchronisation of the epoch.
                values = torch.stack(losses).float().cpu().tolist()
                for row, value in zip(rows, values, strict=True):
                    row[key] = value
        self.history.record(prefix + "_batch_count", batch_count)
        return None

    def predict_proba(self, X):
        """Class probabilities, gathered on the device and copied once.

        Parameters
        ----------
        X : torch Dataset or array
            As for :meth:`skorch.NeuralNetClassifier.predict_proba`.

        Returns
        -------
        y_proba : ndarray of shape (n_samples, n_classes)
        """
        nonlin = self._get_predict_nonlinearity()
        y_probas = []
        for yp in self.forward_iter(X, training=False, device=self.device):
            yp = yp[0] if isinstance(yp, tuple) else yp
            y_probas.append(nonlin(yp))
        if not y_probas:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        return torch.cat(y_probas).cpu().numpy()


class ScaleToUnit(torch.nn.Module):
    """RGB in [0, 255] -> [0, 1], used when no preprocessing is set."""

    def forward(self, x):
        return x / 255.0
