"""The torch side of the preprocessing transformers.

The transformers of this package run their math through the torch modules
defined here (on the CPU, chunk by chunk), and :func:`to_torch_module` hands
the same modules, with the fitted state as buffers, to a network that runs
them per batch on its device. One implementation, two paths.
"""

import numpy as np
import torch
from torch import nn

from ..nn._functional import log_dct, od_to_stains, rgb_to_od

__all__ = [
    "ChannelConcat",
    "LogDCTModule",
    "StainDeconvolutionModule",
    "make_preprocessing",
    "to_torch_module",
]

PREPROCESSING_NAMES = ("od", "log_dct", "od+log_dct")


class StainDeconvolutionModule(nn.Module):
    """RGB ``(n, 3, H, W)`` in [0, 255] -> stain concentrations ``(n, 3, H, W)``.

    The torch twin of :class:`~sklearn_leuko.preprocessing.StainDeconvolution`:
    :func:`~sklearn_leuko.nn.rgb_to_od` then
    :func:`~sklearn_leuko.nn.od_to_stains`. The stain matrix and
    its inverse are float32 buffers (they follow ``.to(device)``), not
    learnable parameters; the learnable variant is
    :class:`~sklearn_leuko.nn.SDLayer`.

    Parameters
    ----------
    stain_matrix : array-like of shape (3, 3)
        Rows are the stain OD vectors.
    i0, offset, log_base, zero_as_background
        See :func:`~sklearn_leuko.nn.rgb_to_od`.
    """

    def __init__(
        self,
        stain_matrix,
        *,
        i0=255.0,
        offset=0.0,
        log_base=10.0,
        zero_as_background=True,
    ):
        super().__init__()
        matrix = np.asarray(stain_matrix, dtype=np.float64)
        self.register_buffer(
            "stain_matrix", torch.as_tensor(matrix, dtype=torch.float32)
        )
        self.register_buffer(
            "inverse_stain_matrix",
            torch.as_tensor(np.linalg.inv(matrix), dtype=torch.float32),
        )
        self.i0 = float(i0)
        self.offset = float(offset)
        self.log_base = float(log_base)
        self.zero_as_background = bool(zero_as_background)

    def forward(self, rgb):
        od = rgb_to_od(
            rgb,
            i0=self.i0,
            offset=self.offset,
            log_base=self.log_base,
            zero_as_background=self.zero_as_background,
        )
        return od_to_stains(od, self.inverse_stain_matrix)

    def extra_repr(self):
        return (
            f"i0={self.i0}, offset={self.offset}, log_base={self.log_base}, "
            f"zero_as_background={self.zero_as_background}"
        )


class LogDCTModule(nn.Module):
    """OD ``(n, C, H, W)`` -> thresholded log-DCT ``(n, C, H, W)``.

    The torch twin of :class:`~sklearn_leuko.preprocessing.LogDCT`, calling
    :func:`~sklearn_leuko.nn.log_dct`. Fitted per-channel
    thresholds, if any, are a buffer.

    Parameters
    ----------
    energy : float
    log_rule : {"paper", "log1p"}
    scale : float
    thresholds : array-like of shape (C,) or None
    """

    def __init__(self, *, energy=0.95, log_rule="paper", scale=1.0, thresholds=None):
        super().__init__()
        self.energy = float(energy)
        self.log_rule = log_rule
        self.scale = float(scale)
        if thresholds is not None:
            thresholds = torch.as_tensor(np.asarray(thresholds), dtype=torch.float32)
        self.register_buffer("thresholds", thresholds)

    def forward(self, od):
        return log_dct(
            od,
            energy=self.energy,
            log_rule=self.log_rule,
            scale=self.scale,
            thresholds=self.thresholds,
        )

    def extra_repr(self):
        fixed = "per_image" if self.thresholds is None else "fitted"
        return (
            f"energy={self.energy}, log_rule={self.log_rule!r}, scale={self.scale}, "
            f"thresholds={fixed}"
        )


class ChannelConcat(nn.Module):
    """Run branches on the same input and concatenate their outputs on dim 1.

    The torch twin of :class:`~sklearn_leuko.preprocessing.ChannelUnion`.

    Parameters
    ----------
    branches : list of (str, nn.Module)
    """

    def __init__(self, branches):
        super().__init__()
        self.names = [name for name, _ in branches]
        self.branches = nn.ModuleList([module for _, module in branches])

    def forward(self, x):
        outputs = [branch(x) for branch in self.branches]
        sizes = {tuple(out.shape[2:]) for out in outputs}
        if len(sizes) > 1:
            shapes = ", ".join(
                f"{n}: {tuple(o.shape)}"
                for n, o in zip(self.names, outputs, strict=True)
            )
            raise ValueError(
                f"ChannelConcat branches disagree on the spatial size ({shapes}); every "
                "branch must keep the (height, width) of the input."
            )
        return torch.cat(outputs, dim=1)


