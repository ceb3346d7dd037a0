"""Per-cell explanations of LeukoNetClassifier: Grad-CAM heatmaps."""

import numbers

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ..nn import dihedral_view, grad_cam, inverse_dihedral_view

__all__ = ["ExplainMixin"]

_VIEWS = (1, 2, 4, 8)


class ExplainMixin:
    """Adds :meth:`explain` to :class:`~sklearn_leuko.LeukoNetClassifier`."""

    def _target_indices(self, X, target):
        classes = [str(c) for c in self.classes_]
        if isinstance(target, str) and target == "predicted":
            return np.argmax(self.predict_proba(X), axis=1)
        if isinstance(target, (str, numbers.Integral)) and not isinstance(target, bool):
            target = [target] * len(X)
        target = np.asarray(target, dtype=object)
        if target.shape != (len(X),):
            raise ValueError(
                f"target must be a class label, 'predicted', or one label per image "
                f"({len(X)}), got shape {target.shape}."
            )
        unknown = sorted({str(t) for t in target} - set(classes))
        if unknown:
            raise ValueError(
                f"target {unknown[:3]} is not a class of this classifier; use one of "
                f"{classes} or 'predicted'."
            )
        return np.array([classes.index(str(t)) for t in target])

    def explain(self, X, target="all", *, views=1, batch_size=None):
        """Grad-CAM heatmaps: which part of each cell drove the network's call.

        Gradient-weighted class activation mapping (Selvaraju et al., 2017)
        on the last convolutional block (:func:`sklearn_leuko.nn.grad_cam`,
        a short implementation with a forward hook; captum is not a
        dependency), upsampled to the input size. Runs in eval mode on the
        network's device, in batches, without augmentation; afterwards the
        model holds no gradient and is in the mode it was in.

        Parameters
        ----------
        X : ndarray of shape (n_samples, H, W, 3) or (n_samples, C, H, W)
            Input of the same kind and sample shape as in :meth:`fit`.
        target : str, int or array-like, default="all"
            The class whose evidence is mapped: a label of ``classes_``
            (``"all"``: what makes the cell look leukemic), ``"predicted"``
            (each cell's predicted class: what drove the call), or one label
            per cell.
        views : {1, 2, 4, 8}, default=1
            Average the heatmaps of this many exact flips / 90-degree
            rotations of each cell (:func:`sklearn_leuko.nn.dihedral_view`),
            each mapped back onto the cell. Cancels the network's own
            positional biases (e.g. the stem's padding); 8 needs square
            images.
        batch_size : int, default=None
            Cells per forward/backward pass; ``None`` uses ``batch_size``.

        Returns
        -------
        heatmaps : ndarray of float32, shape (n_samples, H, W)
            Values in [0, 1], each map's maximum 1 (or all 0 when the
            network sees no positive evidence).

        Examples
        --------
        >>> from sklearn_leuko import LeukoNetClassifier
        >>> from sklearn_leuko.datasets import make_cells
        >>> data = make_cells(n_subjects=6, cells_per_subject=4, image_size=65,
        ...                   random_state=0)
        >>> clf = LeukoNetClassifier(preprocessing="od", widths=(4,) * 6,
        ...                          max_epochs=1, verbose=0, random_state=0,
        ...                          validation_fraction=None)
        >>> heat = clf.fit(data.images, data.target).explain(data.images[:2])
        >>> heat.shape, heat.dtype
        ((2, 65, 65), dtype('float32'))
        """
        check_is_fitted(self)
        X = self._check_predict_input(X)
        if views not in _VIEWS or isinstance(views, bool):
            raise ValueError(f"views must be one of {_VIEWS}, got {views!r}.")
        batch_size = self.batch_size if batch_size is None else batch_size
        indices = self._target_indices(X, target)
        layout = "NHWC" if self.input_kind_ == "rgb" else "NCHW"
        module = self.net_.module_
        batch = torch.from_numpy(np.ascontiguousarray(X))
        total = None
        for k in range(views):
            view = dihedral_view(batch, k, layout=layout)
            heat = grad_cam(module, view, indices, batch_size=batch_size)
            heat = inverse_dihedral_view(heat[..., None], k, layout="NHWC")[..., 0]
            total = heat if total is None else total + heat
        if views > 1:
            peak = total.flatten(1).amax(dim=1).clamp(min=1e-12)[:, None, None]
            total = torch.where(total > 0, total / peak, total)
        return total.numpy().astype(np.float32, copy=False)
