"""Bilinear pooling (B-CNN) used after the last convolution of the Basic Network."""

import math
import numbers

import torch
from torch import nn
from torch.nn import functional as F

from ..utils._validation import check_positive_int

__all__ = ["BilinearPool"]


class BilinearPool(nn.Module):
    r"""Bilinear pooling: averaged outer products, signed square root, L2 norm.

    For a feature map :math:`X` of shape ``(C, H, W)`` seen as ``C`` rows of
    :math:`HW` positions, the pooled descriptor is

    .. math::

        B = \frac{1}{HW} X X^\top \in \mathbb{R}^{C \times C}, \quad
        z = \operatorname{vec}(B), \quad
        y = \operatorname{sign}(z) \sqrt{|z| + \varepsilon}, \quad
        \text{output} = y / \lVert y \rVert_2,

    i.e. the outer product of the feature vector with itself at every position,
    averaged over positions (Lin et al., 2015, Section 3), followed by the
    signed square root and L2 normalisation of B-CNN. LeukoNet (Mourya et al.,
    2018, section 4, Fig. 1) uses it instead of average pooling after the last
    convolution of the Basic Network.

    With ``reduced_channels`` set, a 1x1 convolution first maps the
    ``in_channels`` feature maps to ``reduced_channels`` so that the output
    size ``reduced_channels ** 2`` stays practical (C = 256 would give 65,536
    features).

    The outer products are computed in float32 even under
    :func:`torch.autocast`: sums of squares over many positions overflow or
    lose precision in float16.

    Parameters
    ----------
    in_channels : int
        Number of channels of the input feature map.
    reduced_channels : int, default=None
        Channels after the optional 1x1 convolution; ``None`` keeps
        ``in_channels`` and adds no layer.
    eps : float, default=1e-8
        Added to ``|z|`` under the square root so that its gradient stays finite
        at 0.

    Attributes
    ----------
    channels : int
        Channels entering the outer product (``reduced_channels`` or
        ``in_channels``).
    out_features : int
        Size of the pooled descriptor, ``channels ** 2``.
    reduce : torch.nn.Conv2d or None
        The 1x1 reduction, when ``reduced_channels`` is set.

    References
    ----------
    .. [1] T.-Y. Lin, A. RoyChowdhury and S. Maji, "Bilinear CNN Models for
       Fine-grained Visual Recognition", ICCV 2015.
    .. [2] Mourya et al., "LeukoNet", arXiv:1810.07961, section 4.

    Examples
    --------
    >>> import torch
    >>> from sklearn_leuko.nn import BilinearPool
    >>> pool = BilinearPool(64, reduced_channels=8)
    >>> pool(torch.randn(2, 64, 5, 5)).shape
    torch.Size([2, 64])
    """

    def __init__(self, in_channels, reduced_channels=None, eps=1e-8):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        if reduced_channels is None:
            self.reduce = None
            self.channels = self.in_channels
        else:
            reduced_channels = check_positive_int(reduced_channels, "reduced_channels")
            self.reduce = nn.Conv2d(self.in_channels, reduced_channels, kernel_size=1)
            self.channels = reduced_channels
        self.reduced_channels = reduced_channels
        if (
            isinstance(eps, bool)
            or not isinstance(eps, numbers.Real)
            or not (math.isfinite(eps) and eps > 0)
        ):
            raise ValueError(f"eps must be a small positive number, got {eps!r}.")
        self.eps = float(eps)
        self.out_features = self.channels**2

    def bilinear_matrix(self, x):
        """Averaged outer products before the signed square root.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)

        Returns
        -------
        B : torch.Tensor of shape (n, channels, channels), float32
            Symmetric positive semi-definite matrices ``X X^T / (H W)``.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"BilinearPool expects a feature map of shape (n, {self.in_channels}, "
                f"H, W), got shape {tuple(x.shape)}."
            )
        if self.reduce is not None:
            x = self.reduce(x)
        n, c, h, w = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat = x.float().reshape(n, c, h * w)
            return torch.bmm(flat, flat.transpose(1, 2)) / (h * w)

    def forward(self, x):
        """Pool a feature map into L2-normalised bilinear features.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)

        Returns
        -------
        features : torch.Tensor of shape (n, out_features), float32
        """
        b = self.bilinear_matrix(x)
        with torch.autocast(device_type=b.device.type, enabled=False):
            z = b.reshape(b.shape[0], -1)
            z = torch.sign(z) * torch.sqrt(z.abs() + self.eps)
            return F.normalize(z, p=2.0, dim=1)

    def extra_repr(self):
        return (
            f"in_channels={self.in_channels}, reduced_channels={self.reduced_channels}, "
            f"out_features={self.out_features}"
        )
