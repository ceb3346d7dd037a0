"""Test-time augmentation over the exact flips and 90-degree rotations of a cell.

A segmented cell on a black canvas has no preferred orientation, so the eight
symmetries of the square (the dihedral group D4) give eight equally valid
views of it. They are index permutations (:func:`torch.flip`,
:func:`torch.rot90`): no interpolation, no border effect, exactly invertible.
"""

import numbers

import numpy as np
import torch
from torch import nn

from ..utils._validation import check_positive_int

__all__ = [
    "DIHEDRAL_VIEWS",
    "dihedral_view",
    "inverse_dihedral_view",
    "mean_over_views",
    "tta_predict_proba",
]

#: Names of the eight views, in the order of ``k`` in :func:`dihedral_view`.
#: The first ``n_views`` are used by :func:`tta_predict_proba`: 1 = the image,
#: 2 = + horizontal flip, 4 = the four flips (any image shape), 8 = all of D4
#: (square images only).
DIHEDRAL_VIEWS = (
    "identity",
    "hflip",
    "vflip",
    "rot180",
    "rot90",
    "rot270",
    "transpose",
    "antitranspose",
)
_N_VIEWS = (1, 2, 4, 8)
_LAYOUTS = ("NHWC", "NCHW")


def _spatial_dims(layout):
    if layout not in _LAYOUTS:
        raise ValueError(
            f"layout must be 'NHWC' (uint8 RGB batches) or 'NCHW' (float "
            f"channels-first batches), got {layout!r}."
        )
    return (1, 2) if layout == "NHWC" else (2, 3)


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k < 8:
        raise ValueError(
            f"k must be an int in [0, 8) indexing DIHEDRAL_VIEWS, got {k!r}."
        )
    return int(k)


def _check_square(x, dims, k, name="x"):
    if k >= 4 and x.shape[dims[0]] != x.shape[dims[1]]:
        raise ValueError(
            f"view {k} ({DIHEDRAL_VIEWS[k]}) turns the image by 90 degrees and needs "
            f"square images, but {name} is {x.shape[dims[0]]}x{x.shape[dims[1]]}; "
            "use only the flips (n_views <= 4) on non-square images."
        )


def dihedral_view(x, k, *, layout="NHWC"):
    """The ``k``-th of the eight flips and 90-degree rotations of a batch.

    ``k`` indexes :data:`DIHEDRAL_VIEWS`: 0 identity, 1 horizontal flip
    (left-right), 2 vertical flip (up-down), 3 rotation by 180 degrees,
    4 rotation by 90 degrees counter-clockwise, 5 by 270 degrees, 6
    transpose (mirror on the main diagonal), 7 anti-transpose. Views 0-3 keep
    any image shape; views 4-7 need square images. Every view is an exact
    permutation of the pixels, on the batch's device, in any dtype.

    Parameters
    ----------
    x : torch.Tensor
        Batch of shape ``(n, H, W, C)`` (``layout="NHWC"``) or
        ``(n, C, H, W)`` (``layout="NCHW"``).
    k : int in [0, 8)
        Which view.
    layout : {"NHWC", "NCHW"}, default="NHWC"
        Position of the spatial axes.

    Returns
    -------
    view : torch.Tensor
        Same shape, dtype and device as ``x``.

    See Also
    --------
    inverse_dihedral_view : Undo a view.

    Examples
    --------
    >>> import torch
    >>> from sklearn_leuko.nn import dihedral_view
    >>> x = torch.arange(4).reshape(1, 2, 2, 1)
    >>> dihedral_view(x, 1)[0, ..., 0].tolist()
    [[1, 0], [3, 2]]
    """
    k = _check_k(k)
    h, w = _spatial_dims(layout)
    _check_square(x, (h, w), k)
    if k == 0:
        return x
    if k == 1:
        return torch.flip(x, dims=(w,))
    if k == 2:
        return torch.flip(x, dims=(h,))
    if k == 3:
        return torch.flip(x, dims=(h, w))
    if k == 4:
        return torch.rot90(x, 1, dims=(h, w))
    if k == 5:
        return torch.rot90(x, 3, dims=(h, w))
    if k == 6:
        return x.transpose(h, w)
    return torch.flip(x, dims=(h, w)).transpose(h, w)


