"""The scale contract: the geometry a model was trained on, and bringing images to it.

A geometry is ``{"source_size": int, "crop_size": int, "image_size": int}``:
the side of the source canvas (450 for C-NMC), the side of the square cut from
it at native scale (350 in the paper, 450 for the whole cell), and the side the
cut is resized to (what the network sees). ``make_cells(image_size=s)`` gives
``{"source_size": 450, "crop_size": 450, "image_size": s}``: a whole 450 px cell
scaled down. A fitted stage keeps its training geometry in the ``geometry_``
attribute of its networks (saved in ``.safetensors`` and ``.joblib`` files);
:func:`fit_to_geometry` brings new images of any size to it.
"""

import numbers

import numpy as np

from ._images import _center_fit, _check_center

__all__ = ["fit_to_geometry", "model_geometry", "record_geometry"]

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


def record_geometry(model, geometry):
    """Store the training data's ``geometry`` in every network of a fitted stage.

    Parameters
    ----------
    model : estimator
        A fitted stage (LeukoNetClassifier, Pipeline ending in one, or a fusion).
    geometry : dict
        ``{"source_size", "crop_size", "image_size"}`` of the training images
        (the ``geometry`` of :func:`make_cells` or :func:`load_images`).

    Returns
    -------
    model : estimator
        The same model; ``net.geometry_`` is set on each of its networks.
    """
    from .._stages import stage_networks

    geometry = check_geometry(geometry)
    nets = stage_networks(model)
    for _name, net in nets:
        side = net.input_shape_[0]
        if side != geometry["image_size"]:
            raise ValueError(
                f"geometry image_size {geometry['image_size']} disagrees with the "
                f"network's input of {side} px."
            )
        net.geometry_ = dict(geometry)
    return model


def model_geometry(model):
    """The training geometry of a fitted stage, or None (models saved before it)."""
    from .._stages import stage_networks

    for _name, net in stage_networks(model):
        geometry = getattr(net, "geometry_", None)
        if geometry is not None:
            return check_geometry(geometry)
    return None


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
