"""Batched, background-aware stain normalisation in PyTorch (pure torch).

The torch twin of :class:`~sklearn_leuko.preprocessing.StainNormalizer`:
every function takes a batch ``(n, 3, H, W)`` of float RGB in [0, 255] and a
per-pixel weight mask, so that statistics are taken over the stained cell
only (never over the black segmentation background or the bright smear
background) and work on any device.

Optical density here is the natural-log OD of Macenko et al. (2009),
``OD = -ln((I + offset) / i0)``, with the intensity clamped to
``[0, i0 - offset]`` first so that the OD is finite and never negative.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "StainNormalizerModule",
    "lab_to_rgb",
    "macenko_stains",
    "masked_quantile",
    "rgb_to_lab",
    "snmf_stains",
    "stain_concentrations",
    "tissue_masks",
]

# sRGB (D65) <-> CIE XYZ, the matrices of skimage.color (one source: IEC 61966-2-1).
_XYZ_FROM_RGB = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)


def _mix(matrix, x):
    # (3, 3) colour matrix applied to the channel axis of (n, 3, H, W)
    return torch.einsum("ij,njhw->nihw", matrix.to(x.device, x.dtype), x)


def rgb_to_lab(rgb):
    """CIE L*a*b* (D65) of RGB ``(n, 3, H, W)`` in [0, 255], as skimage.color.rgb2lab."""
    c = (rgb / 255.0).clamp(0.0, 1.0)
    linear = torch.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = _mix(_XYZ_FROM_RGB, linear)
    white = torch.tensor(_WHITE_D65, dtype=rgb.dtype, device=rgb.device)
    t = xyz / white[None, :, None, None]
    f = torch.where(t > 0.008856, t.clamp_min(1e-12) ** (1 / 3), 7.787 * t + 16 / 116)
    return torch.stack(
        (116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])),
        dim=1,
    )


def lab_to_rgb(lab):
    """RGB in [0, 255] of CIE L*a*b* ``(n, 3, H, W)``; the inverse of :func:`rgb_to_lab`."""
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack((fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200), dim=1)
    t = torch.where(f > 0.2068966, f**3, (f - 16 / 116) / 7.787)
    white = torch.tensor(_WHITE_D65, dtype=lab.dtype, device=lab.device)
    xyz = t.clamp_min(0.0) * white[None, :, None, None]
    linear = _mix(torch.linalg.inv(_XYZ_FROM_RGB), xyz).clamp(0.0, 1.0)
    c = torch.where(
        linear > 0.0031308,
        1.055 * linear.clamp_min(1e-12) ** (1 / 2.4) - 0.055,
        12.92 * linear,
    )
    return (c * 255.0).clamp(0.0, 255.0)


def rgb_to_od_nat(rgb, i0, offset):
    """Natural-log OD ``-ln((I + offset) / i0)``, finite and >= 0."""
    intensity = (rgb + offset).clamp(1.0, i0)
    return -torch.log(intensity / i0)


def tissue_masks(rgb, *, i0, offset, beta, black_level, erosion):
    """The pixels to transform and the pixels to take statistics from.

    Returns ``(tissue, stats)``, boolean ``(n, H, W)``. ``tissue``: not black
    (some channel above ``black_level``) and not bright background (some
    channel's OD at least ``beta``). ``stats``: ``tissue`` minus the
    ``erosion``-pixel rim next to black background (rim pixels mix the cell
    with black and would bias the statistics towards grey).
    """
    od = rgb_to_od_nat(rgb, i0, offset)
    black = rgb.amax(dim=1) <= black_level
    tissue = ~black & (od.amax(dim=1) >= beta)
    if erosion > 0:
        size = 2 * erosion + 1
        near_black = F.max_pool2d(
            black[:, None].to(rgb.dtype), size, stride=1, padding=erosion
        )[:, 0].bool()
        stats = tissue & ~near_black
    else:
        stats = tissue
    return tissue, stats


def masked_quantile(values, mask, q):
    """Per-row quantile ``q`` (in [0, 1]) of ``values[mask]``, linear interpolation.

    ``values`` and ``mask`` are ``(n, P)``; rows without any masked value
    give 0. Matches ``numpy.percentile(values[i][mask[i]], 100 * q)``.
    """
    count = mask.sum(dim=1)
    filled = torch.where(mask, values, torch.full_like(values, math.inf))
    ordered = filled.sort(dim=1).values
    position = (count - 1).clamp_min(0).to(values.dtype) * q
    low = position.floor().long()
    high = position.ceil().long()
    a = ordered.gather(1, low[:, None])[:, 0]
    b = ordered.gather(1, high[:, None])[:, 0]
    out = a + (b - a) * (position - low.to(values.dtype))
    return torch.where(count > 0, out, torch.zeros_like(out))


def _ordered_pair(v_a, v_b):
    # The stain absorbing red most (hematoxylin, methylene blue) first, as in
    # torchstain and Macenko's reference code; rows are the stains.
    first = torch.where((v_a[:, 0] > v_b[:, 0])[:, None], v_a, v_b)
    second = torch.where((v_a[:, 0] > v_b[:, 0])[:, None], v_b, v_a)
    return torch.stack((first, second), dim=1)


def macenko_stains(od, mask, *, alpha):
    """Two stain OD vectors per image (Macenko et al. 2009), batched.

    Parameters
    ----------
    od : tensor of shape (n, 3, P)
        Optical density of P pixels per image.
    mask : bool tensor of shape (n, P)
        The pixels to use (stained cell pixels).
    alpha : float
        Percentile (in %) of the extreme angles.

    Returns
    -------
    stains : tensor of shape (n, 2, 3)
        Unit rows, the one absorbing red most first, entries >= 0.
    """
    w = mask.to(od.dtype)
    count = w.sum(dim=1).clamp_min(1.0)
    mean = (od * w[:, None]).sum(dim=2) / count[:, None]
    centred = (od - mean[:, :, None]) * w[:, None]
    # Centred covariance, as torchstain (numpy.cov): its two leading
    # eigenvectors span the stain plane.
    cov = centred @ centred.transpose(1, 2) / (count[:, None, None] - 1).clamp_min(1)
    _, vectors = torch.linalg.eigh(cov)
    plane = vectors[:, :, [1, 2]]  # (n, 3, 2)
    proj = plane.transpose(1, 2) @ od  # (n, 2, P)
    phi = torch.atan2(proj[:, 1], proj[:, 0])
    low = masked_quantile(phi, mask, alpha / 100)
    high = masked_quantile(phi, mask, 1 - alpha / 100)
    v_low = (plane @ torch.stack((low.cos(), low.sin()), dim=1)[:, :, None])[..., 0]
    v_high = (plane @ torch.stack((high.cos(), high.sin()), dim=1)[:, :, None])[..., 0]
    # An eigenvector's sign is arbitrary; a stain absorbs, so its OD is >= 0.
    v_low = torch.where(v_low.sum(dim=1, keepdim=True) < 0, -v_low, v_low)
    v_high = torch.where(v_high.sum(dim=1, keepdim=True) < 0, -v_high, v_high)
    stains = _ordered_pair(v_low, v_high).clamp_min(0.0)
    return stains / stains.norm(dim=2, keepdim=True).clamp_min(1e-12)


def stain_concentrations(od, stains):
    """Least-squares concentrations ``(n, 2, P)`` of OD ``(n, 3, P)``, clamped at 0.

    Clamping keeps every reconstructed OD non-negative (no intensity above
    ``i0``), the usual source of "negative optical density".
    """
    pinv = torch.linalg.pinv(stains.transpose(1, 2))  # (n, 2, 3)
    return (pinv @ od).clamp_min(0.0)


def snmf_stains(od, mask, *, init, lambda_, n_iter):
    """Sparse non-negative factorisation ``OD ~ W H`` (Vahadane et al. 2016).

    Multiplicative updates (Lee and Seung) with an L1 penalty ``lambda_`` on
    the concentrations ``H``, restricted to the masked pixels; the two
    columns of ``W`` (the stains) stay unit-norm. Starts from ``init``
    (e.g. the Macenko vectors, ``(n, 2, 3)``).

    Returns
    -------
    stains : tensor of shape (n, 2, 3)
    """
    eps = 1e-8
    v = od * mask[:, None].to(od.dtype)
    w = init.transpose(1, 2).clamp_min(1e-3)  # (n, 3, 2)
    h = stain_concentrations(od, init) * mask[:, None].to(od.dtype) + eps
    for _ in range(n_iter):
        wt = w.transpose(1, 2)
        h = h * (wt @ v) / (wt @ w @ h + lambda_ + eps)
        w = w * (v @ h.transpose(1, 2)) / (w @ (h @ h.transpose(1, 2)) + eps)
        norm = w.norm(dim=1, keepdim=True).clamp_min(eps)
        w = w / norm
        h = h * norm.transpose(1, 2)
    stains = w.transpose(1, 2)
    return _ordered_pair(stains[:, 0], stains[:, 1])


class StainNormalizerModule(nn.Module):
    """RGB ``(n, 3, H, W)`` in [0, 255] -> the reference's appearance, same form.

    The fitted state of :class:`~sklearn_leuko.preprocessing.StainNormalizer`
    as float32 buffers (they follow ``.to(device)``). Pixels outside the
    tissue mask (black and bright background) come out unchanged; the
    output is rounded to whole intensities. Images with fewer than
    ``min_pixels`` stained pixels come out unchanged too and are marked in
    ``last_too_faint_`` (a bool tensor, one per image of the last call).

    Parameters
    ----------
    method : {"reinhard", "macenko", "vahadane"}
    target : tensor
        ``"reinhard"``: ``(2, 3)`` L*a*b* mean and std of the reference;
        otherwise ``(3, 3)``: two reference stain rows and the reference's
        99th-percentile concentrations in the third row's first two entries.
    i0, offset, beta, black_level, erosion, alpha, lambda_, n_iter, min_pixels
        See :class:`~sklearn_leuko.preprocessing.StainNormalizer`.
    """

    def __init__(
        self,
        method,
        target,
        *,
        i0=255.0,
        offset=0.0,
        beta=0.15,
        black_level=0.0,
        erosion=1,
        alpha=1.0,
        lambda_=0.02,
        n_iter=30,
        min_pixels=100,
    ):
        super().__init__()
        self.method = method
        self.register_buffer("target", torch.as_tensor(target, dtype=torch.float32))
        self.i0, self.offset, self.beta = float(i0), float(offset), float(beta)
        self.black_level, self.erosion = float(black_level), int(erosion)
        self.alpha, self.lambda_, self.n_iter = float(alpha), float(lambda_), n_iter
        self.min_pixels = int(min_pixels)
        self.last_too_faint_ = None

    def statistics(self, rgb):
        """Per-image appearance statistics, the form of ``target``, and the masks.

        Returns ``(stats, tissue, used, n_used)``: ``stats`` ``(n, 2, 3)``
        (L*a*b* mean and std) or ``(n, 3, 3)`` (stain rows and 99th
        percentile concentrations), the tissue mask, the statistics mask
        and its pixel count per image.
        """
        tissue, used = tissue_masks(
            rgb,
            i0=self.i0,
            offset=self.offset,
            beta=self.beta,
            black_level=self.black_level,
            erosion=self.erosion,
        )
        n = rgb.shape[0]
        if self.method == "reinhard":
            lab = rgb_to_lab(rgb).flatten(2)
            flat = used.flatten(1)
            w = flat.to(lab.dtype)[:, None]
            count = w.sum(dim=2).clamp_min(1.0)
            mean = (lab * w).sum(dim=2) / count
            var = (((lab - mean[:, :, None]) ** 2) * w).sum(dim=2) / count
            return torch.stack((mean, var.sqrt()), dim=1), tissue, used, flat.sum(1)
        od = rgb_to_od_nat(rgb, self.i0, self.offset).flatten(2)
        # torchstain's rule: a pixel is stained where no channel's OD is below beta.
        flat = used.flatten(1) & (od.amin(dim=1) >= self.beta)
        stains = macenko_stains(od, flat, alpha=self.alpha)
        if self.method == "vahadane":
            stains = snmf_stains(
                od, flat, init=stains, lambda_=self.lambda_, n_iter=self.n_iter
            )
        conc = stain_concentrations(od, stains)
        flat_c = flat[:, None].expand_as(conc).reshape(n * 2, -1)
        max_c = masked_quantile(conc.reshape(n * 2, -1), flat_c, 0.99).reshape(n, 2)
        third = torch.cat((max_c, torch.zeros_like(max_c[:, :1])), dim=1)
        return torch.cat((stains, third[:, None]), dim=1), tissue, used, flat.sum(1)

    def forward(self, rgb):
        rgb = rgb.float()
        stats, tissue, _, n_used = self.statistics(rgb)
        target = self.target.to(rgb.dtype)
        if self.method == "reinhard":
            lab = rgb_to_lab(rgb)
            mean, std = stats[:, 0, :, None, None], stats[:, 1, :, None, None]
            scaled = (lab - mean) / std.clamp_min(1e-6)
            out = lab_to_rgb(
                scaled * target[1, :, None, None] + target[0, :, None, None]
            )
        else:
            n, _, height, width = rgb.shape
            od = rgb_to_od_nat(rgb, self.i0, self.offset).flatten(2)
            conc = stain_concentrations(od, stats[:, :2])
            scale = target[2, :2] / stats[:, 2, :2].clamp_min(1e-6)
            od_new = target[:2].T @ (conc * scale[:, :, None])  # (n, 3, P)
            out = (self.i0 * torch.exp(-od_new) - self.offset).clamp(0.0, 255.0)
            out = out.reshape(n, 3, height, width)
        too_faint = n_used < self.min_pixels
        self.last_too_faint_ = too_faint
        keep = tissue[:, None] & ~too_faint[:, None, None, None]
        return torch.where(keep, out.round(), rgb)
