"""Figures of single cells: RGB, optical density and log-DCT; Grad-CAM overlays."""

import numbers

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from ..utils import check_rgb_images
from ._plots import _save

__all__ = ["plot_cell_spaces", "plot_gradcam_overlay"]

_STAIN_NAMES = {
    "giemsa": ("methylene blue", "eosin", "residual"),
    "hed": ("haematoxylin", "eosin", "DAB"),
    "identity": ("red", "green", "blue"),
}


def _symmetric_limit(values):
    # An all-zero map (no coefficient survives the threshold) still gets a
    # readable colour bar.
    limit = float(np.abs(values).max())
    return limit if limit > 0 else 1.0


def _percentile_limit(values, q=99.5):
    inside = values[values > 0]
    return float(np.percentile(inside, q)) if inside.size else 1.0


def _colorbar(fig, image, ax):
    cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    cbar.ax.tick_params(labelsize=7)


def plot_cell_spaces(image, path, *, stain_matrix="giemsa", zoom=None, title=None):
    """One cell in RGB, optical-density stain space and log-DCT space.

    Row 1: the RGB image and its three channels. Row 2: the three stain
    channels of the optical density (OD) after stain deconvolution
    (:class:`~sklearn_leuko.preprocessing.StainDeconvolution`, the SD layer
    input of Stage-1) and a false-colour composite. Row 3: the thresholded
    log-DCT coefficients of each stain channel
    (:class:`~sklearn_leuko.preprocessing.LogDCT`, Stage-2): the full map of
    the first channel, with a box marking the low-frequency corner, and that
    corner enlarged for each channel.

    Parameters
    ----------
    image : array-like of shape (height, width, 3) or (1, height, width, 3)
        One uint8 RGB cell image.
    path : str or path-like
        Output image file; parent folders are created.
    stain_matrix : str or array-like, default="giemsa"
        Passed to ``StainDeconvolution``.
    zoom : int, default=None
        Side of the low-frequency corner shown enlarged; ``None`` uses a
        quarter of the image side (at least 8 coefficients).
    title : str, default=None
        Figure title.

    Returns
    -------
    path : pathlib.Path
        The written file.
    """
    from ..preprocessing import LogDCT, StainDeconvolution

    arr = np.asarray(image)
    if arr.ndim == 3:
        arr = arr[None]
    images = check_rgb_images(arr, name="image")
    if images.shape[0] != 1:
        raise ValueError(
            f"image holds {images.shape[0]} images; pass one cell, e.g. images[0]."
        )
    images = images.astype(np.uint8)
    od = np.asarray(StainDeconvolution(stain_matrix=stain_matrix).fit_transform(images))
    coef = np.asarray(LogDCT().fit_transform(od))
    od, coef = od[0], coef[0]
    height, width = images.shape[1:3]
    if zoom is None:
        zoom = max(8, min(height, width) // 4)
    zoom = int(min(zoom, height, width))
    names = (
        _STAIN_NAMES.get(stain_matrix, ("stain 1", "stain 2", "stain 3"))
        if isinstance(stain_matrix, str)
        else ("stain 1", "stain 2", "stain 3")
    )

    fig = Figure(figsize=(13, 9.6))
    axes = fig.subplots(3, 4)
    rgb = images[0]
    axes[0, 0].imshow(rgb, interpolation="nearest")
    axes[0, 0].set_title("RGB image")
    for c, name in enumerate(("red", "green", "blue")):
        im = axes[0, c + 1].imshow(
            rgb[..., c], cmap="gray", vmin=0, vmax=255, interpolation="nearest"
        )
        axes[0, c + 1].set_title(f"RGB: {name} channel")
        _colorbar(fig, im, axes[0, c + 1])

    # A few saturated border pixels would set a max-based scale; use the 99th
    # percentile of the cell's pixels instead.
    cell = np.abs(od).reshape(3, -1)
    cell = cell[:, (cell > 0).any(axis=0)] if (cell > 0).any() else cell
    scale = np.maximum(np.percentile(cell, 99, axis=1), 1e-12)[:, None, None].ravel()
    composite = np.clip(np.moveaxis(od, 0, -1) / scale, 0.0, 1.0)
    axes[1, 0].imshow(composite, interpolation="nearest")
    axes[1, 0].set_title("OD stains (false colour)")
    for c in range(3):
        if od[c].min() < 0:
            vmax = _percentile_limit(np.abs(od[c]))
            style = {"cmap": "RdBu_r", "vmin": -vmax, "vmax": vmax}
        else:
            style = {"cmap": "magma", "vmax": _percentile_limit(od[c])}
        im = axes[1, c + 1].imshow(od[c], interpolation="nearest", **style)
        axes[1, c + 1].set_title(f"OD: {names[c]}")
        _colorbar(fig, im, axes[1, c + 1])

    nonzero = 100.0 * np.count_nonzero(coef) / coef.size
    vmax = _symmetric_limit(coef[0])
    im = axes[2, 0].imshow(
        coef[0], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest"
    )
    axes[2, 0].add_patch(
        Rectangle((-0.5, -0.5), zoom, zoom, fill=False, edgecolor="black", lw=1.2)
    )
    axes[2, 0].set_title(f"log-DCT: {names[0]} (full)\n{nonzero:.2f}% non-zero")
    _colorbar(fig, im, axes[2, 0])
    for c in range(3):
        corner = coef[c, :zoom, :zoom]
        vmax = _symmetric_limit(corner)
        im = axes[2, c + 1].imshow(
            corner, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest"
        )
        axes[2, c + 1].set_title(f"log-DCT: {names[c]}\nlow-freq. {zoom}x{zoom}")
        _colorbar(fig, im, axes[2, c + 1])
    for ax in axes[:2].ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[2]:
        ax.set_xlabel("horizontal frequency")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    row_labels = ("RGB", "optical density", "log-DCT\nvertical frequency")
    for row, label in enumerate(row_labels):
        axes[row, 0].set_ylabel(label, fontsize=12, fontweight="bold")
    if title:
        fig.suptitle(title, parse_math=False)
    fig.tight_layout()
    return _save(fig, path)


def plot_gradcam_overlay(
    images, heatmaps, path, *, titles=None, alpha=0.45, ncols=None, cmap="jet"
):
    """A grid of cells with their Grad-CAM heatmaps overlaid.

    Each panel shows the RGB cell and, on top, the heatmap in ``cmap`` with
    opacity ``alpha`` times the heat, so cold regions leave the cell visible
    and hot regions are coloured (the black background stays black where
    there is no heat).

    Parameters
    ----------
    images : array-like of shape (n, H, W, 3)
        uint8 RGB cells.
    heatmaps : array-like of shape (n, H, W)
        Heat in [0, 1] per pixel, e.g. from
        :func:`sklearn_leuko.nn.grad_cam` (a torch tensor is accepted).
    path : str or path-like
        Output image file; parent folders are created.
    titles : sequence of str, default=None
        One title per panel (e.g. subject, true label and P("all")).
    alpha : float, default=0.45
        Opacity of the hottest pixels, in [0, 1].
    ncols : int, default=None
        Panels per row; ``None`` uses up to 6.
    cmap : str, default="jet"
        Matplotlib colour map of the heat.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np
    >>> from sklearn_leuko.report import plot_gradcam_overlay
    >>> cells = np.full((2, 16, 16, 3), 200, np.uint8)
    >>> heat = np.random.default_rng(0).random((2, 16, 16))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = plot_gradcam_overlay(cells, heat, os.path.join(d, "cam.png"))
    ...     p.stat().st_size > 0
    True
    """
    arr = np.asarray(images)
    images = check_rgb_images(arr, name="images").astype(np.uint8)
    if hasattr(heatmaps, "detach"):
        heatmaps = heatmaps.detach().cpu().numpy()
    heat = np.asarray(heatmaps, dtype=np.float64)
    if heat.shape != images.shape[:3]:
        raise ValueError(
            f"heatmaps must have shape {images.shape[:3]} (one map per image, same "
            f"size), got {heat.shape}."
        )
    if not np.isfinite(heat).all() or heat.min() < 0 or heat.max() > 1:
        raise ValueError(
            "heatmaps must hold values in [0, 1] (grad_cam's output is), got "
            f"values in [{np.nanmin(heat):g}, {np.nanmax(heat):g}]."
        )
    if not (isinstance(alpha, numbers.Real) and 0 <= alpha <= 1):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}.")
    n = images.shape[0]
    if titles is not None:
        titles = [str(t) for t in titles]
        if len(titles) != n:
            raise ValueError(
                f"titles has {len(titles)} entries but there are {n} images; pass "
                "one title per image or None."
            )
    if ncols is None:
        ncols = min(n, 6)
    elif (
        isinstance(ncols, bool) or not isinstance(ncols, numbers.Integral) or ncols < 1
    ):
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}.")
    ncols = int(min(ncols, n))
    nrows = -(-n // ncols)
    colours = colormaps[cmap](heat)[..., :3]
    weight = alpha * heat[..., None]
    blended = (1.0 - weight) * (images / 255.0) + weight * colours

    fig = Figure(figsize=(2.2 * ncols, 2.2 * nrows + (0.3 if titles else 0.0)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(np.clip(blended[i], 0.0, 1.0), interpolation="nearest")
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8, parse_math=False)
    fig.tight_layout()
    return _save(fig, path)
