"""Optical density, stain deconvolution and the thresholded log-DCT in PyTorch.

This file is the only implementation of this math in the library: the NumPy
transformers of :mod:`sklearn_leuko.preprocessing` call these functions on
the CPU in chunks, and their ``to_module()`` twins call them on any device.
Every function takes batched channels-first tensors ``(n, C, H, W)`` and is
device agnostic.

References
----------
.. [1] R. Duggal, A. Gupta, R. Gupta, P. Mallick, "SD-Layer: Stain
   Deconvolutional Layer for CNNs in Medical Microscopic Imaging",
   MICCAI 2017.
.. [2] A. C. Ruifrok, D. A. Johnston, "Quantification of histochemical
   staining by color deconvolution", Anal. Quant. Cytol. Histol. 23(4), 2001.
.. [3] S. Mourya, S. Kant, P. Kumar, A. Gupta, R. Gupta, "LeukoNet: DCT-based
   CNN architecture for the classification of normal versus Leukemic blasts
   in B-ALL Cancer", arXiv:1810.07961, 2018 (Stage-2: thresholded log-DCT).
"""

import functools
import math

import numpy as np
import torch

__all__ = [
    "dct2",
    "dct_matrix",
    "energy_threshold",
    "idct2",
    "log_dct",
    "od_to_stains",
    "rgb_to_od",
]

LOG_RULES = ("paper", "log1p")


def _check_4d(x, name):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if x.ndim != 4:
        raise ValueError(
            f"{name} must be a 4-D tensor of shape (n, channels, height, width), "
            f"got shape {tuple(x.shape)}."
        )


def rgb_to_od(rgb, *, i0=255.0, offset=0.0, log_base=10.0, zero_as_background=True):
    r"""Convert RGB intensities to optical density (Beer-Lambert law).

    .. math::

        \mathrm{OD} = -\log_b \frac{\max(I + \mathrm{offset}, 1)}{I_0}

    The SD-Layer rule of Duggal et al. (2017) is the default: base 10,
    :math:`I_0 = 255`, no offset, and values equal to 0 are replaced by
    :math:`I_0` so that the black background of segmented cells has OD 0
    (no stain) instead of the highest OD of the image. Here values below 0.5
    (those that round to 0 in uint8, which covers interpolated background
    after augmentation) get OD 0 whatever the offset.

    The intensity ``I + offset`` is floored at 1 (one 8-bit grey level), so
    the OD never exceeds :math:`\log_b I_0` and is never infinite. With
    :math:`I_0 < 255`, pixels brighter than :math:`I_0` have a negative OD;
    it is kept, not clipped.

    Parameters
    ----------
    rgb : torch.Tensor of shape (n, 3, H, W)
        RGB values in [0, 255]. Integer tensors are converted to float32
        (uint8 through a 256-entry table of the same values); float tensors
        keep their dtype.
    i0 : float, default=255.0
        Incident light intensity :math:`I_0` (torchstain uses 240).
    offset : float, default=0.0
        Added to the intensity before the logarithm (torchstain uses 1).
    log_base : float, default=10.0
        Base :math:`b` of the logarithm; ``math.e`` for natural OD.
    zero_as_background : bool, default=True
        Map values equal to 0 (background) to OD 0.

    Returns
    -------
    od : torch.Tensor of shape (n, 3, H, W)
        Optical density, floating point.
    """
    _check_4d(rgb, "rgb")
    if not (i0 > 0 and math.isfinite(i0)):
        raise ValueError(f"i0 must be a positive finite number, got {i0!r}.")
    if not (offset >= 0 and math.isfinite(offset)):
        raise ValueError(f"offset must be a finite number >= 0, got {offset!r}.")
    if not (log_base > 0 and log_base != 1 and math.isfinite(log_base)):
        raise ValueError(
            f"log_base must be a positive number other than 1, got {log_base!r}; "
            "use 10 (SD-Layer) or math.e (natural OD)."
        )
    if rgb.dtype == torch.uint8:
        # 256 possible values: one table lookup instead of six passes over
        # the batch, the same float32 values as the float path below.
        table = _od_table(i0, offset, log_base, zero_as_background, rgb.device)
        nhwc = rgb.permute(0, 2, 3, 1)  # contiguous for a channels-last batch
        od = torch.nn.functional.embedding(nhwc.int(), table).squeeze(-1)
        return od.permute(0, 3, 1, 2)
    if not torch.is_floating_point(rgb):
        rgb = rgb.to(torch.float32)
    factor = -1.0 / math.log(log_base)
    if rgb.requires_grad and torch.is_grad_enabled():
        od = torch.log(torch.clamp(rgb + offset, min=1.0) / i0) * factor
        if zero_as_background:
            od = od.masked_fill(rgb < 0.5, 0.0)
        return od
    # The same operations in place: one full-size buffer instead of five.
    od = (rgb + offset).clamp_(min=1.0).div_(i0).log_().mul_(factor)
    if zero_as_background:
        od.masked_fill_(rgb < 0.5, 0.0)
    return od


