"""Batched, on-device image augmentation with kornia."""

import math
import numbers

import torch
from kornia.geometry.conversions import normalize_homography
from kornia.geometry.transform import get_affine_matrix2d
from torch import nn
from torch.nn import functional as F

from ._activations import _check_non_negative_number

__all__ = ["ImageAugmenter"]

# kornia raises on a drawn sigma of exactly 0; 1e-3 gives a kernel that is the
# identity to float32 precision.
_MIN_SIGMA = 1e-3


def _to_device(tensor, device, dtype=None):
    """Send a small CPU tensor of random draws to ``device`` without a sync.

    The draws are made on the CPU (so a seed gives the same augmentation on
    every device); a plain ``.to("cuda")`` of pageable memory would wait for
    the GPU to finish its queued work, once per draw and batch. From pinned
    memory the copy is queued like a kernel.
    """
    if dtype is not None:
        tensor = tensor.to(dtype)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


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

    The augmentations of the LeukoNet training recipe (Mourya et al. 2018,
    section 3: rotation, flips, shear in [-20, 20] degrees, Gaussian blur
    sigma in [0, 0.75]; the "w/ aug" rows of Tables 1 and 2; the same lab's successor SDCT-AuxNet uses
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

    Every parameter is drawn per sample from torch's global (CPU) random
    number generator, whatever the device of the batch, so
    :func:`torch.manual_seed` makes the result reproducible on the CPU. On a
    GPU the draws reach the device through pinned memory and the module never
    waits for the GPU (no host synchronisation per batch); with a ``mask``
    it then transforms every sample and keeps the masked ones, where the CPU
    transforms only the masked ones (so the two draw different numbers). The
    module only augments in training mode; after ``.eval()`` :meth:`forward`
    returns its input unchanged.

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
    blur_p : float, default=0.2
        Probability of blurring a sample (0.2 as in the training recipe of the
        same lab's SDCT-AuxNet; a 7x7 blur is the most expensive augmentation
        on the CPU).
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
    .. [1] Mourya et al., "LeukoNet", arXiv:1810.07961, sections 3 and 5,
       Tables 1 and 2.
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
        blur_p=0.2,
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
            transforms.append(
                RandomGaussianBlur(
                    kernel, (low, high), p=self.blur_p, inplace=bool(transforms)
                )
            )
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
            drawn = _to_device(torch.rand(x.shape[0]) < self.p, x.device)
            mask = drawn if mask is None else mask & drawn
        if mask is None:
            return self.transforms(x)
        if x.device.type == "cpu":
            return self._augment_gathered(x, mask)
        return self._augment_selected(x, mask)

    def _augment_gathered(self, x, mask):
        """Transform only the masked samples (reads the mask on the host)."""
        if bool(mask.all()):
            # Everything augmented: skip the gather / clone / scatter copies.
            return self.transforms(x)
        index = mask.nonzero().squeeze(1)
        if index.numel() == 0:
            return x
        out = x.clone()
        out[index] = self.transforms(x[index]).to(x.dtype)
        return out

    def _augment_selected(self, x, mask):
        """Transform every sample, keep the masked ones (no host synchronisation).

        On a GPU, gathering the masked samples would need their count on the
        host, i.e. wait for the GPU once per batch; transforming all of them
        is cheaper there.
        """
        return torch.where(mask.view(-1, 1, 1, 1), self.transforms(x).to(x.dtype), x)

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
        # The parameters and the (n, 2, 3) matrices are drawn and built on the
        # CPU, then sent in one copy: the same warp on every device, and no
        # synchronisation of a GPU.

        def uniform(bound, size=(n,)):
            return (torch.rand(size) * 2 - 1).mul(bound).to(dt)

        def sign(enabled):
            flip = torch.rand(n) < 0.5
            return torch.where(flip & enabled, -1.0, 1.0).to(dt)

        scale = torch.stack([sign(self.hflip), sign(self.vflip)], dim=1)
        if self.rotation == 0 and self.shear == 0:
            # Flips alone: exact, no interpolation.
            flips = _to_device(scale < 0, dev)
            hflip = flips[:, 0].view(n, 1, 1, 1)
            vflip = flips[:, 1].view(n, 1, 1, 1)
            x = torch.where(hflip, x.flip(-1), x)
            return torch.where(vflip, x.flip(-2), x)
        angle = uniform(self.rotation)
        shear = torch.deg2rad(uniform(self.shear, (n, 2)))  # kornia wants radians
        center = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=dt)
        matrix = get_affine_matrix2d(
            torch.zeros(n, 2, dtype=dt),
            center.expand(n, 2),
            scale,
            angle,
            shear[:, 0],
            shear[:, 1],
        )
        # What kornia's warp_affine does, but the sampling grid is built by
        # broadcasting instead of F.affine_grid, which costs more than the
        # sampling itself on the CPU.
        to_norm = normalize_homography(matrix, (h, w), (h, w))
        theta = torch.linalg.inv(to_norm)[:, :2]
        xs = torch.linspace(-1, 1, w, device=dev, dtype=dt).view(1, 1, w)
        ys = torch.linspace(-1, 1, h, device=dev, dtype=dt).view(1, h, 1)
        t = _to_device(theta.reshape(n, 6, 1, 1), dev)
        grid = torch.stack(
            [
                t[:, 0] * xs + t[:, 1] * ys + t[:, 2],
                t[:, 3] * xs + t[:, 4] * ys + t[:, 5],
            ],
            dim=-1,
        )
        return F.grid_sample(
            x, grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )

    def extra_repr(self):
        return (
            f"rotation={self.rotation}, shear={self.shear}, hflip={self.hflip}, "
            f"vflip={self.vflip}"
        )


