"""Rendering of the synthetic cells: outlines, chromatin texture, staining.

:func:`~sklearn_leuko.datasets.make_cells` draws the per-subject and
per-cell parameters; this module turns them into images (and masks) by a
Beer-Lambert model of a stained cell, segmented onto black, with the stain
vectors and colour statistics of real C-NMC 2019 cells (:mod:`._cnmc_colour`).

Scale contract: every length is in pixels of the 450 x 450 C-NMC canvas
(``REF_SIZE``). An image of ``image_size`` s is rendered directly at s with
those lengths times ``s / 450``; texture amplitudes and camera noise are
reduced the way area-averaging a 450 px image down to s would reduce them.
"""

import numpy as np
import scipy.fft

from ._cnmc_colour import (
    CNMC_HUE_DIRECTION,
    CNMC_MEAN_CONCENTRATION,
    CNMC_STAIN_MATRIX,
    CNMC_TEXTURE_DIRECTION,
)

__all__ = ["N_HARMONICS", "REF_SIZE", "TEXTURE_SIGMAS", "render"]

# Reference canvas: a raw C-NMC image is 450 x 450 px, its cell about 220 px
# across. Lengths below and in the cell table are in pixels of that canvas.
REF_SIZE = 450.0
N_HARMONICS = 7  # outline harmonics k = 2..8
# Chromatin texture: smooth noise at these Gaussian scales (px of 450).
TEXTURE_SIGMAS = (1.5, 4.5, 13.5, 40.0)

_STAINS = np.asarray(CNMC_STAIN_MATRIX[:2], dtype=np.float32)
# OD vector of the mean cell colour and of a unit hue shift (R up, G/B down)
_OD_MEAN = (np.asarray(CNMC_MEAN_CONCENTRATION) @ CNMC_STAIN_MATRIX[:2]).astype(
    np.float32
)
_OD_HUE = (np.asarray(CNMC_HUE_DIRECTION) @ CNMC_STAIN_MATRIX[:2]).astype(np.float32)
_OD_HUE /= np.linalg.norm(_OD_HUE)
# chromatin patches vary the OD along the texture direction: split the mean
# colour into its component along it (modulated) and the rest (not)
_OD_TEXTURE = (np.asarray(CNMC_TEXTURE_DIRECTION) @ CNMC_STAIN_MATRIX[:2]).astype(
    np.float32
)
_OD_TEXTURE /= np.linalg.norm(_OD_TEXTURE)
_OD_ALONG = float(_OD_MEAN @ _OD_TEXTURE) * _OD_TEXTURE
_OD_ACROSS = _OD_MEAN - _OD_ALONG
_ILLUMINATION = 255.0


def _gaussian_transfer(shape, sigma):
    """Fourier transfer function of per-image Gaussian filters for rfft2."""
    fy = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    f2 = fy**2 + fx**2
    sigma = np.asarray(sigma, dtype=np.float32).reshape(-1, 1, 1)
    return np.exp(-2.0 * np.pi**2 * sigma**2 * f2)


def _area_average_factor(sigma):
    """Variance kept when a field of correlation length sigma px is pixel-averaged."""
    a = 4.0 * np.pi * np.asarray(sigma, dtype=np.float64) ** 2
    return a / (1.0 + a)


def _smooth_noise(rng, n, size, sigma_ref, scale):
    """Gaussian-filtered white noise, sd 1 at the 450 px canvas.

    At a smaller canvas (``scale < 1``) the standard deviation is what
    area-averaging the 450 px field down would leave (fine grain fades).
    """
    sigma = sigma_ref * scale
    white = rng.standard_normal((n, size, size), dtype=np.float32)
    field = scipy.fft.irfft2(
        scipy.fft.rfft2(white) * _gaussian_transfer((size, size), sigma),
        s=(size, size),
    )
    field -= field.mean(axis=(1, 2), keepdims=True)
    field /= field.std(axis=(1, 2), keepdims=True) + 1e-6
    keep = _area_average_factor(sigma) / _area_average_factor(sigma_ref)
    return field * np.float32(np.sqrt(min(1.0, keep)))


def _outline(radius, coef, dx, dy):
    """Distance to the centre and radius of a star-shaped outline per pixel.

    The outline is ``radius * (1 + sum_k a_k cos(k theta) + b_k sin(k theta))``
    for k = 2..K+1 with ``coef[:, k - 2] = (a_k, b_k)``; ``cos(k theta)`` and
    ``sin(k theta)`` come from the angle-addition recurrence (no trigonometric
    calls on full images).

    Returns
    -------
    rho, outline : ndarrays broadcast to ``(n, H, W)``
    """
    rho = np.hypot(dx, dy)
    c1 = dx / np.maximum(rho, 1e-6)
    s1 = dy / np.maximum(rho, 1e-6)
    ck = c1 * c1 - s1 * s1
    sk = 2.0 * s1 * c1
    coef = coef.astype(np.float32)[:, :, :, None, None]
    wave = coef[:, 0, 0] * ck + coef[:, 0, 1] * sk
    for k in range(1, coef.shape[1]):
        ck, sk = ck * c1 - sk * s1, sk * c1 + ck * s1
        wave += coef[:, k, 0] * ck + coef[:, k, 1] * sk
    return rho, radius.astype(np.float32)[:, None, None] * (1.0 + wave)


