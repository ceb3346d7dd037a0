"""Input validation shared by every public entry point.

Images enter the library as uint8 RGB arrays of shape ``(n, H, W, 3)``
("channels last"); transformers emit float32 arrays of shape ``(n, C, H, W)``
("channels first"). Every check raises ``ValueError`` or ``TypeError`` with a
message that names the problem and the fix.
"""

import numbers
import warnings

import numpy as np

__all__ = [
    "check_channels_first",
    "check_groups",
    "check_net_input",
    "check_rgb_images",
    "check_targets",
]


def _as_array(X, name):
    if isinstance(X, np.ndarray):
        return X
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError(f"{name} is empty: at least one image is required.")
        shapes = {np.shape(x) for x in X}
        if len(shapes) > 1:
            raise ValueError(
                f"{name} holds images of different sizes {sorted(shapes)[:4]}; "
                "crop or pad them to one size first (C-NMC cells are centred on a "
                "black canvas, e.g. 350x350)."
            )
        return np.asarray(X)
    if hasattr(X, "__array__"):
        return np.asarray(X)
    raise TypeError(f"{name} must be a numpy array of images, got {type(X).__name__}.")


def _check_finite_and_range(X, name, low=0.0, high=255.0):
    if X.dtype.kind == "f":
        if not np.isfinite(X).all():
            raise ValueError(
                f"{name} contains NaN or infinite values; remove or repair those "
                "images before fitting."
            )
        if low is not None and X.size and (X.min() < low or X.max() > high):
            raise ValueError(
                f"{name} has float values in [{X.min():.3g}, {X.max():.3g}] but RGB "
                f"images must lie in [{low:g}, {high:g}]; pass uint8 images or "
                "rescale (e.g. X * 255 for images in [0, 1])."
            )


def check_rgb_images(X, *, name="X", allow_float=True):
    """Validate a batch of RGB images in the channels-last layout.

    Parameters
    ----------
    X : array-like of shape (n_samples, height, width, 3)
        uint8 images (float images with values in [0, 255] are accepted when
        ``allow_float`` is true).
    name : str, default="X"
        Name used in error messages.
    allow_float : bool, default=True
        Accept float input in [0, 255].

    Returns
    -------
    X : ndarray of shape (n_samples, height, width, 3)
        The input, not copied when it already is a numpy array.
    """
    X = _as_array(X, name)
    if X.dtype == object:
        raise TypeError(
            f"{name} has dtype object (images of mixed sizes or types?); pass one "
            "numeric array of shape (n_samples, height, width, 3)."
        )
    if X.ndim == 3 and X.shape[-1] == 3:
        raise ValueError(
            f"{name} has shape {X.shape}: that looks like a single image; pass a "
            f"batch of shape (n_samples, height, width, 3), e.g. {name}[None]."
        )
    if X.ndim != 4:
        raise ValueError(
            f"{name} must be a 4-D array of shape (n_samples, height, width, 3), "
            f"got {X.ndim}-D array of shape {X.shape}."
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 images); at least one is required.")
    if X.shape[-1] != 3:
        if X.shape[1] == 3:
            hint = (
                "it looks channels-first; use np.moveaxis(X, 1, -1) to get (n, H, W, 3)"
            )
        elif X.shape[-1] == 4:
            hint = "drop the alpha channel with X[..., :3]"
        elif X.shape[-1] == 1:
            hint = "repeat the grey channel with np.repeat(X, 3, axis=-1)"
        else:
            hint = "pass RGB images"
        raise ValueError(
            f"{name} must have 3 colour channels in the last axis (RGB), got shape "
            f"{X.shape}; {hint}."
        )
    if 0 in X.shape[1:3]:
        raise ValueError(
            f"{name} has shape {X.shape}: images of {X.shape[1]}x{X.shape[2]} pixels "
            "hold nothing; pass images at least 1 pixel high and wide."
        )
    if X.dtype == np.uint8:
        return X
    if X.dtype.kind in "iu":
        if X.size and (X.min() < 0 or X.max() > 255):
            raise ValueError(
                f"{name} has integer values outside [0, 255]; pass uint8 RGB images."
            )
        return X.astype(np.uint8)
    if X.dtype.kind == "f" and allow_float:
        _check_finite_and_range(X, name)
        if X.size and 0 < X.max() <= 1:
            warnings.warn(
                f"{name} is a float array with all values in [0, 1]; RGB images are "
                "expected in [0, 255], so these are nearly black. If the images were "
                f"scaled to [0, 1] (e.g. by skimage's img_as_float), pass "
                f"({name} * 255).astype(np.uint8).",
                UserWarning,
                stacklevel=3,
            )
        return X
    raise TypeError(
        f"{name} has dtype {X.dtype}; pass uint8 RGB images of shape "
        "(n_samples, height, width, 3)."
    )