class RandomGaussianBlur(nn.Module):
    """Gaussian blur of a random subset of samples, sigma drawn per sample.

    Each chosen sample gets its own normalised ``kernel_size`` x
    ``kernel_size`` Gaussian (replicated borders); all of them run as one
    depthwise convolution, about three times faster on the CPU than
    ``kornia.filters.gaussian_blur2d`` with per-sample sigma.

    Parameters
    ----------
    kernel_size : int
    sigma : (float, float)
        Sigma is drawn uniformly in this range per chosen sample.
    p : float
        Probability that a sample is blurred.
    inplace : bool
        Write into the input batch (only when it is a fresh tensor, i.e. an
        earlier augmentation step made it).
    """

    def __init__(self, kernel_size, sigma, p=0.5, inplace=False):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.sigma = (float(sigma[0]), float(sigma[1]))
        self.p = float(p)
        self.inplace = bool(inplace)

    def forward(self, x):
        n, c, h, w = x.shape
        # Drawn and built on the CPU (the count m is known there without a
        # synchronisation), then sent to the device.
        chosen = (torch.rand(n) < self.p).nonzero().squeeze(1)
        m = chosen.numel()
        if m == 0:
            return x
        low, high = self.sigma
        sigma = (low + (high - low) * torch.rand(m)).to(x.dtype)
        half = self.kernel_size // 2
        r = torch.arange(-half, half + 1, dtype=x.dtype)
        g = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None] ** 2))
        g = g / g.sum(dim=1, keepdim=True)
        kernel = (g[:, :, None] * g[:, None, :]).repeat_interleave(c, dim=0)
        chosen = _to_device(chosen, x.device)
        kernel = _to_device(kernel, x.device)
        sub = F.pad(x[chosen].reshape(1, m * c, h, w), (half,) * 4, mode="replicate")
        blurred = F.conv2d(sub, kernel[:, None], groups=m * c).reshape(m, c, h, w)
        out = x if self.inplace else x.clone()
        out[chosen] = blurred
        return out

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, sigma={self.sigma}, p={self.p}"
