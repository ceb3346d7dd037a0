"""Torch twins of the preprocessing transformers (pure PyTorch).

:class:`~sklearn_leuko.preprocessing.StainDeconvolution`,
:class:`~sklearn_leuko.preprocessing.LogDCT` and
:class:`~sklearn_leuko.preprocessing.ChannelUnion` compute through these
modules (on the CPU, chunk by chunk), and their ``to_module()`` hands the same
modules, with the fitted state as buffers, to a network that runs them per
batch on its device. One implementation, two paths.
"""

import numpy as np
import torch
from torch import nn

from ._functional import log_dct, od_to_stains, rgb_to_od

__all__ = ["ChannelConcat", "LogDCTModule", "StainDeconvolutionModule"]


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
