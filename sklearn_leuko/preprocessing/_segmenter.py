"""CellSegmenter: one white cell out of a smear crop, in the C-NMC form."""

import warnings
from numbers import Integral, Real

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_otsu
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions

__all__ = ["CellSegmenter", "segment_cell"]


def _check_one(image, index):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"image {index} has shape {image.shape} and dtype {image.dtype}; "
            "CellSegmenter takes uint8 RGB images (H, W, 3), as an array "
            "(n, H, W, 3) or a list of arrays of any sizes."
        )
    if min(image.shape[:2]) < 16:
        raise ValueError(
            f"image {index} is {image.shape[0]}x{image.shape[1]} pixels; a crop "
            "around a white cell needs at least 16x16."
        )
    return image


def _purple(rgb):
    """Stain channel of white cells: ``(B - G) + (B - R) / 2``.

    Giemsa-type stains make nuclei purple and white-cell cytoplasm bluish
    or lilac (B above G and R), red cells pink (R above B) and the
    background light (B about G), whatever the brightness of the microscope.
    """
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    return (b - g) + 0.5 * (b - r)


def segment_cell(image, *, min_area=0.003, grow=0.6):
    """Mask of the white cell nearest the centre of a crop, and a status.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8
    min_area : float, default=0.003
        Smallest nucleus, as a fraction of the crop (platelets are smaller).
    grow : float, default=0.6
        How far the cell may reach past its nucleus into the cytoplasm, in
        units of the nucleus's equivalent radius.

    Returns
    -------
    mask : ndarray of shape (H, W), bool
    status : {"ok", "no_cell", "several_cells"}
    """
    height, width = image.shape[:2]
    size = float(np.hypot(height, width))
    s = ndimage.gaussian_filter(_purple(image), sigma=max(1.0, size / 300))
    if float(s.max() - s.min()) < 10:
        return np.zeros((height, width), bool), "no_cell"
    # The background's level: the 25th percentile, not the median, as in a
    # tight crop the white cell covers up to half of it (BCCD: the median
    # put the cytoplasm below the background, 86.7% -> 91.1% success).
    background = float(np.percentile(s, 25))
    # Otsu's threshold, but at least halfway from the background to the
    # most stained pixels: with a small nucleus (platelets, a small
    # lymphocyte) Otsu alone splits red cells from background instead.
    high = max(threshold_otsu(s), 0.5 * (background + float(np.percentile(s, 99.9))))
    nucleus = ndimage.binary_opening(s > high, iterations=2)
    labels, n = ndimage.label(nucleus)
    if n == 0:
        return np.zeros((height, width), bool), "no_cell"
    index = np.arange(1, n + 1)
    areas = ndimage.sum(nucleus, labels, index)
    centres = np.array(ndimage.center_of_mass(nucleus, labels, index))
    distance = np.hypot(centres[:, 0] - height / 2, centres[:, 1] - width / 2) / size
    big = areas >= max(min_area * height * width, 0.25 * areas.max())
    if not big.any():
        return np.zeros((height, width), bool), "no_cell"
    chosen = index[big][np.argmin(distance[big])]
    centre = centres[chosen - 1]
    # Lobes of one nucleus (neutrophils) lie close together or share the
    # cytoplasm; a second large nucleus elsewhere is a second white cell.
    low = 0.5 * (high + background)
    stained, _ = ndimage.label(s > low)
    home = np.bincount(stained[labels == chosen]).argmax()
    shared = ndimage.maximum(stained == home, labels, index).astype(bool)
    gap = np.hypot(*(centres - centre).T) / size
    same = big & ((gap < 0.18) | (shared & (home > 0)))
    far_big = (
        big & ~same & (areas >= max(0.5 * areas[chosen - 1], 0.01 * height * width))
    )
    nucleus = np.isin(labels, index[same])
    radius = np.sqrt(nucleus.sum() / np.pi)
    # Cytoplasm: purple above the background's level, connected to the
    # nucleus, within reach of it.
    reach = ndimage.distance_transform_edt(~nucleus) <= grow * radius + 2
    cell = ndimage.binary_propagation(nucleus, mask=(s > low) & reach) | nucleus
    cell = ndimage.binary_closing(cell, iterations=3)
    cell = ndimage.binary_fill_holes(cell)
    # The closing may add a rim of background; inside the cell, keep all.
    cell &= (_purple(image) > low) | ndimage.binary_erosion(cell, iterations=3)
    cell = ndimage.binary_opening(cell, iterations=2)
    labels, n = ndimage.label(cell)
    if n == 0:
        return cell, "no_cell"
    counts = np.bincount(labels[nucleus], minlength=n + 1)
    counts[0] = 0
    cell = labels == np.argmax(counts)
    return cell, ("several_cells" if far_big.any() else "ok")


