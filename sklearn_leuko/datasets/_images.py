"""Reading cell images: bit depth, alpha, grey-scale and centring rules.

Used by :func:`~sklearn_leuko.datasets.load_cnmc` and
:func:`~sklearn_leuko.datasets.read_images` (and so by ``sklearn-leuko
predict``): 16-bit images are scaled to 8 bits, float images in [0, 1] by
255, alpha is composited onto the black background, grey-scale images are
refused; cropping or padding to a size puts the cell's centroid at the
centre by default.
"""

import numbers
from pathlib import Path

import numpy as np

from ..utils._image_limits import ImageTooLargeError, check_image_size, open_image

__all__ = ["read_images"]

_CENTERS = ("centroid", "image")


def _check_image_size(image_size):
    if image_size is None:
        return None
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, numbers.Integral)
        or image_size < 1
    ):
        raise ValueError(
            f"image_size must be None or a positive integer (e.g. 350), got "
            f"{image_size!r}."
        )
    return int(image_size)


def _check_center(center):
    if not isinstance(center, str) or center not in _CENTERS:
        raise ValueError(
            f"center must be 'centroid' (the cell's centroid goes to the middle of "
            f"the canvas) or 'image' (plain centre crop/pad), got {center!r}."
        )
    return center


# ------------------------------------------------------------- reading images
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L"})


def _refuse_grey(path, what):
    raise ValueError(
        f"Image file {path} is a grey-scale image ({what}); LeukoNet reads the "
        "colours of the stains (C-NMC cells are 24-bit RGB BMPs), and a grey "
        "image copied into three channels would be deconvolved into meaningless "
        "stain concentrations. Pass the RGB original."
    )


def _decode_with_pillow(path):
    """Pixel array of ``path`` (modes mapped to RGB/RGBA) or None if not an image."""
    from PIL import UnidentifiedImageError

    try:
        opened = open_image(path)  # header only; over the pixel limit: ValueError
    except UnidentifiedImageError:
        return None
    except ImageTooLargeError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ValueError(
            f"Cannot read image file {path}: {exc}. The file is corrupt or not a "
            "BMP image; replace or remove it."
        ) from exc
    try:
        with opened as img:
            img.load()
            mode = img.mode
            if mode in ("P", "PA"):
                has_alpha = mode == "PA" or "transparency" in img.info
                img = img.convert("RGBA" if has_alpha else "RGB")
            elif mode in ("RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
                img = img.convert("RGB")
            array = np.asarray(img)
    except UnidentifiedImageError:
        return None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ValueError(
            f"Cannot read image file {path}: {exc}. The file is corrupt or not a "
            "BMP image; replace or remove it."
        ) from exc
    if mode in _GREY_MODES or mode.startswith("I;16"):
        _refuse_grey(path, f"Pillow mode {mode!r}")
    if mode == "RGBa":  # premultiplied alpha: already composited on black
        return array[..., :3]
    if mode not in ("P", "PA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "RGB", "RGBA"):
        raise ValueError(
            f"Image file {path} has the unsupported Pillow mode {mode!r}; pass 8-bit "
            "RGB images."
        )
    return array


def _decode_tiff(path):
    # Pillow reads no RGB float TIFF; tifffile (a scikit-image dependency) does.
    try:
        import tifffile
    except ImportError:  # pragma: no cover - tifffile comes with scikit-image
        return None
    try:
        with tifffile.TiffFile(path) as tif:
            shape = tif.series[0].shape if tif.series else ()
    except Exception as exc:  # tifffile raises many types on bad files
        raise ValueError(
            f"Cannot read image file {path}: {exc}. The file is corrupt; replace or "
            "remove it."
        ) from exc
    spatial = [n for n in shape if n not in (3, 4)] or list(shape)
    if len(spatial) >= 2:
        check_image_size(path, spatial[-1], spatial[-2])
    try:
        array = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types on bad files
        raise ValueError(
            f"Cannot read image file {path}: {exc}. The file is corrupt; replace or "
            "remove it."
        ) from exc
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # planar configuration
    if array.ndim > 3:
        raise ValueError(
            f"Image file {path} holds several images (array of shape {array.shape}); "
            "pass one RGB image per file."
        )
    return array


def _to_rgb_uint8(array, path):
    """RGB uint8 of a decoded image: bit depth scaled, alpha composited on black.

    uint8 is kept; uint16 is scaled by 255 / 65535; floats must lie in [0, 1]
    and are scaled by 255 (both rounded). An alpha channel is composited
    onto black, C-NMC's background: ``rgb * alpha``.
    """
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 2)):
        _refuse_grey(path, f"array of shape {array.shape}")
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(
            f"Image file {path} decodes to an array of shape {array.shape}; "
            "expected an RGB image (height, width, 3)."
        )
    if array.dtype == np.uint8 and array.shape[-1] == 3:
        return np.ascontiguousarray(array)
    if array.dtype == np.uint8:
        unit = array.astype(np.float64) / 255
    elif array.dtype == np.uint16:
        unit = array.astype(np.float64) / 65535
    elif array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ValueError(
                f"Image file {path} holds NaN or infinite values; repair or remove it."
            )
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(
                f"Image file {path} is a float image with values in "
                f"[{array.min():.3g}, {array.max():.3g}]; float images must lie in "
                "[0, 1] (they are scaled by 255). Save it as 8-bit RGB instead."
            )
        unit = array.astype(np.float64)
    else:
        raise ValueError(
            f"Image file {path} has {array.dtype} pixels; supported are 8-bit and "
            "16-bit unsigned integers and floats in [0, 1]. Save it as 8-bit RGB."
        )
    rgb = unit[..., :3]
    if unit.shape[-1] == 4:
        rgb = rgb * unit[..., 3:]
    return np.rint(rgb * 255).astype(np.uint8)