def to_torch_module(transformer):
    """Turn a fitted preprocessing transformer into one torch module.

    The module maps a float32 RGB tensor ``(n, 3, H, W)`` with values in
    [0, 255] (or, for a lone :class:`LogDCT`, an OD tensor) to the same
    numbers as ``transformer.transform`` on the uint8 images ``(n, H, W, 3)``,
    on any device (``module.to(device)``).

    Parameters
    ----------
    transformer : estimator
        A fitted :class:`StainDeconvolution`, :class:`LogDCT` or
        :class:`ChannelUnion`, a fitted :class:`~sklearn.pipeline.Pipeline`
        of them (-> :class:`torch.nn.Sequential`), or any object with a
        ``to_module()`` method. ``"passthrough"`` and ``None`` steps become
        :class:`torch.nn.Identity`.

    Returns
    -------
    module : torch.nn.Module

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_leuko.preprocessing import make_preprocessing, to_torch_module
    >>> X = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    >>> pre = make_preprocessing("od+log_dct").fit(X)
    >>> module = to_torch_module(pre)
    >>> out = module(torch.from_numpy(X).permute(0, 3, 1, 2).float())
    >>> np.allclose(out.numpy(), pre.transform(X), atol=1e-4)
    True
    """
    from sklearn.pipeline import Pipeline

    from ._union import ChannelUnion

    if transformer is None or (
        isinstance(transformer, str) and transformer == "passthrough"
    ):
        return nn.Identity()
    if isinstance(transformer, Pipeline):
        return nn.Sequential(*[to_torch_module(step) for _, step in transformer.steps])
    if isinstance(transformer, ChannelUnion):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(transformer)
        return ChannelConcat(
            [(name, to_torch_module(t)) for name, t in transformer.transformers_]
        )
    if hasattr(transformer, "to_module"):
        return transformer.to_module()
    raise TypeError(
        f"to_torch_module cannot convert {type(transformer).__name__}; pass a "
        "StainDeconvolution, LogDCT or ChannelUnion, a Pipeline of them, or an object "
        "with a to_module() method."
    )


def make_preprocessing(name):
    """Unfitted preprocessing transformer for one of LeukoNet's input kinds.

    Parameters
    ----------
    name : {"od", "log_dct", "od+log_dct"}
        - ``"od"``: :class:`StainDeconvolution` (Giemsa stain concentrations
          in optical density space; Stage-1);
        - ``"log_dct"``: ``Pipeline([("od", StainDeconvolution()),
          ("dct", LogDCT())])`` (Stage-2);
        - ``"od+log_dct"``: :class:`ChannelUnion` of the two, 6 channels
          (Stage-2C's two inputs stacked).

    Returns
    -------
    transformer : estimator
        Takes uint8 RGB images ``(n, H, W, 3)``.

    Examples
    --------
    >>> from sklearn_leuko.preprocessing import make_preprocessing
    >>> make_preprocessing("log_dct")
    Pipeline(steps=[('od', StainDeconvolution()), ('dct', LogDCT())])
    """
    from sklearn.pipeline import Pipeline

    from ._dct import LogDCT
    from ._stain import StainDeconvolution
    from ._union import ChannelUnion

    if name == "od":
        return StainDeconvolution()
    if name == "log_dct":
        return Pipeline([("od", StainDeconvolution()), ("dct", LogDCT())])
    if name == "od+log_dct":
        return ChannelUnion(
            [
                ("od", StainDeconvolution()),
                ("dct", Pipeline([("od", StainDeconvolution()), ("dct", LogDCT())])),
            ]
        )
    raise ValueError(
        f"Unknown preprocessing name {name!r}; valid names are "
        f"{', '.join(repr(n) for n in PREPROCESSING_NAMES)}, or pass a transformer."
    )


# --------------------------------------------------------------- NumPy bridge
def _check_structure(X, check, **kwargs):
    """Validate the shape and dtype of X without touching all its values.

    Checks the first image only (value checks then run chunk by chunk in
    :func:`_iter_checked_chunks`); on error the full array is checked again
    so that the message quotes its real shape.
    """
    if isinstance(X, np.ndarray) and X.ndim == 4 and X.shape[0] > 0:
        try:
            check(X[:1], **kwargs)
        except (TypeError, ValueError):
            check(X, **kwargs)
            raise
        return X
    return check(X, **kwargs)


def _iter_checked_chunks(X, check, batch_size, rows=None, **kwargs):
    """Yield ``(start, chunk)`` with each chunk validated by ``check``.

    ``rows`` selects (sorted) images; only one chunk is gathered at a time.
    """
    n = X.shape[0] if rows is None else len(rows)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        chunk = X[start:stop] if rows is None else X[rows[start:stop]]
        yield start, check(chunk, **kwargs)


def _rgb_chunk_to_tensor(chunk):
    # (b, H, W, 3) -> float32 (b, 3, H, W); the copy is one chunk large.
    return torch.from_numpy(np.array(chunk, dtype=np.float32)).permute(0, 3, 1, 2)


def _channels_first_chunk_to_tensor(chunk):
    # The torch functions never write to their input: no copy when not needed.
    if chunk.dtype == np.float32 and chunk.flags.writeable:
        return torch.from_numpy(chunk)
    return torch.from_numpy(np.array(chunk, dtype=np.float32))


def _transform_in_chunks(module, X, check, to_tensor, batch_size, **kwargs):
    """Apply ``module`` to X chunk by chunk on the CPU into one float32 array.

    Peak extra memory is one chunk (input copy, intermediates, output) on top
    of the float32 result.
    """
    X = _check_structure(X, check, **kwargs)
    out = None
    module = module.cpu().eval()
    with torch.inference_mode():
        for start, chunk in _iter_checked_chunks(X, check, batch_size, **kwargs):
            result = module(to_tensor(chunk))
            if out is None:
                out = np.empty((X.shape[0], *result.shape[1:]), dtype=np.float32)
            out[start : start + result.shape[0]] = result.numpy()
    return out
