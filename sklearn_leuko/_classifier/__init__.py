"""LeukoNetClassifier and what only it uses.

- ``_estimator``: the estimator (parameters, fit, predict);
- ``_building``: its torch module and skorch net, from parameters and fitted state;
- ``_training``: inner validation split, training rows, data placement, resume;
- ``_explain``: Grad-CAM through the estimator;
- ``_compile``: inference through torch.compile;
- ``_params``: its parameter constraints and skorch-style pass-through;
- ``_net``: the skorch net it trains;
- ``_datapath``: batches drawn from the uint8 image array;
- ``_callbacks``: best-epoch restore, resumable checkpoints, early stop;
- ``_interrupt``: Ctrl-C deferred to the next batch boundary;
- ``_versioning``: pickles that remember the library version;
- ``_tta_outputs``: test-time augmentation of the outputs (``tta``).
"""

from ._estimator import CellLevelSplitWarning, InnerSplitWarning, LeukoNetClassifier
from ._params import is_pass_through_param

__all__ = [
    "CellLevelSplitWarning",
    "InnerSplitWarning",
    "LeukoNetClassifier",
    "is_pass_through_param",
]