def inverse_dihedral_view(x, k, *, layout="NHWC"):
    """Undo :func:`dihedral_view`: ``inverse_dihedral_view(dihedral_view(x, k), k)``
    is ``x`` exactly.

    Views 0-3 and 6-7 are their own inverses; 90 and 270 degrees undo each
    other. Use it to map a per-pixel output of a view (e.g. a heatmap) back
    onto the original image.

    Parameters
    ----------
    x : torch.Tensor
        A view, laid out as in :func:`dihedral_view`.
    k : int in [0, 8)
        The view that produced ``x``.
    layout : {"NHWC", "NCHW"}, default="NHWC"

    Returns
    -------
    original : torch.Tensor

    Examples
    --------
    >>> import torch
    >>> from sklearn_leuko.nn import dihedral_view, inverse_dihedral_view
    >>> x = torch.rand(2, 3, 5, 5)
    >>> bool((inverse_dihedral_view(dihedral_view(x, 4, layout="NCHW"), 4,
    ...                             layout="NCHW") == x).all())
    True
    """
    k = _check_k(k)
    return dihedral_view(x, {4: 5, 5: 4}.get(k, k), layout=layout)


def _check_n_views(n_views):
    if isinstance(n_views, bool) or not isinstance(n_views, numbers.Integral):
        raise TypeError(f"n_views must be one of {_N_VIEWS}, got {n_views!r}.")
    if n_views not in _N_VIEWS:
        raise ValueError(
            f"n_views must be one of {_N_VIEWS} (1: no augmentation, 2: + horizontal "
            "flip, 4: all flips, 8: flips and 90-degree rotations), got "
            f"{n_views!r}."
        )
    return int(n_views)


def mean_over_views(fn, x, n_views, *, layout="NHWC"):
    """Average of ``fn`` over the first ``n_views`` views of a batch.

    ``mean_k fn(dihedral_view(x, k))`` for ``k < n_views``, the outputs
    summed in float64: up to 8 float32 values add exactly, so views with
    identical outputs give back the single-view output bit for bit. One call
    of ``fn`` per view, on the batch's device; for inference call it under
    :func:`torch.no_grad`.

    Parameters
    ----------
    fn : callable
        Maps a batch, laid out like ``x``, to a tensor whose first axis is
        the batch (probabilities, features, ...).
    x : torch.Tensor
        Batch, ``(n, H, W, C)`` or ``(n, C, H, W)``.
    n_views : {1, 2, 4, 8}
        How many views (see :func:`tta_predict_proba`); 8 needs square
        images.
    layout : {"NHWC", "NCHW"}, default="NHWC"

    Returns
    -------
    mean : torch.Tensor of float64
        Shape of ``fn``'s output, on its device.

    Examples
    --------
    >>> import torch
    >>> from sklearn_leuko.nn import mean_over_views
    >>> x = torch.arange(4.0).reshape(1, 2, 2, 1)
    >>> mean_over_views(lambda v: v[:, 0, 0, 0], x, 4).tolist()  # the four corners
    [1.5]
    """
    n_views = _check_n_views(n_views)
    total = None
    for k in range(n_views):
        out = fn(dihedral_view(x, k, layout=layout)).double()
        total = out if total is None else total + out
    return total / n_views