def _place(image, mask, canvas, cell_fraction):
    """The masked cell on a black canvas, its centroid at the centre."""
    if cell_fraction is not None and mask.any():
        scale = np.sqrt(cell_fraction * canvas[0] * canvas[1] / mask.sum())
        new = (
            max(1, round(image.shape[1] * scale)),
            max(1, round(image.shape[0] * scale)),
        )
        image = np.asarray(Image.fromarray(image).resize(new, Image.BILINEAR))
        mask = np.asarray(Image.fromarray(mask).resize(new, Image.NEAREST))
    out = np.zeros((*canvas, 3), dtype=np.uint8)
    if not mask.any():
        return out
    cy, cx = ndimage.center_of_mass(mask)
    dy, dx = round(canvas[0] / 2 - cy), round(canvas[1] / 2 - cx)
    ys, xs = np.nonzero(mask)
    ty, tx = ys + dy, xs + dx
    inside = (ty >= 0) & (ty < canvas[0]) & (tx >= 0) & (tx < canvas[1])
    out[ty[inside], tx[inside]] = image[ys[inside], xs[inside]]
    # A cell pixel must never read as the black background (value 0).
    cell = np.zeros(canvas, bool)
    cell[ty[inside], tx[inside]] = True
    out[cell] = np.maximum(out[cell], 1)
    return out


