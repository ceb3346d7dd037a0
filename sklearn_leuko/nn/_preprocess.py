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

__all__ = [
    "ChannelConcat",
    "LearnableStainInput",
    "LogDCTModule",
    "StainDeconvolutionModule",
]


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

    #: ``forward`` takes uint8 RGB as well as float (see ``rgb_to_od``).
    reads_uint8 = True

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


class LearnableStainInput(nn.Module):
    """RGB -> optical density -> SD-Layer -> (log-DCT): LeukoNet's learnable input.

    Mourya et al. (2018), section 4: Stage-1 is "the Stain Deconvolution
    Layer (SD Layer) appended at the beginning of our Basic Network"; in
    Stage-2 the 2-D DCT "was applied on the output of the SD Layer"; Stage-2C
    concatenates the three SD-Layer channels with their three log-DCT
    channels. This module is that front: :func:`rgb_to_od`, then
    :class:`~sklearn_leuko.nn.SDLayer` (a learnable inverse stain matrix, a
    1x1 convolution, then ``tanh``; Duggal et al. 2017), then optionally a
    :class:`LogDCTModule` of its output. The per-image 95%-energy mask of the
    DCT carries no gradient; the kept coefficients do, so the stain matrix
    learns through the DCT branch too.

    Parameters
    ----------
    stain_matrix : array-like of shape (3, 3)
        Initial stain matrix (rows = stain OD vectors); the layer starts at
        its inverse.
    i0, offset, log_base, zero_as_background
        See :func:`~sklearn_leuko.nn.rgb_to_od`.
    dct : LogDCTModule or None, default=None
        The log-DCT applied to the SD-Layer output.
    keep_stains : bool, default=True
        Output the SD-Layer channels (before the log-DCT ones when ``dct`` is
        set). ``False`` with ``dct``: only the log-DCT channels (Stage-2).
    """

    #: ``forward`` takes uint8 RGB as well as float (see ``rgb_to_od``).
    reads_uint8 = True

    def __init__(
        self,
        stain_matrix,
        *,
        i0=255.0,
        offset=0.0,
        log_base=10.0,
        zero_as_background=True,
        dct=None,
        keep_stains=True,
    ):
        super().__init__()
        from ._sd_layer import SDLayer

        if dct is None and not keep_stains:
            raise ValueError(
                "LearnableStainInput needs keep_stains=True or a dct module; it "
                "would output nothing."
            )
        self.sd_layer = SDLayer(stain_matrix, learnable=True, activation="tanh")
        self.dct = dct
        self.keep_stains = bool(keep_stains)
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
        stains = self.sd_layer(od)
        if self.dct is None:
            return stains
        coefficients = self.dct(stains)
        if not self.keep_stains:
            return coefficients
        return torch.cat([stains, coefficients], dim=1)

    def extra_repr(self):
        return (
            f"i0={self.i0}, offset={self.offset}, log_base={self.log_base}, "
            f"zero_as_background={self.zero_as_background}, "
            f"keep_stains={self.keep_stains}"
        )