def tta_predict_proba(
    forward, X, *, n_views=8, layout="NHWC", batch_size=64, device=None
):
    """Class probabilities averaged over exact flips/rotations of each image.

    For each image the ``n_views`` first views of :data:`DIHEDRAL_VIEWS` go
    through ``forward``; the result is the **mean of the softmax
    probabilities** of the views, ``mean_k softmax(forward(view_k(x)))`` (not
    the softmax of the mean logit), so each view votes with a probability
    and the output is still a probability vector. The float32 softmax outputs are summed in float64,
    so views with identical logits give exactly the single-view
    probabilities.

    ``n_views``: 1 is plain prediction; 2 adds the horizontal flip; 4 uses
    the four flips (identity, horizontal, vertical, both = rotation by 180
    degrees), valid for any image shape; 8 adds the rotations by 90 and 270
    degrees and the two diagonal mirrors, the full symmetry group of the
    square, and refuses non-square images with a ``ValueError`` (a rotated
    non-square image would change shape) rather than silently using 4.

    Parameters
    ----------
    forward : callable
        Maps a batch, laid out like ``X``, on ``device``, to logits
        ``(n, n_classes)``; e.g. ``clf.net_.module_``. An ``nn.Module`` is
        put in eval mode for the call (no training-time augmentation,
        batch-norm running statistics); every submodule gets its mode back
        afterwards.
    X : ndarray or torch.Tensor
        Batch of shape ``(n, H, W, C)`` (``layout="NHWC"``, e.g. uint8 RGB)
        or ``(n, C, H, W)`` (``layout="NCHW"``).
    n_views : {1, 2, 4, 8}, default=8
        How many views to average (see above).
    layout : {"NHWC", "NCHW"}, default="NHWC"
        Position of the spatial axes in ``X``.
    batch_size : int, default=64
        Images per call of ``forward`` (each call sees one view of a batch).
    device : str or torch.device, default=None
        Where the views are made and ``forward`` runs. ``None`` uses the
        device of ``forward``'s parameters when it is a module with
        parameters, else the device of ``X``.

    Returns
    -------
    proba : torch.Tensor of shape (n, n_classes), float32, on the CPU
        Rows sum to 1.

    Examples
    --------
    >>> import torch
    >>> from sklearn_leuko.nn import BasicNetwork, tta_predict_proba
    >>> net = BasicNetwork(widths=(4, 4, 4, 4, 4, 4))
    >>> proba = tta_predict_proba(net, torch.rand(3, 3, 32, 32), layout="NCHW")
    >>> proba.shape
    torch.Size([3, 2])
    """
    if not callable(forward):
        raise TypeError(
            f"forward must be a callable mapping a batch to logits (e.g. "
            f"clf.net_.module_), got {type(forward).__name__}."
        )
    n_views = _check_n_views(n_views)
    h, w = _spatial_dims(layout)
    batch_size = check_positive_int(batch_size, "batch_size")
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(np.ascontiguousarray(X))
    elif not isinstance(X, torch.Tensor):
        raise TypeError(
            f"X must be a numpy array or a torch tensor, got {type(X).__name__}."
        )
    if X.ndim != 4:
        raise ValueError(
            f"X must be a batch of 4 dimensions ({layout}), got shape {tuple(X.shape)}."
        )
    if n_views == 8:
        _check_square(X, (h, w), 4, name="X")
    if device is None:
        param = (
            next(forward.parameters(), None) if isinstance(forward, nn.Module) else None
        )
        device = param.device if param is not None else X.device

    is_module = isinstance(forward, nn.Module)
    modes = [(m, m.training) for m in forward.modules()] if is_module else []
    out = []
    try:
        if is_module:
            forward.eval()
        with torch.no_grad():
            for start in range(0, X.shape[0], batch_size):
                batch = X[start : start + batch_size].to(device)
                proba = mean_over_views(
                    lambda view: torch.softmax(forward(view).float(), dim=1),
                    batch,
                    n_views,
                    layout=layout,
                )
                out.append(proba.float())
    finally:
        for m, training in modes:
            m.training = training
    if not out:
        raise ValueError("X holds no image: pass at least one.")
    # On the device until the end: one copy to the host, not one per batch.
    return torch.cat(out).cpu()
