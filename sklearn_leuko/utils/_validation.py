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
    """``X`` as one C-contiguous ndarray, copied only when it is not one already.

    Fortran order, negative strides, strided views, memory maps, read-only
    arrays and non-contiguous tensors of the same values then give the same
    results bit for bit: nothing downstream sees the memory layout.
    """
    return np.ascontiguousarray(_to_array(X, name))


def _to_array(X, name):
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
    # One C-contiguous layout before anything touches the values: Fortran
    # order, negative strides or views of the same values give the same model.
    if arr.ndim == 4 and arr.dtype.kind in "iu":
        return np.ascontiguousarray(check_rgb_images(arr, name=name)), "rgb"
    if arr.ndim == 4 and arr.dtype.kind == "f":
        if arr.shape[-1] == 3 and arr.shape[1] > 6 and arr.shape[2] > 6:
            raise ValueError(
                f"{name} has dtype {arr.dtype} and shape {arr.shape}, i.e. float RGB "
                "images. Accepted are uint8 RGB images (n, H, W, 3) with values in "
                "[0, 255], or float32 preprocessed arrays (n, C, H, W) from "
                "sklearn_leuko.preprocessing. Convert float images in [0, 1] with "
                f"np.rint({name} * 255).astype(np.uint8), and float images in "
                f"[0, 255] with np.rint({name}).astype(np.uint8)."
            )
        return np.ascontiguousarray(check_channels_first(arr, name=name)), (
            "channels_first"
        )
    if arr.ndim == 4:
        raise TypeError(
            f"{name} has dtype {arr.dtype}; pass uint8 RGB images (n, H, W, 3) or "
            "float32 preprocessed arrays (n, C, H, W)."
        )
    raise ValueError(
        f"{name} must be 4-D: uint8 RGB images (n, H, W, 3) or float32 "
        f"preprocessed arrays (n, C, H, W); got shape {arr.shape}."
    )


# C-NMC labels: "all" (leukemic blast, cancer) and "hem" (normal cell); the
# test-set CSV codes them as integers, all = 1, hem = 0.
_CNMC_NAMES = ("all", "hem")
#: The cancer class (leukemic blast) and the normal class (hematogone).
CANCER_LABEL = "all"
NORMAL_LABEL = "hem"
#: The C-NMC integer coding of the labels (test-set CSV, ``labels`` column).
LABEL_CODES = {1: CANCER_LABEL, 0: NORMAL_LABEL}
_CODE_TO_NAME = LABEL_CODES


def _is_missing(value):
    return value is None or (isinstance(value, float) and value != value)


def _label_kind(value, name):
    """``"code"`` (1/0 as number or digit string) or ``"name"`` of one label."""
    if isinstance(value, (bytes, np.bytes_)):
        raise TypeError(
            f"{name} holds bytes ({value!r}); decode them to str first (e.g. "
            f"np.char.decode({name})), labels are 'all'/'hem' or 1/0."
        )
    if isinstance(value, (bool, np.bool_, numbers.Integral)):
        return "code"
    if isinstance(value, numbers.Real):
        return "code" if float(value).is_integer() else "other"
    if isinstance(value, str):
        return "code" if value.strip() in ("0", "1") else "name"
    raise TypeError(
        f"{name} holds a label of type {type(value).__name__} ({value!r}); pass "
        "labels 'all'/'hem' or integers 1/0."
    )