def check_channels_first(X, *, name="X", n_channels=None):
    """Validate a float batch of shape ``(n_samples, channels, height, width)``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_channels, height, width)
    name : str, default="X"
    n_channels : int or tuple of int, default=None
        Allowed channel counts; ``None`` allows any.

    Returns
    -------
    X : ndarray of float32
    """
    X = _as_array(X, name)
    if X.ndim != 4:
        raise ValueError(
            f"{name} must be a 4-D array of shape (n_samples, channels, height, "
            f"width), got shape {X.shape}."
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 images); at least one is required.")
    if X.dtype.kind not in "fiu":
        raise TypeError(f"{name} has dtype {X.dtype}; pass a float32 array.")
    if 0 in X.shape[1:]:
        raise ValueError(
            f"{name} has shape {X.shape}: a channels-first array needs at least one "
            "channel and images at least 1 pixel high and wide."
        )
    # A 3-pixel-wide image with many "channels" is an RGB batch the wrong way round.
    if X.shape[-1] == 3 and X.shape[1] > 6 and X.shape[2] > 6:
        raise ValueError(
            f"{name} has shape {X.shape}, which looks like channels-last RGB images "
            "(n, H, W, 3), but channels-first arrays (n, C, H, W) are expected here. "
            "Raw images go in as uint8 (n, H, W, 3) (a classifier with preprocessing, "
            "or StainDeconvolution first: LogDCT takes its optical density); to "
            f"reorder the axes use np.moveaxis({name}, -1, 1)."
        )
    if n_channels is not None:
        allowed = (n_channels,) if isinstance(n_channels, int) else tuple(n_channels)
        if X.shape[1] not in allowed:
            raise ValueError(
                f"{name} has {X.shape[1]} channels (axis 1, shape {X.shape}); "
                f"expected {' or '.join(map(str, allowed))}."
            )
    X = np.asarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        raise ValueError(
            f"{name} contains NaN or infinite values; check the preprocessing that "
            "produced it."
        )
    return X


def check_net_input(X, *, name="X"):
    """Validate the input of a network estimator.

    Two forms are accepted: raw RGB images ``(n, H, W, 3)`` in uint8 (the
    memory-friendly form: preprocessing then runs per batch on the device) or
    preprocessed float32 channels-first arrays ``(n, C, H, W)`` as emitted by
    the transformers of :mod:`sklearn_leuko.preprocessing`.

    Returns
    -------
    X : ndarray
    kind : {"rgb", "channels_first"}
    """
    arr = _as_array(X, name)
    if arr.ndim == 4 and arr.dtype.kind in "iu":
        return check_rgb_images(arr, name=name), "rgb"
    if arr.ndim == 4 and arr.dtype.kind == "f":
        return check_channels_first(arr, name=name), "channels_first"
    if arr.ndim == 4:
        raise TypeError(
            f"{name} has dtype {arr.dtype}; pass uint8 RGB images (n, H, W, 3) or "
            "float32 preprocessed arrays (n, C, H, W)."
        )
    raise ValueError(
        f"{name} must be 4-D: uint8 RGB images (n, H, W, 3) or float32 "
        f"preprocessed arrays (n, C, H, W); got shape {arr.shape}."
    )


def check_targets(y, n_samples, *, name="y", min_classes=2):
    """Validate class labels and their length.

    Returns
    -------
    y : ndarray of shape (n_samples,)
    """
    if y is None:
        raise ValueError(f"{name} is required: pass one label per image.")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one label per image), got shape {y.shape}."
        )
    if y.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {y.shape[0]} labels but X has {n_samples} images; they must "
            "match one to one."
        )
    if n_samples == 0:
        raise ValueError(
            f"{name} and X are empty (0 images); at least one is required."
        )
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN labels.")
    classes = np.unique(y)
    if len(classes) < min_classes:
        raise ValueError(
            f"{name} has only {len(classes)} class ({classes.tolist()}); a classifier "
            "needs both 'all' and 'hem' cells. Check the labels or the subset you passed."
        )
    return y


def check_groups(groups, n_samples, *, name="groups"):
    """Validate subject IDs (one per image). ``None`` passes through."""
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one subject ID per image), got shape {groups.shape}."
        )
    if groups.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {groups.shape[0]} subject IDs but X has {n_samples} images; "
            "pass one subject ID per image."
        )
    if groups.dtype.kind == "f" and not np.isfinite(groups).all():
        raise ValueError(f"{name} contains NaN subject IDs.")
    return groups


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)
