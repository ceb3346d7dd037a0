"""The Stain Deconvolution layer (SD-Layer) of Duggal et al. (2017)."""

import numpy as np
import torch
from torch import nn

from ._functional import od_to_stains

__all__ = ["SDLayer"]

_ACTIVATIONS = ("tanh", None)

# Values per chunk of _SigmoidTanh, whose four passes then run in cache: on a
# 47 MB batch (1 MB L2 per core, 32 MB L3) 4 MB chunks took 9.6 ms, 16 MB
# chunks 10.5 ms, the whole tensor at once 11.7 ms.
_TANH_CHUNK = 1 << 20


class _SigmoidTanh(torch.autograd.Function):
    """``torch.tanh_`` computed as ``2 sigmoid(2 z) - 1``, for float32 on the CPU.

    ATen's float32 ``tanh`` is slow with AVX2 kernels: 3.2 ns per value on one
    core of an AMD EPYC against 0.95 for ``sigmoid`` (a batch of 32 350x350
    RGB images: 19.9 ms against 9.6 ms for this function). With AVX-512
    kernels both cost about the same (Intel Xeon, 0.35 and 0.41 ns). The values
    are within 2.4e-7 of ``torch.tanh`` (0 stays 0); the backward is ``tanh``'s
    own.
    """

    @staticmethod
    def forward(ctx, z):
        for chunk in _flat_view(z).split(_TANH_CHUNK):
            chunk.mul_(2).sigmoid_().mul_(2).sub_(1)
        ctx.mark_dirty(z)
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, grad_output):
        (tanh,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad_output, tanh)


def _flat_view(x):
    """``x`` as a 1-D view in memory order, or None where none exists."""
    order = sorted(range(x.ndim), key=lambda dim: x.stride(dim), reverse=True)
    permuted = x.permute(order)
    return permuted.view(-1) if permuted.is_contiguous() else None


def _tanh_in_place(stains):
    # torch.compile: inductor generates its own tanh, and the strides of an
    # intermediate tensor in its graph need not be those seen when tracing.
    if (
        torch.compiler.is_compiling()
        or stains.device.type != "cpu"
        or stains.dtype != torch.float32
        or _flat_view(stains) is None
    ):
        return torch.tanh_(stains)
    return _SigmoidTanh.apply(stains)


def check_stain_matrix(stain_matrix):
    """Validate a 3x3 stain matrix (rows = stain OD vectors); float64 array."""
    if isinstance(stain_matrix, torch.Tensor):
        stain_matrix = stain_matrix.detach().cpu().numpy()
    try:
        matrix = np.asarray(stain_matrix, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "stain_matrix must be a 3x3 array of numbers (rows = stain OD "
            f"vectors), got {type(stain_matrix).__name__}."
        ) from exc
    if matrix.shape != (3, 3):
        raise ValueError(
            f"stain_matrix must have shape (3, 3) (one row per stain, one column "
            f"per R, G, B channel), got shape {matrix.shape}."
        )
    if not np.isfinite(matrix).all():
        raise ValueError("stain_matrix contains NaN or infinite values.")
    if np.linalg.cond(matrix) > 1e12:
        raise ValueError(
            "stain_matrix is singular (its rows are linearly dependent) and cannot "
            "be inverted; complete a 2-stain matrix with a third row, e.g. the "
            "normalised cross product of the first two."
        )
    return matrix


