"""A limit on the pixels of one image, checked from its header before decoding.

A file whose header claims 60,000 x 60,000 pixels (a "decompression bomb")
would take minutes and gigabytes to decode. Readers call
:func:`check_image_size` right after the header is parsed, before any pixel is
decoded, and refuse larger images with a ``ValueError`` naming the file.

The limit is ``50_000_000`` pixels (a 7,000 x 7,000 image; C-NMC cells are
450 x 450), set for a process by the environment variable
``SKLEARN_LEUKO_MAX_IMAGE_PIXELS`` or for a block of code by
:func:`max_image_pixels`.
"""

import contextlib
import os
import warnings

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "ImageTooLargeError",
    "check_image_size",
    "max_image_pixels",
    "open_image",
]

DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
_ENV = "SKLEARN_LEUKO_MAX_IMAGE_PIXELS"
_override = []


class ImageTooLargeError(ValueError):
    """An image over the pixel limit (a ``ValueError``, told apart from corruption)."""


def current_max_image_pixels():
    """The limit in force: :func:`max_image_pixels`, then the variable, then 50 MP."""
    if _override:
        return _override[-1]
    value = os.environ.get(_ENV)
    if value is None:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        limit = int(value)
    except ValueError:
        raise ValueError(
            f"{_ENV}={value!r} is not a whole number of pixels; set it to e.g. "
            f"{DEFAULT_MAX_IMAGE_PIXELS} or unset it."
        ) from None
    if limit < 1:
        raise ValueError(f"{_ENV}={value!r} must be at least 1.")
    return limit


@contextlib.contextmanager
def max_image_pixels(limit):
    """Use ``limit`` pixels per image as the limit inside a ``with`` block.

    Parameters
    ----------
    limit : int
        Largest number of pixels (width x height) an image may have.

    Examples
    --------
    >>> from sklearn_leuko.utils import max_image_pixels
    >>> with max_image_pixels(200_000_000):
    ...     pass  # read very large scans here
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}.")
    _override.append(limit)
    try:
        yield limit
    finally:
        _override.pop()


def check_image_size(path, width, height):
    """Refuse an image larger than the limit, naming the file and the limit."""
    limit = current_max_image_pixels()
    if int(width) * int(height) > limit:
        raise ImageTooLargeError(
            f"Image file {path} is {width} x {height} pixels "
            f"({int(width) * int(height):,}), over the limit of {limit:,} pixels "
            "per image; it was not decoded. Crop or downscale it, or raise the "
            f"limit with sklearn_leuko.utils.max_image_pixels() or {_ENV}."
        )


def open_image(path):
    """``PIL.Image.open(path)`` (lazy: only the header is read), size checked.

    An image over the limit is refused with :func:`check_image_size`'s
    ``ValueError``; Pillow's own ``DecompressionBombError`` (over
    ``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 MP) is turned into the same
    message and never escapes. Other errors of ``Image.open`` pass through.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # our own limit is lower than the one of Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
    except Image.DecompressionBombError:
        opened = None  # refused below, outside this handler: no chained traceback
    if opened is None:
        width, height = _header_size(path)
        check_image_size(path, width, height)
        raise ImageTooLargeError(
            f"Image file {path} is {width} x {height} pixels, over Pillow's own "
            f"limit of {2 * Image.MAX_IMAGE_PIXELS:,} (2 * PIL.Image."
            "MAX_IMAGE_PIXELS); it was not decoded. Raise PIL.Image."
            "MAX_IMAGE_PIXELS too to read it."
        )
    try:
        check_image_size(path, *opened.size)
    except ValueError:
        opened.close()
        raise
    return opened


def _header_size(path):
    """(width, height) from the header, through Pillow's plugins, no bomb check."""
    from PIL import Image

    Image.init()
    with open(path, "rb") as handle:
        prefix = handle.read(16)
        for name in Image.ID:
            factory, accept = Image.OPEN[name]
            if accept is not None and not accept(prefix):
                continue
            handle.seek(0)
            try:
                return factory(handle, str(path)).size
            except Exception:  # noqa: BLE001 - not this format: try the next
                continue
    return 0, 0  # pragma: no cover - Pillow read this header a moment ago