def _cnmc_label_array(arr, name):
    """Map a 1-D label array to ``"all"``/``"hem"`` (object array) or raise.

    One coding per array: names (``"all"``/``"hem"``, any case, surrounding
    spaces ignored) or the C-NMC integer codes (1 = ``"all"``, 0 = ``"hem"``,
    as numbers, booleans or the strings ``"1"``/``"0"``). Mixing the two,
    bytes, None/NaN and any other value are refused.
    """
    if arr.dtype.kind == "S":
        raise TypeError(
            f"{name} holds bytes (dtype {arr.dtype}); decode them to str first (e.g. "
            f"np.char.decode({name})), labels are 'all'/'hem' or 1/0."
        )
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN labels; every cell needs a label.")
    if arr.dtype.kind in "iu" or (
        arr.dtype.kind == "f" and np.all(arr == np.round(arr))
    ):
        codes = arr.astype(np.int64)
        bad = np.setdiff1d(np.unique(codes), list(_CODE_TO_NAME))
        if bad.size:
            raise ValueError(
                f"{name} has integer labels {bad[:5].tolist()}; integer labels must "
                "follow the C-NMC coding 1 = 'all' (cancer), 0 = 'hem' (normal)."
            )
        return np.where(codes == 1, CANCER_LABEL, NORMAL_LABEL).astype(object)
    if arr.dtype.kind not in "UO":
        raise TypeError(
            f"{name} has dtype {arr.dtype}; pass labels 'all'/'hem' or integers 1/0."
        )
    values = arr.tolist()
    missing = [i for i, v in enumerate(values) if _is_missing(v)]
    if missing:
        raise ValueError(
            f"{name} contains {len(missing)} missing label(s) (None or NaN), first at "
            f"position {missing[0]}; every cell needs a label."
        )
    kinds = {_label_kind(v, name) for v in values}
    if "other" in kinds:
        raise ValueError(
            f"{name} has non-integer numeric labels; expected 'all'/'hem' or the "
            "C-NMC integer coding 1 = 'all', 0 = 'hem'."
        )
    if kinds == {"code", "name"}:
        first_code = next(v for v in values if _label_kind(v, name) == "code")
        first_name = next(v for v in values if _label_kind(v, name) == "name")
        raise ValueError(
            f"{name} mixes the integer coding and label names ({first_code!r} and "
            f"{first_name!r}); use one coding for the whole array: 'all'/'hem' or "
            "1/0 (1 = 'all')."
        )
    if kinds == {"code"}:
        return _cnmc_label_array(np.array([int(float(v)) for v in values]), name)
    labels = np.array([v.strip().lower() for v in values], dtype=object)
    bad = sorted(set(labels.tolist()) - set(_CNMC_NAMES))
    if bad:
        raise ValueError(
            f"{name} has labels {bad[:5]}; expected 'all' (cancer) and 'hem' "
            "(normal), or the C-NMC integer coding 1 = 'all', 0 = 'hem'."
        )
    return labels