@functools.lru_cache(maxsize=32)
def _od_table(i0, offset, log_base, zero_as_background, device):
    """``rgb_to_od`` of the 256 uint8 values, float32 ``(256, 1)``."""
    with torch.inference_mode(False):  # not an inference tensor: autograd may use it
        values = torch.arange(256, dtype=torch.float32).view(1, 1, 1, 256)
        od = rgb_to_od(
            values,
            i0=i0,
            offset=offset,
            log_base=log_base,
            zero_as_background=zero_as_background,
        )
        return od.reshape(256, 1).to(device)


def od_to_stains(od, inverse_stain_matrix):
    r"""Deconvolve optical density into stain concentrations.

    Each pixel's OD row vector :math:`o` becomes :math:`c = o\,S^{-1}`, where
    the rows of the stain matrix :math:`S` are the OD vectors of the stains
    (scikit-image's ``rgb_from_*`` convention; Ruifrok and Johnston 2001).
    This is the 1x1 convolution of the SD-Layer, without its ``tanh``.

    Parameters
    ----------
    od : torch.Tensor of shape (n, C, H, W)
        Optical density.
    inverse_stain_matrix : torch.Tensor or array-like of shape (C, K)
        :math:`S^{-1}`; cast to the dtype and device of ``od``.

    Returns
    -------
    stains : torch.Tensor of shape (n, K, H, W)
        Stain concentrations (not clipped at 0, unlike
        ``skimage.color.separate_stains``).
    """
    _check_4d(od, "od")
    inverse = torch.as_tensor(inverse_stain_matrix, dtype=od.dtype, device=od.device)
    if inverse.ndim != 2 or inverse.shape[0] != od.shape[1]:
        raise ValueError(
            f"inverse_stain_matrix must have shape ({od.shape[1]}, K) to match the "
            f"{od.shape[1]} channels of od, got shape {tuple(inverse.shape)}."
        )
    if od.device.type != "cpu" or od.is_contiguous(memory_format=torch.channels_last):
        # A 1x1 convolution; on the CPU only fast for channels-last input
        # (RGB images permuted from (n, H, W, 3) are).
        weight = inverse.T.reshape(inverse.shape[1], inverse.shape[0], 1, 1)
        return torch.nn.functional.conv2d(od, weight)
    return torch.einsum("nihw,ij->njhw", od, inverse)


@functools.lru_cache(maxsize=32)
def _cached_dct_matrix(n, dtype, device):
    # A cached tensor made under torch.inference_mode() would be an inference
    # tensor and break later autograd use; build it as a normal tensor.
    with torch.inference_mode(False):
        return _dct_matrix(n, dtype, device)


def _dct_matrix(n, dtype, device):
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    matrix[0] /= math.sqrt(2.0)
    return matrix.to(dtype=dtype, device=device)


