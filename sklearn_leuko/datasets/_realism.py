"""Statistics of segmented single-cell images, to compare real and synthetic cells.

Used by :func:`make_cells`'s calibration (``benchmarks/data/real_cells.py``) and
its tests: each statistic is measured per cell on uint8 RGB images with a
black background, the layout of C-NMC 2019 and of :func:`make_cells`. Sizes
are fractions of the canvas and lengths of texture filters are in pixels of
a 450 px canvas (the C-NMC frame), so images of any size can be compared.
"""

import numpy as np
from scipy import ndimage

__all__ = ["CELL_STATISTICS", "cell_statistics"]

#: Names of the columns of :func:`cell_statistics`, in order.
CELL_STATISTICS = (
    "area",
    "od_r",
    "od_g",
    "od_b",
    "od_sd_r",
    "od_sd_g",
    "od_sd_b",
    "pale",
    "solidity",
    "radial_cv",
    "texture_fine",
    "texture_mid",
    "texture_coarse",
    "rim_contrast",
    "hue",
)

_SOURCE_SIZE = 450.0


def _convex_area(mask):
    """Area of the convex hull of a 2-D mask's pixel centres (+ half a pixel rim)."""
    from scipy.spatial import ConvexHull

    rows, cols = np.nonzero(mask)
    if len(rows) < 3:
        return float(len(rows))
    points = np.stack([rows, cols], axis=1).astype(float)
    try:
        hull = ConvexHull(points)
    except Exception:  # degenerate (a line of pixels)
        return float(len(rows))
    # hull of pixel centres misses half a pixel all round: add perimeter / 2
    return float(hull.volume + hull.area / 2.0 + 1.0)


def _radial_cv(mask):
    """Coefficient of variation of the boundary's distance to the centroid."""
    boundary = mask & ~ndimage.binary_erosion(mask)
    rows, cols = np.nonzero(boundary)
    if len(rows) < 8:
        return 0.0
    cy, cx = np.argwhere(mask).mean(axis=0)
    dist = np.hypot(rows - cy, cols - cx)
    return float(dist.std() / max(dist.mean(), 1e-6))


def cell_statistics(images, *, source_size=None):
    """Per-cell colour, size, shape and texture statistics of segmented cells.

    Parameters
    ----------
    images : array-like of shape (n, H, W, 3), uint8
        Segmented cells on a black (0, 0, 0) background.
    source_size : float, default=None
        Width in pixels of the native C-NMC canvas the images represent
        (450); texture filter lengths are in its pixels. None: 450.

    Returns
    -------
    stats : ndarray of shape (n, len(CELL_STATISTICS)), float64
        Columns as in :data:`CELL_STATISTICS`: cell area over the canvas;
        mean optical density of the cell per channel (natural log,
        ``-ln(I / 255)``, on the eroded cell); its standard deviation within
        the cell; share of pale pixels (mean RGB over 120); solidity (area
        over convex-hull area); coefficient of variation of the boundary's
        distance to the centroid; texture: standard deviation of the grey OD
        band-passed between Gaussian scales 1-3, 3-9 and 9-27 px of a 450
        canvas, relative to the mean grey OD; rim contrast (mean grey OD of
        the outer 8% of the equivalent radius minus that of the rest, over
        the mean); hue: OD blue over OD red minus 1.
    """
    images = np.asarray(images)
    n, height, width = images.shape[:3]
    ref = _SOURCE_SIZE if source_size is None else float(source_size)
    scale = width / ref
    out = np.zeros((n, len(CELL_STATISTICS)))
    for i in range(n):
        rgb = images[i].astype(np.float64)
        mask = rgb.max(axis=-1) > 0
        mask = ndimage.binary_fill_holes(mask)
        labels, count = ndimage.label(mask)
        if count > 1:  # keep the largest component (the cell)
            sizes = ndimage.sum(mask, labels, range(1, count + 1))
            mask = labels == (1 + int(np.argmax(sizes)))
        area = mask.sum()
        if area < 10:
            continue
        erode = max(1, int(round(3 * scale)))
        inner = ndimage.binary_erosion(mask, iterations=erode)
        if inner.sum() < 10:
            inner = mask
        od = -np.log(np.maximum(rgb, 1.0) / 255.0)
        pix = od[inner]
        grey = od.mean(axis=-1)
        grey_mean = grey[inner].mean()
        # band-passed grey OD, normalised convolution so the black outside
        # does not leak into the cell
        weight = inner.astype(np.float64)
        smooth = []
        for sigma in (1.0, 3.0, 9.0, 27.0):
            s = sigma * scale
            num = ndimage.gaussian_filter(grey * weight, s, mode="constant")
            den = ndimage.gaussian_filter(weight, s, mode="constant")
            smooth.append(num / np.maximum(den, 1e-6))
        deep = ndimage.binary_erosion(mask, iterations=max(1, int(round(30 * scale))))
        if deep.sum() < 10:
            deep = inner
        bands = [
            (smooth[k] - smooth[k + 1])[deep].std() / max(grey_mean, 1e-6)
            for k in range(3)
        ]
        r_eq = np.sqrt(area / np.pi)
        dist = ndimage.distance_transform_edt(mask)
        rim = mask & (dist <= max(1.0, 0.08 * r_eq))
        core = mask & (dist > max(1.0, 0.08 * r_eq))
        rim_contrast = (
            (grey[rim].mean() - grey[core].mean()) / max(grey_mean, 1e-6)
            if core.any() and rim.any()
            else 0.0
        )
        means = pix.mean(axis=0)
        out[i] = [
            area / (height * width),
            *means,
            *pix.std(axis=0),
            (rgb[mask].mean(axis=-1) > 120).mean(),
            area / _convex_area(mask),
            _radial_cv(mask),
            *bands,
            rim_contrast,
            means[2] / max(means[0], 1e-6) - 1.0,
        ]
    return out
