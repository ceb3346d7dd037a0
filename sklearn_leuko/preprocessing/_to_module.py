"""Turn fitted preprocessing transformers into one torch module."""

from sklearn.pipeline import Pipeline
from torch import nn

__all__ = ["to_torch_module"]


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