def _read_one(path):
    path = Path(path)
    array = _decode_with_pillow(path)
    if array is None and path.suffix.lower() in (".tif", ".tiff"):
        array = _decode_tiff(path)
    if array is None:
        raise ValueError(
            f"Cannot read image file {path}: not an image format Pillow knows. The "
            "file is corrupt or not a BMP image; replace or remove it."
        )
    return _to_rgb_uint8(array, path)


def _shift_of(image, size, center):
    """Offsets ``(dy, dx)`` with ``out[y, x] = image[y - dy, x - dx]``."""
    h, w = image.shape[:2]
    if center == "centroid":
        ys, xs = np.nonzero(image.any(axis=-1))
        if ys.size:
            # The centroid of the cell (non-black pixels) to the canvas centre.
            return (
                int(np.floor((size - 1) / 2 - ys.mean() + 0.5)),
                int(np.floor((size - 1) / 2 - xs.mean() + 0.5)),
            )
    # image centre (also for an all-black image, which has no centroid)
    dy = (size - h) // 2 if size >= h else -((h - size) // 2)
    dx = (size - w) // 2 if size >= w else -((w - size) // 2)
    return dy, dx


def _center_fit(image, size, center="image"):
    """Crop or zero-pad ``image`` to ``size`` x ``size`` around its centre."""
    out = np.zeros((size, size, 3), dtype=np.uint8)
    h, w = image.shape[:2]
    dy, dx = _shift_of(image, size, center)
    y0, y1 = max(dy, 0), min(size, h + dy)
    x0, x1 = max(dx, 0), min(size, w + dx)
    if y0 < y1 and x0 < x1:
        out[y0:y1, x0:x1] = image[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    return out


def read_images(paths, image_size=None, *, center="centroid"):
    """Read RGB images from files into one uint8 array.

    Every image is converted to 8-bit RGB exactly or refused with a
    ``ValueError`` that names the file and the reason:

    - 8-bit RGB (24-bit BMP, PNG, TIFF, ...) and palette images are read as
      they are; 16-bit RGB is scaled by 255 / 65535;
    - float RGB (TIFF) must lie in [0, 1] and is scaled by 255;
    - an alpha channel is composited onto black, the C-NMC background
      (``rgb * alpha``): transparent pixels become background;
    - grey-scale images (8-bit, 16-bit or float) are refused: the network
      reads the colours of the stains, which a grey image does not carry.

    Parameters
    ----------
    paths : sequence of str or path-like
        Image files (BMP in C-NMC; anything Pillow reads works, float TIFF
        through tifffile).
    image_size : int, default=None
        Crop (or zero-pad, black) every image to ``image_size`` x
        ``image_size``, e.g. 350 for the 450 x 450 C-NMC images. When None,
        all images must have the same size.
    center : {"centroid", "image"}, default="centroid"
        What goes to the middle of the canvas when ``image_size`` is given.
        ``"centroid"``: the centroid of the cell, i.e. of the non-black pixels
        (C-NMC places each cell with its centroid at the centre, so a cell
        off the image centre is moved back rather than cut); an all-black
        image falls back to ``"image"``. ``"image"``: the centre of the image
        (a plain centre crop or pad). Unused when ``image_size`` is None.

    Returns
    -------
    images : ndarray of shape (n_images, height, width, 3), uint8

    Raises
    ------
    ValueError
        If a file cannot be read or converted (the message names it) or,
        without ``image_size``, if two images differ in size.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_leuko.datasets import load_cnmc, make_cells, read_images
    >>> from sklearn_leuko.datasets import write_cnmc
    >>> cells = make_cells(n_subjects=6, cells_per_subject=2, image_size=32,
    ...                    random_state=0)
    >>> with tempfile.TemporaryDirectory() as root:
    ...     _ = write_cnmc(cells, root, n_folds=2, random_state=0)
    ...     data = load_cnmc(root, lazy=True)
    ...     read_images(data.paths[:3], image_size=40).shape
    (3, 40, 40, 3)
    """
    image_size = _check_image_size(image_size)
    center = _check_center(center)
    if isinstance(paths, (str, Path)):
        raise TypeError(
            f"paths must be a sequence of image files, got the single path "
            f"{str(paths)!r}; pass [path]."
        )
    paths = [Path(p) for p in (paths.tolist() if hasattr(paths, "tolist") else paths)]
    if not paths:
        raise ValueError("paths is empty: pass at least one image file.")
    images = None
    first = None
    for i, path in enumerate(paths):
        image = _read_one(path)
        if image_size is not None:
            image = _center_fit(image, image_size, center)
        if images is None:
            images = np.empty((len(paths), *image.shape), dtype=np.uint8)
            first = path
        elif image.shape != images.shape[1:]:
            raise ValueError(
                f"Image {path} has size {image.shape[1]}x{image.shape[0]} but {first} "
                f"has {images.shape[2]}x{images.shape[1]}; pass image_size (e.g. "
                "image_size=350) to crop or pad them to one size."
            )
        images[i] = image
    return images