def check_targets(y, n_samples, *, name="y", min_classes=2):
    """Validate class labels and their length.

    The labels are C-NMC classes in one coding: the names ``"all"`` (cancer)
    and ``"hem"`` (normal) or the integers ``1``/``0`` of the C-NMC test CSV
    (also as booleans, integral floats or the strings ``"1"``/``"0"``), read
    as :func:`sklearn_leuko.metrics.as_cnmc_labels` reads them. Valid labels
    are returned as given (a classifier's ``classes_`` keep the caller's
    spelling), but a class spelled two ways in one array (``"ALL"`` and
    ``"all"``, ``"hem "`` and ``"hem"``) would become two classes, so it is
    refused, as are codings mixed in one array (``1`` and ``"all"``), bytes,
    None/NaN and any other value.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, 1)
        Labels.
    n_samples : int
        Number of images the labels belong to.
    name : str, default="y"
        Name used in error messages.
    min_classes : int, default=2
        Minimum number of distinct classes.

    Returns
    -------
    y : ndarray of shape (n_samples,)
        The labels, unchanged apart from a ravel of a column vector.

    Raises
    ------
    ValueError
        Wrong length or shape, missing or unknown labels, a class spelled two
        ways, mixed codings, too few classes.
    TypeError
        Bytes or labels of a type that is not a string or a number.
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
    canonical = _cnmc_label_array(y, name)
    spellings = {}
    for raw, label in zip(y.tolist(), canonical.tolist(), strict=True):
        spellings.setdefault(label, set()).add(raw)
    for label, raw in sorted(spellings.items()):
        if len(raw) > 1:
            shown = sorted(raw, key=repr)
            raise ValueError(
                f"{name} writes the class '{label}' in {len(raw)} ways ({shown[:4]}); a "
                "classifier would learn them as different classes. Use one spelling, "
                f"e.g. sklearn_leuko.metrics.as_cnmc_labels({name})."
            )
    classes = np.unique(y)
    if len(classes) < min_classes:
        raise ValueError(
            f"{name} has only {len(classes)} class ({classes.tolist()}); a classifier "
            "needs both 'all' and 'hem' cells. Check the labels or the subset you passed."
        )
    return y


def _group_kind(value, name):
    if _is_missing(value):
        raise ValueError(
            f"{name} contains a missing subject ID ({value!r}); every image needs "
            "the ID of the subject it comes from."
        )
    if isinstance(value, (bytes, np.bytes_)):
        raise TypeError(
            f"{name} holds bytes ({value!r}); decode the subject IDs to str first "
            f"(e.g. np.char.decode({name}))."
        )
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"{name} holds booleans ({value!r}); pass subject IDs (e.g. '7', 'H3'), "
            "not a mask."
        )
    if isinstance(value, str):
        return "str"
    if isinstance(value, numbers.Integral):
        return "int"
    if isinstance(value, numbers.Real):
        if not np.isfinite(value):
            raise ValueError(
                f"{name} contains NaN subject IDs (or infinite ones); every image needs the ID of its subject."
            )
        return "float"
    raise TypeError(
        f"{name} holds a subject ID of type {type(value).__name__} ({value!r}); "
        "pass strings or integers."
    )


def _check_id_strings(ids, name):
    """Refuse empty IDs, surrounding spaces and IDs that differ only in case."""
    seen = {}
    for sid in ids:
        if not sid.strip():
            raise ValueError(
                f"{name} contains an empty subject ID ({sid!r}); every image needs "
                "the ID of the subject it comes from."
            )
        if sid != sid.strip():
            raise ValueError(
                f"{name} contains the subject ID {sid!r} with surrounding whitespace; "
                f"it would be a different subject from {sid.strip()!r}. Strip the IDs "
                f"(e.g. np.char.strip({name}))."
            )
        other = seen.setdefault(sid.casefold(), sid)
        if other != sid:
            raise ValueError(
                f"{name} contains the subject IDs {other!r} and {sid!r}, which differ "
                "only in case: they would be two subjects. Write each subject one way."
            )


def check_groups(groups, n_samples, *, name="groups"):
    """Validate subject IDs (one per image). ``None`` passes through.

    Subject IDs are strings (``"7"``, ``"H3"``) or numbers of one kind.
    IDs that could silently split one subject in two or merge two subjects
    are refused: strings mixed with numbers (``7`` and ``"7"`` are equal as
    text but not as values, and the library compares them both ways),
    integers mixed with floats (``7`` and ``7.0``), empty strings, IDs with
    surrounding whitespace (``"7 "``), IDs that differ only in case
    (``"h3"`` and ``"H3"``), None/NaN/infinite values, bytes and booleans.
    Valid IDs are returned unchanged.

    Parameters
    ----------
    groups : array-like of shape (n_samples,) or None
        Subject IDs.
    n_samples : int
        Number of images.
    name : str, default="groups"
        Name used in error messages.

    Returns
    -------
    groups : ndarray of shape (n_samples,) or None

    Raises
    ------
    ValueError
        Wrong shape or length, missing, empty or ambiguous IDs, mixed kinds.
    TypeError
        Bytes, booleans or values that are neither strings nor numbers.
    """
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
    kind = groups.dtype.kind
    if kind in "iu":
        return groups
    if kind == "f":
        if not np.isfinite(groups).all():
            raise ValueError(
                f"{name} contains NaN subject IDs (or infinite ones); every image needs the ID of its subject."
            )
        return groups
    if kind == "U":
        _check_id_strings(np.unique(groups).tolist(), name)
        return groups
    if kind == "S":
        raise TypeError(
            f"{name} holds bytes (dtype {groups.dtype}); decode the subject IDs to str "
            f"first (e.g. np.char.decode({name}))."
        )
    if kind == "b":
        raise TypeError(
            f"{name} is a boolean array; pass subject IDs (e.g. '7', 'H3'), not a mask."
        )
    if kind != "O":
        raise TypeError(
            f"{name} has dtype {groups.dtype}; pass subject IDs as strings or integers."
        )
    values = groups.tolist()
    kinds = {}
    for value in values:
        kinds.setdefault(_group_kind(value, name), value)
    if len(kinds) > 1:
        shown = " and ".join(repr(v) for v in kinds.values())
        raise ValueError(
            f"{name} mixes subject IDs of different kinds ({shown}): IDs such as 7 "
            "and '7' (or 7 and 7.0) are one subject as text and two as values, so "
            "they would merge in some steps and not in others. Convert them to one "
            f"type first (e.g. np.asarray({name}).astype(str) if 7 and '7' are the "
            "same subject)."
        )
    if "str" in kinds:
        _check_id_strings(sorted(set(values)), name)
    return groups


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)