def dct_matrix(n, *, dtype=torch.float32, device=None):
    r"""Orthonormal DCT-II matrix.

    ``C[k, i] = s_k cos(pi (2i + 1) k / (2n))`` with ``s_0 = sqrt(1/n)`` and
    ``s_k = sqrt(2/n)`` otherwise, so that ``C @ x`` equals
    ``scipy.fft.dct(x, type=2, norm="ortho")`` and ``C.T`` is its inverse.
    Matrices are computed in float64 and cached per (n, dtype, device): treat
    the result as read-only.

    Parameters
    ----------
    n : int
        Signal length.
    dtype : torch.dtype, default=torch.float32
    device : torch.device or str or None, default=None
        ``None`` means the CPU.

    Returns
    -------
    matrix : torch.Tensor of shape (n, n)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return _cached_dct_matrix(n, dtype, device)


def dct2(x):
    """Orthonormal 2-D DCT-II over the last two axes.

    Computed as ``C_H @ x @ C_W.T`` with cached DCT matrices (two batched
    matrix products, fast on CPU and GPU). Equals
    ``scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))``.

    Parameters
    ----------
    x : torch.Tensor of shape (..., H, W)
        Floating point.

    Returns
    -------
    coefficients : torch.Tensor of shape (..., H, W)
    """
    if x.ndim < 2:
        raise ValueError(
            f"x must have at least 2 dimensions, got shape {tuple(x.shape)}."
        )
    c_h = dct_matrix(x.shape[-2], dtype=x.dtype, device=x.device)
    c_w = dct_matrix(x.shape[-1], dtype=x.dtype, device=x.device)
    return c_h @ x @ c_w.T


def idct2(x):
    """Inverse of :func:`dct2` (orthonormal 2-D DCT-III): ``C_H.T @ x @ C_W``.

    Parameters
    ----------
    x : torch.Tensor of shape (..., H, W)

    Returns
    -------
    image : torch.Tensor of shape (..., H, W)
    """
    if x.ndim < 2:
        raise ValueError(
            f"x must have at least 2 dimensions, got shape {tuple(x.shape)}."
        )
    c_h = dct_matrix(x.shape[-2], dtype=x.dtype, device=x.device)
    c_w = dct_matrix(x.shape[-1], dtype=x.dtype, device=x.device)
    return c_h.T @ x @ c_w


def _check_energy(energy):
    if isinstance(energy, bool) or not (0.0 < energy <= 1.0):
        raise ValueError(f"energy must be a number in (0, 1], got {energy!r}.")


def energy_threshold(coefficients, energy=0.95):
    """Per image and channel magnitude threshold that keeps a share of the energy.

    Sort the coefficients of one channel by magnitude, largest first, and
    take the smallest number ``k`` of them whose squares sum to at least
    ``energy`` times the channel's energy ``sum(c ** 2)``. The threshold is the
    magnitude of the ``k``-th coefficient: keeping ``|c| >= threshold`` keeps
    those ``k`` coefficients (and any ties). Sums run in float64.

    Only the largest 2% of the coefficients are ranked first
    (:func:`torch.topk`); channels not settled by them get a full sort. This
    is much faster than sorting everything when, as for OD images, a few
    hundred coefficients hold 95% of the energy.

    Parameters
    ----------
    coefficients : torch.Tensor of shape (n, C, H, W)
        DCT coefficients.
    energy : float, default=0.95
        Share of the energy to keep, in (0, 1].

    Returns
    -------
    thresholds : torch.Tensor of shape (n, C)
        Same dtype as ``coefficients``. An all-zero channel gets 0.
    """
    _check_4d(coefficients, "coefficients")
    _check_energy(energy)
    n, c = coefficients.shape[:2]
    flat = coefficients.detach().reshape(n * c, -1)
    # Blocks of rows bound the memory of the ranking (values, indices and
    # float64 sums) whatever the batch size; larger on devices.
    block = 16 if flat.device.type == "cpu" else 512
    blocks = [_threshold_rows(rows.square(), energy) for rows in flat.split(block)]
    return torch.cat(blocks).reshape(n, c)


def _threshold_rows(squared, energy):
    size = squared.shape[1]
    # float32 (pairwise) sum: accurate enough to pick a row's first ranking.
    target = squared.sum(dim=1, keepdim=True).double() * energy
    thresholds = torch.empty(
        squared.shape[0], dtype=squared.dtype, device=squared.device
    )
    rows = None  # rows still to settle; None means all
    k = min(size, max(64, math.ceil(0.02 * size)))
    while True:
        todo = squared if rows is None else squared[rows]
        if k == size:
            top = _sort_descending(todo)
        else:
            top = torch.topk(todo, k, dim=1, sorted=True).values
        cumulative = torch.cumsum(top, dim=1, dtype=torch.float64)
        row_target = target if rows is None else target[rows]
        if k == size:
            # Everything ranked: take the share of this very sum so that
            # rounding cannot leave energy=1 unreached.
            row_target = cumulative[:, -1:] * energy
        index = torch.searchsorted(cumulative, row_target)
        done = (index < k).squeeze(1) | (k == size)
        value = torch.gather(top, 1, index.clamp(max=k - 1)).squeeze(1).sqrt()
        if rows is None:
            rows = torch.arange(squared.shape[0], device=squared.device)
        thresholds[rows[done]] = value[done]
        rows = rows[~done]
        if rows.numel() == 0:
            return thresholds
        # Channels whose energy is spread (noise-like) need a full ranking.
        k = size


def _sort_descending(rows):
    if rows.device.type == "cpu" and rows.dtype in (torch.float32, torch.float64):
        # NumPy's sort is about 3x faster than torch.sort on the CPU. copy(),
        # not ascontiguousarray: a reversed single column (a 1x1 image) counts
        # as contiguous in NumPy but keeps its negative stride, which torch refuses.
        return torch.from_numpy(np.sort(rows.numpy(), axis=1)[:, ::-1].copy())
    return torch.sort(rows, dim=1, descending=True).values


def log_dct(od, *, energy=0.95, log_rule="paper", scale=1.0, thresholds=None):
    r"""Thresholded, signed log of the 2-D DCT (LeukoNet Stage-2).

    Per image and channel: orthonormal 2-D DCT-II of ``scale * od``; keep the
    coefficients whose magnitude reaches the threshold (by default the
    per-image energy threshold of :func:`energy_threshold`, i.e. the largest
    coefficients holding ``energy`` of the channel's energy); the others are
    set to 1, whose log is 0. Then

    - ``log_rule="paper"``: :math:`\operatorname{sign}(c)\,\log_{10}\max(|c|, 1)`.
      The paper's sign-keeping log10 (Mourya et al. 2018, section 4); the
      ``max(|c|, 1)`` guard maps kept coefficients below 1 to 0 instead of
      flipping their sign;
    - ``log_rule="log1p"``: :math:`\operatorname{sign}(c)\,\log_{10}(1 + |c|)`
      on kept coefficients and 0 elsewhere (the rule of SDCT-AuxNet).

    Parameters
    ----------
    od : torch.Tensor of shape (n, C, H, W)
        Optical density or stain concentrations, floating point.
    energy : float, default=0.95
        Share of each channel's energy held by the kept coefficients.
    log_rule : {"paper", "log1p"}, default="paper"
    scale : float, default=1.0
        Multiplies the coefficients before thresholding and log. The OD scale
        decides how many kept coefficients exceed 1 (see the docs of
        :class:`~sklearn_leuko.preprocessing.LogDCT`).
    thresholds : torch.Tensor or array-like of shape (C,), default=None
        Fixed magnitude thresholds per channel (on the scaled coefficients)
        instead of the per-image energy threshold; ``energy`` is then unused.

    Returns
    -------
    out : torch.Tensor of shape (n, C, H, W)
    """
    _check_4d(od, "od")
    if log_rule not in LOG_RULES:
        raise ValueError(f"log_rule must be one of {LOG_RULES}, got {log_rule!r}.")
    if isinstance(scale, bool) or not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}.")
    if not torch.is_floating_point(od):
        od = od.to(torch.float32)
    coefficients = dct2(od)
    if scale != 1.0:
        coefficients.mul_(scale)
    if thresholds is None:
        limit = energy_threshold(coefficients, energy)
    else:
        limit = torch.as_tensor(thresholds, dtype=coefficients.dtype, device=od.device)
        if limit.shape != (od.shape[1],):
            raise ValueError(
                f"thresholds must have shape ({od.shape[1]},), one per channel of od, "
                f"got shape {tuple(limit.shape)}."
            )
        limit = limit.unsqueeze(0)
    limit = limit[:, :, None, None]
    keep = (coefficients >= limit) | (coefficients <= -limit)
    return _signed_log(coefficients, keep, log_rule)


def _signed_log(coefficients, keep, log_rule):
    """``sign(c) * log_rule(|c|)`` where ``keep``, 0 elsewhere."""

    def signed_log(values):
        magnitude = values.abs()
        if log_rule == "paper":
            return torch.sign(values) * torch.log10(torch.clamp(magnitude, min=1.0))
        return torch.sign(values) * (torch.log1p(magnitude) * (1.0 / math.log(10.0)))

    if coefficients.requires_grad and torch.is_grad_enabled():
        return torch.where(keep, signed_log(coefficients), 0.0)
    on_cpu = coefficients.device.type == "cpu"
    if on_cpu and int(keep.sum()) * 20 < keep.numel():
        # Few kept (a few per mille for OD images): take the log of those only
        # (on a device, the dense path below avoids synchronising).
        out = torch.zeros_like(coefficients)
        out[keep] = signed_log(coefficients[keep])
        return out
    # Many kept (noise-like input): the same math in place, in one buffer.
    out = coefficients.abs()
    if log_rule == "paper":
        out.clamp_(min=1.0).log10_()
    else:
        out.log1p_().mul_(1.0 / math.log(10.0))
    return out.copysign_(coefficients).masked_fill_(~keep, 0.0)
