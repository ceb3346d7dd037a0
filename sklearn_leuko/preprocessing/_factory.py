"""Build preprocessing by name and turn fitted transformers into torch modules."""

from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..nn._preprocess import ChannelConcat
from ._dct import LogDCT
from ._stain import StainDeconvolution
from ._union import ChannelUnion

__all__ = ["PREPROCESSING_NAMES", "make_preprocessing", "to_torch_module"]

#: Names accepted by :func:`make_preprocessing` and by
#: ``LeukoNetClassifier(preprocessing=...)``.
PREPROCESSING_NAMES = ("od", "log_dct", "od+log_dct")


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
    if transformer is None or (
        isinstance(transformer, str) and transformer == "passthrough"
    ):
        return nn.Identity()
    if isinstance(transformer, Pipeline):
        return nn.Sequential(*[to_torch_module(step) for _, step in transformer.steps])
    if isinstance(transformer, ChannelUnion):
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
