"""Bringing images to a geometry: :func:`fit_to_geometry` and :func:`check_geometry`.

Kept apart from :mod:`sklearn_leuko.datasets._geometry` (which finds the
networks of a fitted stage) so that the estimators can resize their input
without importing the stages.
"""

import numbers

import numpy as np

from ._images import _center_fit, _check_center

__all__ = ["check_geometry", "fit_to_geometry"]

_KEYS = ("source_size", "crop_size", "image_size")


def check_geometry(geometry):
    """The geometry as a plain dict of three positive ints, or a ValueError."""
    if not isinstance(geometry, dict) or set(geometry) != set(_KEYS):
        raise ValueError(
            f"geometry must be a dict with the keys {list(_KEYS)}, got {geometry!r}."
        )
    out = {}
    for key in _KEYS:
        value = geometry[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Integral)
            or value < 1
        ):
            raise ValueError(
                f"geometry[{key!r}] must be a positive int, got {value!r}."
            )
        out[key] = int(value)
    if out["crop_size"] > out["source_size"]:
        raise ValueError(
            f"geometry crop_size {out['crop_size']} exceeds source_size "
            f"{out['source_size']}."
        )
    return out


def fit_to_geometry(images, geometry, *, center="centroid"):
    """Bring images of any size to a model's training ``geometry``.

    Each image keeps the training crop's share of its canvas
    (``crop_size / source_size`` of its longer side, cut around the cell's
    centroid; a non-square image is first padded to a square) and is resized
    to ``image_size`` by area averaging. A model trained on
    ``make_cells(image_size=72)`` (the whole cell) so sees a real 450 px C-NMC
    cell whole, scaled to 72 px; a model trained on the paper's 350 px crop of
    450 px images sees the same 350 px crop.

    Parameters
    ----------
    images : sequence of ndarray of shape (H, W, 3), uint8
        Raw images (sizes may differ).
    geometry : dict
        ``{"source_size", "crop_size", "image_size"}``.
    center : {"centroid", "image"}, default="centroid"
        What goes to the middle of the crop.

    Returns
    -------
    images : ndarray of shape (n_images, image_size, image_size, 3), uint8

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_leuko.datasets import fit_to_geometry
    >>> cell = np.zeros((450, 450, 3), np.uint8)
    >>> cell[175:275, 175:275] = (70, 30, 80)
    >>> whole = {"source_size": 450, "crop_size": 450, "image_size": 72}
    >>> fit_to_geometry([cell], whole).shape
    (1, 72, 72, 3)
    """
    from ._load_images import _resize

    geometry = check_geometry(geometry)
    center = _check_center(center)
    share = geometry["crop_size"] / geometry["source_size"]
    size = geometry["image_size"]
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        side = max(image.shape[:2])
        crop = max(1, round(share * side))
        if crop != side or image.shape[0] != image.shape[1]:
            image = _center_fit(image, crop, center if crop != side else "image")
        out[i] = _resize(image, size)
    return out
