"""Rendering of the synthetic cells: outlines, chromatin texture, staining.

:func:`~sklearn_leuko.datasets.make_cells` draws the per-subject and
per-cell parameters; this module turns them into images (and masks) by a
Beer-Lambert model of a stained cell on a bright-field background, segmented
onto black.
"""

import numpy as np
import scipy.fft

__all__ = ["N_NUCLEOLI", "REF_SIZE", "render"]

# Reference canvas: real C-NMC cells are 250-300 px wide on a 350 px canvas.
# Lengths below are in pixels of that canvas and scale with image_size.
REF_SIZE = 350.0
N_NUCLEOLI = 4  # slots; the number used per cell is drawn from z

# Optical density (natural log, I0 = 255) of one unit of stain, per RGB
# channel. The nuclear stain is the purple azure-eosin complex that binds
# chromatin; the cytoplasmic stain is the pale blue of basophilic cytoplasm.
_OD_NUCLEUS = -np.log(np.array([105.0, 60.0, 150.0]) / 255.0)
_OD_CYTOPLASM = -np.log(np.array([150.0, 165.0, 215.0]) / 255.0)
_ILLUMINATION = 250.0
_FINE_SIGMA = 1.6  # chromatin grain of blasts (fine, dispersed)
_COARSE_SIGMA = 7.0  # chromatin clumps of mature cells (condensed)


def _gaussian_transfer(shape, sigma):
    """Fourier transfer function of per-image Gaussian filters for rfft2."""
    fy = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    f2 = fy**2 + fx**2
    sigma = np.asarray(sigma, dtype=np.float32).reshape(-1, 1, 1)
    return np.exp(-2.0 * np.pi**2 * sigma**2 * f2)


def _smooth_noise(rng, n, size, sigma):
    """Gaussian-filtered white noise with unit standard deviation per image."""
    white = rng.standard_normal((n, size, size), dtype=np.float32)
    field = scipy.fft.irfft2(
        scipy.fft.rfft2(white) * _gaussian_transfer((size, size), sigma),
        s=(size, size),
    )
    field -= field.mean(axis=(1, 2), keepdims=True)
    field /= field.std(axis=(1, 2), keepdims=True) + 1e-6
    return field


def _outline(radius, coef, dx, dy):
    """Distance to the centre and radius of a star-shaped outline per pixel.

    The outline is ``radius * (1 + sum_k a_k cos(k theta) + b_k sin(k theta))``
    for k = 2..5 with ``coef[:, k - 2] = (a_k, b_k)``; ``cos(k theta)`` and
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
    rho, cell_r = _outline(c["radius"], c["cell_coef"], x, y)
    cell = np.clip(cell_r - rho + 0.5, 0.0, 1.0)
    del rho, cell_r

    ncx = c["nuc_center"][:, 0].astype(np.float32)[:, None, None]
    ncy = c["nuc_center"][:, 1].astype(np.float32)[:, None, None]
    nrho, nuc_r = _outline(c["nuc_radius"], c["nuc_coef"], x - ncx, y - ncy)
    nucleus = np.clip(nuc_r - nrho + 0.5, 0.0, 1.0) * cell
    del nrho, nuc_r
    if return_masks:
        masks = (cell >= 0.5, nucleus >= 0.5)

    fine = _smooth_noise(rng, n, size, _FINE_SIGMA * scale)
    coarse = _smooth_noise(rng, n, size, _COARSE_SIGMA * scale)
    w = c["fine_weight"].astype(np.float32)[:, None, None]
    texture = (w * fine + (1.0 - w) * coarse) / np.sqrt(w**2 + (1.0 - w) ** 2)
    del fine
    # log-normal modulation: condensed chromatin forms dark clumps, not holes
    contrast = c["contrast"].astype(np.float32)[:, None, None]
    chromatin = c["density"].astype(np.float32)[:, None, None] * np.exp(
        contrast * texture - contrast**2 / 2
    )
    del texture

    # nucleoli: pale, slightly bluish round spots in the chromatin
    pale = np.zeros_like(chromatin)
    for k in range(N_NUCLEOLI):
        px, py, pr, used = (c["nucleoli"][:, k, j] for j in range(4))
        px = (px + c["nuc_center"][:, 0]).astype(np.float32)[:, None, None]
        py = (py + c["nuc_center"][:, 1]).astype(np.float32)[:, None, None]
        pr = np.maximum(pr, 0.5).astype(np.float32)[:, None, None]
        used = used.astype(np.float32)[:, None, None]
        pale += used * np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * pr**2))
    pale = np.minimum(pale, 1.0)
    chromatin *= 1.0 - 0.6 * pale
    chromatin = np.maximum(chromatin, 0.05)

    cyto = c["cyto_density"].astype(np.float32)[:, None, None] * (1.0 + 0.08 * coarse)
    del coarse
    intensity = subjects["stain_intensity"][s].astype(np.float32)[:, None, None]
    conc_nuc = intensity * (nucleus * chromatin + (1.0 - nucleus) * 0.06) * cell
    conc_cyto = intensity * (nucleus * (0.3 + 0.3 * pale) + (1.0 - nucleus) * cyto)
    conc_cyto *= cell
    del chromatin, cyto, pale, nucleus

    # focus blur of the stain fields (before segmentation, as in the optics)
    blur = (subjects["blur"][s] * scale).astype(np.float32)
    transfer = _gaussian_transfer((size, size), blur)
    conc = np.stack([conc_nuc, conc_cyto])
    del conc_nuc, conc_cyto
    conc = scipy.fft.irfft2(scipy.fft.rfft2(conc) * transfer, s=(size, size))

    # Beer-Lambert: per-image stain vectors and illumination
    shift = subjects["stain_shift"][s] + c["stain_jitter"]
    od_nuc = (_OD_NUCLEUS * np.exp(shift[:, 0])).astype(np.float32)
    od_cyto = (_OD_CYTOPLASM * np.exp(shift[:, 1])).astype(np.float32)
    i0 = (_ILLUMINATION * np.exp(subjects["illumination"][s])).astype(np.float32)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for ch in range(3):
        od = conc[0] * od_nuc[:, ch, None, None] + conc[1] * od_cyto[:, ch, None, None]
        channel = i0[:, ch, None, None] * np.exp(-od)
        if noise > 0:
            channel += noise * rng.standard_normal(channel.shape, dtype=np.float32)
        channel *= cell
        images[..., ch] = np.clip(np.rint(channel), 0, 255).astype(np.uint8)
    if return_masks:
        return images, *masks
    return images