def _col(values):
    return np.asarray(values, dtype=np.float32)[:, None, None]


def render(cells, subjects, idx, image_size, noise, rng, return_masks=False):
    """Render the cells ``idx`` as uint8 ``(len(idx), H, W, 3)`` images.

    With ``return_masks``, also return the boolean cell and nucleus masks
    (the geometric outlines, thresholded at half coverage). They use no
    random numbers, so the images are the same bytes either way.
    """
    n = len(idx)
    size = image_size
    scale = size / REF_SIZE
    c = {key: value[idx] for key, value in cells.items()}
    s = c["subject_index"]

    coords = np.arange(size, dtype=np.float32) - (size - 1) / 2.0
    y, x = coords[:, None], coords[None, :]
    rho, cell_r = _outline(c["radius"] * scale, c["cell_coef"], x, y)
    cell = np.clip(cell_r - rho + 0.5, 0.0, 1.0)
    del rho, cell_r

    ncx = _col(c["nuc_center"][:, 0] * scale)
    ncy = _col(c["nuc_center"][:, 1] * scale)
    nrho, nuc_r = _outline(c["nuc_radius"] * scale, c["nuc_coef"], x - ncx, y - ncy)
    nucleus = np.clip(nuc_r - nrho + 0.5, 0.0, 1.0) * cell
    del nrho, nuc_r
    if return_masks:
        masks = (cell >= 0.5, nucleus >= 0.5)

    # chromatin: log-normal multi-scale mottling of the stain density
    amp = c["texture"] * subjects["texture_scale"][s][:, None]
    log_density = np.zeros((n, size, size), dtype=np.float32)
    for k, sigma in enumerate(TEXTURE_SIGMAS):
        log_density += _col(amp[:, k]) * _smooth_noise(rng, n, size, sigma, scale)
    var = (amp**2).sum(axis=1)
    # pale spots (nucleolus-like, lighter chromatin) common in real cells
    pale = np.zeros_like(log_density)
    for k in range(c["spots"].shape[1]):
        px, py, pr, depth = (c["spots"][:, k, j] for j in range(4))
        px, py, pr = _col(px * scale), _col(py * scale), _col(np.maximum(pr * scale, 0.5))
        pale += _col(depth) * np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * pr**2))
    # thin, lighter and bluer cytoplasm rim outside the nucleus
    rim = cell - nucleus
    base = (1.0 - _col(1.0 - c["cyto_density"]) * rim) * cell
    base *= _col(c["density"] * subjects["density"][s])
    # real cells have no pixel lighter than ~0.45 of the cell's mean OD
    log_density = np.maximum(log_density - _col(var / 2) - pale, -0.6)
    density = np.exp(log_density) * base
    del log_density, pale
    hue = (_col(c["hue"] + subjects["hue"][s]) + _col(c["cyto_hue"]) * rim) * cell
    hue += _col(c["hue_texture"]) * _smooth_noise(rng, n, size, 40.0, scale) * cell
    del rim, nucleus

    # focus blur of the stain fields (before segmentation, as in the optics)
    blur = (subjects["blur"][s] * scale).astype(np.float32)
    transfer = _gaussian_transfer((size, size), blur)
    fields = np.stack([base, density, hue])
    del base, density, hue
    fields = scipy.fft.irfft2(scipy.fft.rfft2(fields) * transfer, s=(size, size))

    # Beer-Lambert with the C-NMC stain plane; camera noise as after resizing
    i0 = (_ILLUMINATION * np.exp(subjects["illumination"][s])).astype(np.float32)
    sd = noise * min(1.0, scale)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for ch in range(3):
        od = (
            fields[0] * _OD_ACROSS[ch]
            + fields[1] * _OD_ALONG[ch]
            + fields[2] * _OD_HUE[ch]
        )
        channel = i0[:, ch, None, None] * np.exp(-od)
        if sd > 0:
            channel += sd * rng.standard_normal(channel.shape, dtype=np.float32)
        channel *= cell
        images[..., ch] = np.clip(np.rint(channel), 0, 255).astype(np.uint8)
    if return_masks:
        return images, *masks
    return images
