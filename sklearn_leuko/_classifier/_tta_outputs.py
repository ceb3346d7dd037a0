"""Test-time augmentation (``tta``) of LeukoNetClassifier's outputs.

At inference each cell is seen in ``n`` exact flips / 90-degree rotations
(the first ``n`` of :data:`sklearn_leuko.nn.DIHEDRAL_VIEWS`) and the outputs
are averaged: probabilities (the mean of the views' softmax, as
:func:`sklearn_leuko.nn.tta_predict_proba`), features, and the decision
function derived from the averaged probabilities. The views are made per
batch on the network's device from the uint8 images, before the
preprocessing: the optical density of a flipped cell is the flipped optical
density, but its DCT is not the flipped DCT, so preprocessed float input
cannot be augmented.
"""

import numbers
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ..nn import mean_over_views
from ._datapath import ImageBatchDataset

__all__ = ["TTA_VALUES", "TTAMixin", "check_tta", "resolve_tta", "tta_override"]

#: Accepted values of ``tta``.
TTA_VALUES = (False, True, 1, 2, 4, 8)
_N_VIEWS = (1, 2, 4, 8)


def resolve_tta(tta, name="tta"):
    """The number of views a ``tta`` value means.

    Parameters
    ----------
    tta : bool or int
        ``False`` or 1: no augmentation; 2, 4, 8: that many views; ``True``:
        8.
    name : str, default="tta"
        The parameter's name in the error message.

    Returns
    -------
    n_views : int in {1, 2, 4, 8}

    Raises
    ------
    ValueError
        Any other value (3, 1.5, "yes", ...).
    """
    if isinstance(tta, (bool, np.bool_)):
        return 8 if tta else 1
    if isinstance(tta, numbers.Integral) and int(tta) in _N_VIEWS:
        return int(tta)
    raise ValueError(
        f"{name} must be one of False, True, 1, 2, 4 or 8 (the number of flipped / "
        "rotated views averaged at prediction; True means 8, False and 1 mean no "
        f"test-time augmentation), got {tta!r}."
    )


def check_tta(tta, input_kind, input_shape):
    """Resolve ``tta`` and check that the fitted input form allows it.

    Parameters
    ----------
    tta : bool or int
    input_kind : {"rgb", "channels_first"}
        ``input_kind_`` of the classifier.
    input_shape : tuple
        ``input_shape_`` of the classifier (one sample).

    Returns
    -------
    n_views : int in {1, 2, 4, 8}

    Raises
    ------
    ValueError
        ``tta`` > 1 on preprocessed float input, or 8 on non-square images.
    """
    n_views = resolve_tta(tta)
    if n_views == 1:
        return n_views
    if input_kind != "rgb":
        raise ValueError(
            f"tta={tta!r} needs the raw uint8 RGB images (n, H, W, 3), but this "
            "classifier takes preprocessed float (n, C, H, W) arrays: the DCT of a "
            "flipped cell is not the flipped DCT, so the views must be made before "
            "the preprocessing. Fit it on the images with preprocessing= set (the "
            "device form that make_stage builds), or use tta=False."
        )
    height, width = input_shape[:2]
    if n_views == 8 and height != width:
        raise ValueError(
            f"tta={tta!r} adds the 90-degree rotations, which need square images, "
            f"but this classifier takes {height}x{width} images; use tta=4 (the four "
            "flips, any shape)."
        )
    return n_views


def _tta_owners(estimator):
    if hasattr(estimator, "steps"):
        return _tta_owners(estimator.steps[-1][1])
    if "tta" in estimator.get_params(deep=False):
        return [estimator]
    return []


@contextmanager
def tta_override(estimators, tta, name="tta"):
    """Within the block, every estimator with a ``tta`` parameter uses ``tta``.

    Used by :class:`~sklearn_leuko.FeatureFusionClassifier` to average the
    features of its fitted networks without refitting them: each estimator
    that has a ``tta`` parameter (a :class:`~sklearn_leuko.LeukoNetClassifier`,
    a nested fusion), alone or as the last step of a Pipeline, gets ``tta``
    for the block and its own value back afterwards, also on error.

    Parameters
    ----------
    estimators : list of estimators
        Fitted estimators.
    tta : None, bool or int
        ``None`` changes nothing.
    name : str, default="tta"
        The parameter's name in error messages.

    Raises
    ------
    ValueError
        An invalid ``tta``, or ``tta`` > 1 when none of the estimators has a
        ``tta`` parameter.
    """
    if tta is None:
        yield
        return
    n_views = resolve_tta(tta, name)
    owners = [owner for est in estimators for owner in _tta_owners(est)]
    if n_views > 1 and not owners:
        raise ValueError(
            f"{name}={tta!r}, but none of the base estimators has a tta parameter "
            "(LeukoNetClassifier, alone or ending a Pipeline), so there is nothing to "
            f"average; use {name}=None."
        )
    saved = [owner.tta for owner in owners]
    try:
        for owner in owners:
            owner.set_params(tta=tta)
        yield
    finally:
        for owner, value in zip(owners, saved, strict=True):
            owner.set_params(tta=value)


class TTAMixin:
    """Adds the ``tta`` paths of :class:`~sklearn_leuko.LeukoNetClassifier`."""

    def _tta_views(self):
        check_is_fitted(self)
        return check_tta(self.tta, self.input_kind_, self.input_shape_)

    def _tta_mean(self, X, n_views, fn):
        """``mean_over_views(fn)`` of every batch of ``X``, float64 on the host.

        The batches come from the prediction iterator of the skorch net
        (on CUDA: pinned, copied one batch ahead); the means stay on the
        device until the last batch.
        """
        self.net_.module_.eval()
        out = []
        with torch.no_grad(), self._inference() as (forward, features):
            for batch, _ in self.net_.get_iterator(ImageBatchDataset(X)):
                x = batch["X"].to(self.net_.device)
                out.append(
                    mean_over_views(lambda v: fn(forward, features, v), x, n_views)
                )
        return torch.cat(out).cpu().numpy()

    def _tta_predict_proba(self, X, n_views):
        return self._tta_mean(
            X, n_views, lambda forward, _, v: torch.softmax(forward(v).float(), dim=1)
        )

    def _tta_decision_function(self, X, n_views):
        # The log of the averaged probabilities (float64 softmax: no
        # underflow to 0), so that the decision agrees with predict_proba.
        proba = self._tta_mean(
            X, n_views, lambda forward, _, v: torch.softmax(forward(v).double(), dim=1)
        )
        log_proba = np.log(np.maximum(proba, np.finfo(np.float64).tiny))
        if log_proba.shape[1] == 2:
            return log_proba[:, 1] - log_proba[:, 0]
        return log_proba

    def _tta_transform(self, X, n_views):
        features = self._tta_mean(X, n_views, lambda _, features, v: features(v))
        return features.astype(np.float32)
