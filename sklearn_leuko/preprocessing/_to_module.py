"""Turn fitted preprocessing transformers into one torch module (fixed or learnable)."""

import numpy as np
from sklearn.pipeline import Pipeline
from torch import nn

from ..nn._preprocess import LearnableStainInput

__all__ = ["to_learnable_module", "to_torch_module"]


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
    if hasattr(transformer, "to_module"):
        return transformer.to_module()
    raise TypeError(
        f"to_torch_module cannot convert {type(transformer).__name__}; pass a "
        "StainDeconvolution, LogDCT or ChannelUnion, a Pipeline of them, or an object "
        "with a to_module() method."
    )


def _as_stain_and_dct(transformer):
    """``(StainDeconvolution, LogDCT or None)`` of a stage's preprocessing."""
    from ._dct import LogDCT
    from ._stain import StainDeconvolution

    if isinstance(transformer, StainDeconvolution):
        return transformer, None
    if isinstance(transformer, Pipeline):
        steps = [step for _, step in transformer.steps]
        if (
            len(steps) == 2
            and isinstance(steps[0], StainDeconvolution)
            and isinstance(steps[1], LogDCT)
        ):
            return steps[0], steps[1]
    return None, None


def to_learnable_module(transformer):
    """The learnable SD-Layer twin of a fitted stain preprocessing.

    The fixed transformers compute optical density and a fixed stain
    deconvolution; the paper's stages use a learnable SD-Layer instead
    (:class:`~sklearn_leuko.nn.LearnableStainInput`), initialised from the
    transformer's fitted stain matrix (Giemsa, HED, or a Macenko fit on the
    training images) and with the same OD rule and log-DCT settings:

    - :class:`StainDeconvolution` -> SD-Layer output (Stage-1, VGG-11);
    - ``Pipeline([StainDeconvolution, LogDCT])`` -> log-DCT of the SD-Layer
      output (Stage-2);
    - :class:`ChannelUnion` of the two -> both, 6 channels, from ONE shared
      SD-Layer (Stage-2C).

    Parameters
    ----------
    transformer : estimator
        One of the fitted forms above.

    Returns
    -------
    module : sklearn_leuko.nn.LearnableStainInput

    Raises
    ------
    TypeError
        Another transformer: it has no learnable counterpart.
    """
    stain, dct = _as_stain_and_dct(transformer)
    keep_stains = dct is None
    # A fitted ChannelUnion (known by its branches: importing the class here
    # would make an import cycle, since it builds its module with this file).
    if stain is None and hasattr(transformer, "transformers_"):
        parts = [_as_stain_and_dct(t) for _, t in transformer.transformers_]
        if (
            len(parts) == 2
            and parts[0][0] is not None
            and parts[0][1] is None
            and parts[1][1] is not None
            and np.array_equal(parts[0][0].stain_matrix_, parts[1][0].stain_matrix_)
            and parts[0][0]._od_params() == parts[1][0]._od_params()
        ):
            stain, dct, keep_stains = parts[0][0], parts[1][1], True
    if stain is None:
        raise TypeError(
            f"stain_layer='learnable' has no learnable version of "
            f"{type(transformer).__name__}: it supports StainDeconvolution, "
            "Pipeline([StainDeconvolution, LogDCT]) and their ChannelUnion with the "
            "same stain matrix and OD rule in both branches (the paper's stages, one "
            "shared SD-Layer). Set stain_layer='fixed' to use the transformer as it "
            "is."
        )
    return LearnableStainInput(
        stain.stain_matrix_,
        **stain._od_params(),
        dct=None if dct is None else dct.to_module(),
        keep_stains=keep_stains,
    )
