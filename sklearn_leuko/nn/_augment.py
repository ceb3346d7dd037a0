"""Batched, on-device image augmentation with kornia."""

import math
import numbers

import torch
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import get_affine_matrix2d, warp_affine
from torch import nn

from ._activations import _check_non_negative_number

__all__ = ["ImageAugmenter"]

# kornia raises on a drawn sigma of exactly 0; 1e-3 gives a kernel that is the
# identity to float32 precision.
_MIN_SIGMA = 1e-3


def _check_probability(value, name):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not (math.isfinite(value) and 0 <= value <= 1)
    ):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}.")
    return float(value)


def _check_flag(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return value


def _check_sigma_range(blur_sigma):
    if blur_sigma is None:
        return None
    if isinstance(blur_sigma, (str, bytes)) or not hasattr(blur_sigma, "__len__"):
        raise TypeError(
            "blur_sigma must be a pair (low, high) of standard deviations in "
            f"pixels, or None to disable the blur; got {blur_sigma!r}."
        )
    if len(blur_sigma) != 2:
        raise ValueError(
            "blur_sigma must be a pair (low, high) with 0 <= low <= high, got "
            f"{len(blur_sigma)} values: {tuple(blur_sigma)!r}."
        )
    low = _check_non_negative_number(blur_sigma[0], "blur_sigma[0]")
    high = _check_non_negative_number(blur_sigma[1], "blur_sigma[1]")
    if low > high:
        raise ValueError(
            f"blur_sigma must satisfy low <= high, got (low, high) = {blur_sigma!r}; "
            "swap the two values."
        )
    return low, high


class ImageAugmenter(nn.Module):
    """Random rotation, shear, flips and Gaussian blur of a batch of images.

    The augmentations of the LeukoNet training recipe ("w/ aug" rows of
    Mourya et al., Table 2; the same lab's successor SDCT-AuxNet uses
    rotation, flips, shear 20 degrees and Gaussian blur with sigma in
    [0, 0.75]), run with :mod:`kornia` on the whole batch, on whatever device
    the batch lives:

    1. one affine warp combining a rotation by an angle drawn uniformly in
       ``[-rotation, rotation]`` degrees, a shear along x and along y, each
       drawn uniformly in ``[-shear, shear]`` degrees, and a horizontal and a
       vertical flip, each with probability 0.5 (if ``hflip`` / ``vflip``),
       around the image centre, with bilinear interpolation and zero padding
       (the black background of C-NMC cells stays black). One warp instead of
       one per transform halves the cost on the CPU;
    2. with probability ``blur_p``, a Gaussian blur whose sigma is drawn
       uniformly in ``blur_sigma`` (kernel size ``2 * ceil(3 * high) + 1``,
       replicated borders).

    Every parameter is drawn per sample from torch's global random number
    generator, so :func:`torch.manual_seed` makes the result reproducible on
    the CPU. The module only augments in training mode; after ``.eval()``
    :meth:`forward` returns its input unchanged.

    Parameters
    ----------
    rotation : float or None, default=180.0
        Largest rotation in degrees; 0 or None disables the rotation.
    hflip : bool, default=True
        Random horizontal flips.
    vflip : bool, default=True
        Random vertical flips.
    shear : float or None, default=20.0
        Largest shear angle in degrees; 0 or None disables the shear.
    blur_sigma : (float, float) or None, default=(0.0, 0.75)
        Range ``(low, high)`` of the blur standard deviation in pixels, with
        ``0 <= low <= high``; ``high == 0`` or None disables the blur. A drawn
        sigma below 1e-3 is raised to 1e-3 (no visible blur).
    blur_p : float, default=0.5
        Probability of blurring a sample.
    p : float, default=1.0
        Probability that a sample is augmented at all; the others pass
        through unchanged.

    Attributes
    ----------
    transforms : torch.nn.Sequential
        The enabled steps, :class:`RandomAffineFlip` then
        :class:`RandomGaussianBlur`.

    References
    ----------
    .. [1] Mourya et al., "LeukoNet", arXiv:1810.07961, Section 4, Table 2.
    .. [2] E. Riba et al., "Kornia: an Open Source Differentiable Computer
       Vision Library for PyTorch", WACV 2020.

    Examples
    --------
    >>> import torch
    >>> from sklearn_leuko.nn import ImageAugmenter
    >>> aug = ImageAugmenter()
    >>> x = torch.rand(4, 3, 32, 32)
    >>> aug(x).shape
    torch.Size([4, 3, 32, 32])
    >>> aug.eval()(x) is x
    True
    """

    def __init__(
        self,
        rotation=180.0,
        hflip=True,
        vflip=True,
        shear=20.0,
        blur_sigma=(0.0, 0.75),
        blur_p=0.5,
        p=1.0,
    ):
        super().__init__()
        self.rotation = (
            0.0
            if rotation is None
            else _check_non_negative_number(rotation, "rotation")
        )
        self.shear = (
            0.0 if shear is None else _check_non_negative_number(shear, "shear")
        )
        self.hflip = _check_flag(hflip, "hflip")
        self.vflip = _check_flag(vflip, "vflip")
        self.blur_sigma = _check_sigma_range(blur_sigma)
        self.blur_p = _check_probability(blur_p, "blur_p")
        self.p = _check_probability(p, "p")

        transforms = []
        if self.rotation > 0 or self.shear > 0 or self.hflip or self.vflip:
            transforms.append(
                RandomAffineFlip(self.rotation, self.shear, self.hflip, self.vflip)
            )
        if self.blur_sigma is not None and self.blur_sigma[1] > 0 and self.blur_p > 0:
            low, high = self.blur_sigma
            low, high = max(low, _MIN_SIGMA), max(high, _MIN_SIGMA)
            kernel = 2 * math.ceil(3 * high) + 1
            transforms.append(RandomGaussianBlur(kernel, (low, high), p=self.blur_p))
        self.transforms = nn.Sequential(*transforms)

    def forward(self, x, mask=None):
        """Augment a batch (training mode only).

        Parameters
        ----------
        x : torch.Tensor of shape (n, C, H, W), floating point
        mask : torch.Tensor of shape (n,), bool, default=None
            Augment only the samples where ``mask`` is true; the others are
            returned bit-identical. ``None`` augments every sample.

        Returns
        -------
        x_aug : torch.Tensor of shape (n, C, H, W)
            A new tensor, or ``x`` itself in eval mode or when nothing is
            augmented.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"ImageAugmenter expects a torch.Tensor, got {type(x).__name__}."
            )
        if x.ndim != 4:
            raise ValueError(
                "ImageAugmenter expects images of shape (n, C, H, W), got shape "
                f"{tuple(x.shape)}."
            )
        if not x.is_floating_point():
            raise TypeError(
                f"ImageAugmenter expects a floating point tensor, got {x.dtype}; "
                "convert it first, e.g. x.float()."
            )
        if mask is not None:
            mask = torch.as_tensor(mask, device=x.device)
            if mask.dtype != torch.bool or mask.shape != (x.shape[0],):
                raise ValueError(
                    f"mask must be a bool tensor of shape ({x.shape[0]},), one flag "
                    f"per image; got dtype {mask.dtype} and shape {tuple(mask.shape)}."
                )
        if not self.training or len(self.transforms) == 0 or self.p == 0:
            return x
        if self.p < 1:
            drawn = torch.rand(x.shape[0]) < self.p
            drawn = drawn.to(x.device)
            mask = drawn if mask is None else mask & drawn
        if mask is None:
            return self.transforms(x)
        index = mask.nonzero().squeeze(1)
        if index.numel() == 0:
            return x
        out = x.clone()
        out[index] = self.transforms(x[index]).to(x.dtype)
        return out

    def extra_repr(self):
        return (
            f"rotation={self.rotation}, hflip={self.hflip}, vflip={self.vflip}, "
            f"shear={self.shear}, blur_sigma={self.blur_sigma}, "
            f"blur_p={self.blur_p}, p={self.p}"
        )


class RandomAffineFlip(nn.Module):
    """Rotation, shear and flips of every sample as one bilinear warp.

    The matrix is built by :func:`kornia.geometry.transform.get_affine_matrix2d`
    (flips are a scale of -1) and applied by
    :func:`kornia.geometry.transform.warp_affine`.
    """

    def __init__(self, rotation, shear, hflip, vflip):
        super().__init__()
        self.rotation = float(rotation)
        self.shear = float(shear)
        self.hflip = bool(hflip)
        self.vflip = bool(vflip)

    def forward(self, x):
        n, _, h, w = x.shape
        dev, dt = x.device, x.dtype

        def uniform(bound, size=(n,)):
            return (torch.rand(size) * 2 - 1).mul(bound).to(dev, dt)

        def sign(enabled):
            flip = torch.rand(n) < 0.5
            return torch.where(flip & enabled, -1.0, 1.0).to(dev, dt)

        scale = torch.stack([sign(self.hflip), sign(self.vflip)], dim=1)
        if self.rotation == 0 and self.shear == 0:
            # Flips alone: exact, no interpolation.
            hflip = (scale[:, 0] < 0).view(n, 1, 1, 1)
            vflip = (scale[:, 1] < 0).view(n, 1, 1, 1)
            x = torch.where(hflip, x.flip(-1), x)
            return torch.where(vflip, x.flip(-2), x)
        angle = uniform(self.rotation)
        shear = torch.deg2rad(uniform(self.shear, (n, 2)))  # kornia wants radians
        center = torch.tensor([(w - 1) / 2, (h - 1) / 2], device=dev, dtype=dt)
        matrix = get_affine_matrix2d(
            torch.zeros(n, 2, device=dev, dtype=dt),
            center.expand(n, 2),
            scale,
            angle,
            shear[:, 0],
            shear[:, 1],
        )
        return warp_affine(
            x,
            matrix[:, :2],
            (h, w),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )

    def extra_repr(self):
        return (
            f"rotation={self.rotation}, shear={self.shear}, hflip={self.hflip}, "
            f"vflip={self.vflip}"
        )


class RandomGaussianBlur(nn.Module):
    """Gaussian blur of a random subset of samples, sigma drawn per sample.

    Uses :func:`kornia.filters.gaussian_blur2d` with a per-sample sigma on the
    chosen samples only (replicated borders).
    """

    def __init__(self, kernel_size, sigma, p=0.5):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.sigma = (float(sigma[0]), float(sigma[1]))
        self.p = float(p)

    def forward(self, x):
        chosen = (torch.rand(x.shape[0]) < self.p).nonzero().squeeze(1).to(x.device)
        if chosen.numel() == 0:
            return x
        low, high = self.sigma
        sigma = low + (high - low) * torch.rand(chosen.numel())
        sigma = sigma.to(x.device, x.dtype)[:, None].expand(-1, 2)
        k = self.kernel_size
        out = x.clone()
        out[chosen] = gaussian_blur2d(
            x[chosen], (k, k), sigma, border_type="replicate", separable=False
        )
        return out

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, sigma={self.sigma}, p={self.p}"
