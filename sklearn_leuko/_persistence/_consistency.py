"""Cross-field checks of a fusion's members that the schema's per-class checks
cannot see: the names it keeps and the image size its networks were fitted on."""

__all__ = ["check_fusion_members"]


def _image_size(member):
    """(height, width) the member's first network was fitted on, or None
    (also for a network with a ``geometry_``: it brings images to its size)."""
    steps = [s for _, s in member.steps] if hasattr(member, "steps") else [member]
    for step in steps:
        shape = getattr(step, "input_shape_", None)
        kind = getattr(step, "input_kind_", None)
        if getattr(step, "geometry_", None) is not None:
            return None
        if isinstance(shape, tuple) and len(shape) == 3:
            return shape[:2] if kind == "rgb" else shape[1:]
    return None


def check_fusion_members(est, field, path, fail):
    """Refuse kept names that are not the non-dropped ``estimators`` names in
    order (they name the fused features), and networks fitted on images of
    different sizes (the fusion gives all of them the same ``X``)."""
    names = [
        name
        for name, member in est.estimators
        if not (isinstance(member, str) and member == "drop")
    ]
    if list(est._kept_names) != names:
        raise fail(
            path,
            f"{field}.state._kept_names",
            f"{est._kept_names!r} are not the kept estimators {names!r} in order",
        )
    sizes = [_image_size(member) for member in est.estimators_]
    known = [(i, s) for i, s in enumerate(sizes) if s is not None]
    for i, size in known[1:]:
        if size != known[0][1]:
            raise fail(
                path,
                f"{field}.state.estimators_[{i}] input_shape_",
                f"images of {size[0]}x{size[1]} but estimators_[{known[0][0]}] was "
                f"fitted on {known[0][1][0]}x{known[0][1][1]}; a fusion gives every "
                "network the same images",
            )