class CellSegmenter(TransformerMixin, BaseEstimator):
    """Cut the white cell out of a crop: the C-NMC form, cell alone on black.

    A laboratory's images are usually crops of a smear around a white cell,
    with red cells around it on a light background (CellaVision-style
    single-cell images, or crops of a smear photo). C-NMC 2019 cells, and
    so models trained on them, are the white cell alone (nucleus and
    cytoplasm) on black. This transformer brings a crop into that form with
    the classical method of the literature:

    1. a stain channel, ``(B - G) + (B - R) / 2`` (high on purple nuclei
       and bluish or lilac white-cell cytoplasm, low on pink red cells and
       the light background), smoothed;
    2. Otsu's threshold of it (at least halfway from the background level,
       its 25th percentile, to the 99.9th percentile, so that a small
       nucleus is not lost to red cells)
       gives nuclei; the large nucleus nearest the centre is kept, with the
       lobes of a segmented nucleus (near it, or sharing its cytoplasm);
    3. the cell grows from the nucleus into connected pixels above a lower
       threshold (the cytoplasm), at most ``grow`` nucleus radii away;
       holes are filled and the component holding the nucleus kept;
    4. the cell is placed with its centroid at the centre of a black canvas
       of ``image_size`` (optionally rescaled so that it covers
       ``cell_fraction`` of the canvas); cell pixels are at least 1, so
       none reads as background.

    A crop without a white cell (status ``"no_cell"``) or with a second
    large nucleus away from the chosen one (``"several_cells"``) is a
    ValueError with ``on_failure="raise"``; with ``"flag"`` it is returned
    as segmented (an all-black image for ``"no_cell"``) and reported in
    ``status_`` and ``failed_``. Stateless: :meth:`fit` only validates.

    Parameters
    ----------
    image_size : int or (int, int) or None, default=None
        Canvas size. ``None`` keeps each input's size (all inputs must then
        share one size).
    cell_fraction : float or None, default=None
        Rescale each crop so that the cell covers this fraction of the
        canvas (C-NMC cells cover about 0.15-0.19 of 450x450). ``None``
        keeps the pixel size.
    min_area : float, default=0.003
        Smallest nucleus, as a fraction of the crop.
    grow : float, default=0.6
        Reach of the cytoplasm past the nucleus, in nucleus radii.
    on_failure : {"raise", "flag"}, default="raise"
        What :meth:`transform` does with crops where no single white cell
        was found.

    Attributes
    ----------
    status_ : ndarray of str, shape (n_samples,)
        Per image of the last :meth:`transform`: ``"ok"``, ``"no_cell"``
        or ``"several_cells"``.
    failed_ : ndarray of int
        Indices of the images whose status is not ``"ok"``.
    masks_ : list of ndarray of bool
        The cell mask of each input image, in its own frame.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_leuko.preprocessing import CellSegmenter
    >>> crop = np.full((64, 64, 3), (235, 215, 200), dtype=np.uint8)  # background
    >>> yy, xx = np.mgrid[:64, :64]
    >>> crop[(yy - 28) ** 2 + (xx - 36) ** 2 < 144] = (90, 50, 150)  # a nucleus
    >>> out = CellSegmenter(image_size=48).fit_transform(crop[None])
    >>> out.shape, out[0, 24, 24].tolist(), out[0, 0, 0].tolist()
    ((1, 48, 48, 3), [90, 50, 150], [0, 0, 0])
    """

    _parameter_constraints: dict = {
        "image_size": [Interval(Integral, 16, None, closed="left"), tuple, None],
        "cell_fraction": [Interval(Real, 0, 1, closed="neither"), None],
        "min_area": [Interval(Real, 0, 1, closed="neither")],
        "grow": [Interval(Real, 0, None, closed="left")],
        "on_failure": [StrOptions({"raise", "flag"})],
    }

    def __init__(
        self,
        image_size=None,
        *,
        cell_fraction=None,
        min_area=0.003,
        grow=0.6,
        on_failure="raise",
    ):
        self.image_size = image_size
        self.cell_fraction = cell_fraction
        self.min_area = min_area
        self.grow = grow
        self.on_failure = on_failure

    def fit(self, X=None, y=None):
        """Validate the parameters (the segmenter learns nothing).

        Parameters
        ----------
        X : ignored
        y : ignored

        Returns
        -------
        self : CellSegmenter
        """
        self._validate_params()
        return self

    def _canvas(self, images):
        if self.image_size is None:
            shapes = {im.shape[:2] for im in images}
            if len(shapes) > 1:
                raise ValueError(
                    f"the images have {len(shapes)} different sizes (e.g. "
                    f"{sorted(shapes)[:3]}); set image_size to put every cell on one "
                    "canvas, e.g. CellSegmenter(image_size=450)."
                )
            return shapes.pop()
        if isinstance(self.image_size, tuple):
            if len(self.image_size) != 2 or not all(
                isinstance(v, Integral) and v >= 16 for v in self.image_size
            ):
                raise ValueError(
                    f"image_size must be an int >= 16 or a pair of them, got "
                    f"{self.image_size!r}."
                )
            return tuple(int(v) for v in self.image_size)
        return (int(self.image_size), int(self.image_size))

    def transform(self, X):
        """Segment the white cell of each crop onto a black, centred canvas.

        Parameters
        ----------
        X : ndarray of shape (n_samples, H, W, 3) or list of (H, W, 3) arrays
            uint8 RGB crops, each around one white cell.

        Returns
        -------
        Xt : ndarray of shape (n_samples, height, width, 3), uint8
            The cells on black, ``(height, width)`` the canvas.

        Raises
        ------
        ValueError
            With ``on_failure="raise"``, crops without exactly one white cell.
        """
        self._validate_params()
        if isinstance(X, np.ndarray) and X.ndim == 3:
            raise ValueError(
                f"X has shape {X.shape}: pass a batch (n, H, W, 3); for one image "
                "use X[None]."
            )
        images = [_check_one(image, i) for i, image in enumerate(X)]
        if not images:
            raise ValueError("X holds no images.")
        canvas = self._canvas(images)
        out = np.empty((len(images), *canvas, 3), dtype=np.uint8)
        status, masks = [], []
        for i, image in enumerate(images):
            mask, state = segment_cell(image, min_area=self.min_area, grow=self.grow)
            out[i] = _place(image, mask, canvas, self.cell_fraction)
            status.append(state)
            masks.append(mask)
        self.status_ = np.asarray(status)
        self.failed_ = np.flatnonzero(self.status_ != "ok")
        self.masks_ = masks
        if len(self.failed_):
            bad = self.failed_[:10].tolist()
            message = (
                f"{len(self.failed_)} of {len(images)} crops (indices {bad}"
                f"{' ...' if len(self.failed_) > 10 else ''}) do not hold exactly one "
                f"white cell (status: {sorted(set(self.status_[self.failed_]))})"
            )
            if self.on_failure == "raise":
                raise ValueError(
                    f"{message}. Crop closer around one white cell, or set "
                    "on_failure='flag' and read status_."
                )
            warnings.warn(f"{message}; see status_.", UserWarning, stacklevel=2)
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = ["uint8"]
        return tags