class SDLayer(nn.Module):
    r"""Stain deconvolution as a learnable 1x1 convolution (SD-Layer).

    Given an optical-density image whose pixels are row vectors
    :math:`o \in \mathbb{R}^3` and a stain matrix :math:`S` whose rows are the
    OD vectors of the stains (the scikit-image ``rgb_from_*`` convention, e.g.
    ``skimage.color.rgb_from_bex`` for Giemsa), the stain concentrations are

    .. math::

        c = o \, S^{-1}.

    The layer applies :math:`S^{-1}` to every pixel, i.e. a 1x1 convolution
    without bias (computed by :func:`~sklearn_leuko.nn.od_to_stains`, the
    library's single implementation of this product), initialised from
    ``inv(stain_matrix)`` and learnable by default, followed by ``tanh`` as in Duggal et al. (2017),
    where the layer sits right after the input and its 9 numbers are trained
    with the rest of the network. LeukoNet appends it at the beginning of the
    Basic Network (Stage-1, Mourya et al. 2018, section 4).

    Parameters
    ----------
    stain_matrix : array-like of shape (3, 3)
        Rows are stain OD vectors; must be invertible.
    learnable : bool, default=True
        Train the inverse matrix. When false the weight is a buffer: it moves
        with the module and is saved in its ``state_dict`` but is not a
        parameter.
    activation : {"tanh", None}, default="tanh"
        Non-linearity after the deconvolution; ``None`` returns the raw
        concentrations.

    Attributes
    ----------
    weight : torch.Tensor of shape (3, 3)
        The inverse stain matrix (rows: R, G, B OD channels; columns: stains),
        initialised to ``inv(stain_matrix)``. It equals the transpose of the
        equivalent 1x1 convolution kernel.

    References
    ----------
    .. [1] R. Duggal, A. Gupta, R. Gupta and P. Mallick, "SD-Layer: Stain
       Deconvolutional Layer for CNNs in Medical Microscopic Imaging",
       MICCAI 2017.
    .. [2] A. C. Ruifrok and D. A. Johnston, "Quantification of histochemical
       staining by color deconvolution", Anal. Quant. Cytol. Histol., 2001.
    .. [3] Mourya et al., "LeukoNet", arXiv:1810.07961, section 4.

    Examples
    --------
    >>> import torch
    >>> from skimage.color import rgb_from_bex
    >>> from sklearn_leuko.nn import SDLayer
    >>> layer = SDLayer(rgb_from_bex)
    >>> layer(torch.rand(2, 3, 8, 8)).shape
    torch.Size([2, 3, 8, 8])
    """

    def __init__(self, stain_matrix, learnable=True, activation="tanh"):
        super().__init__()
        matrix = check_stain_matrix(stain_matrix)
        if not isinstance(learnable, bool):
            raise TypeError(f"learnable must be True or False, got {learnable!r}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation={activation!r} is not supported; use 'tanh' or None."
            )
        self.learnable = learnable
        self.activation = activation
        weight = torch.as_tensor(np.linalg.inv(matrix), dtype=torch.float32)
        if learnable:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight)

    def stain_matrix(self):
        """The stain matrix implied by the current weight, ``inv(weight)``.

        Returns
        -------
        stain_matrix : ndarray of shape (3, 3), float64
        """
        return np.linalg.inv(self.weight.detach().cpu().double().numpy())

    def forward(self, x):
        """Deconvolve an OD image.

        Parameters
        ----------
        x : torch.Tensor of shape (n, 3, H, W)
            Optical density, channels R, G, B.

        Returns
        -------
        stains : torch.Tensor of shape (n, 3, H, W)
            One channel per stain (row of ``stain_matrix``), after ``tanh``
            when ``activation="tanh"``.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                "SDLayer expects an optical-density image of shape (n, 3, H, W), "
                f"got shape {tuple(x.shape)}."
            )
        stains = od_to_stains(x, self.weight)
        if self.activation is None:
            return stains
        if stains._base is not None:
            # A view (einsum's output): in place, autograd would rebuild it.
            return torch.tanh(stains)
        # In place: tanh's backward needs only its output and the
        # deconvolution's only x and the weight, so no second full-resolution
        # tensor is allocated or kept (47 MB for 32 350x350 images; with
        # glibc's default malloc its page faults cost about 10 ms per batch).
        return _tanh_in_place(stains)

    def extra_repr(self):
        return f"learnable={self.learnable}, activation={self.activation!r}"
