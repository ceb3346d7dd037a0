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


_SAME_AS_MODULE_ = "<the module_ attribute>"


class SkorchNet(NeuralNetClassifier):
    """skorch's classifier, remembering whether training was interrupted.

    skorch ends ``fit`` quietly on ``KeyboardInterrupt``; ``interrupted_``
    lets :class:`~sklearn_leuko.LeukoNetClassifier` pass a real Ctrl-C on
    (early stopping raises :class:`StopTraining`, which is not one).
    """

    interrupted_ = False

    def __getstate__(self):
        state = super().__getstate__()
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


class ScaleToUnit(torch.nn.Module):
    """RGB in [0, 255] -> [0, 1], used when no preprocessing is set."""

    def forward(self, x):
        return x / 255.0
