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

from ._fit_geometry import check_geometry, fit_to_geometry

__all__ = ["check_geometry", "fit_to_geometry", "model_geometry", "record_geometry"]


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
