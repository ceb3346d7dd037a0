"""The skorch net inside LeukoNetClassifier and the small modules it needs."""

import torch
from skorch import NeuralNetClassifier

from ._callbacks import StopTraining

__all__ = ["OPTIMIZERS", "ScaleToUnit", "SkorchNet"]

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


class SkorchNet(NeuralNetClassifier):
    """skorch's classifier, remembering whether training was interrupted.

    skorch ends ``fit`` quietly on ``KeyboardInterrupt``; ``interrupted_``
    lets :class:`~sklearn_leuko.LeukoNetClassifier` pass a real Ctrl-C on
    (early stopping raises :class:`StopTraining`, which is not one).
    """

    interrupted_ = False

    def fit_loop(self, *args, **kwargs):
        try:
            return super().fit_loop(*args, **kwargs)
        except StopTraining:
            return self
        except KeyboardInterrupt:
            self.interrupted_ = True
            raise


class ScaleToUnit(torch.nn.Module):
    """RGB in [0, 255] -> [0, 1], used when no preprocessing is set."""

    def forward(self, x):
        return x / 255.0
