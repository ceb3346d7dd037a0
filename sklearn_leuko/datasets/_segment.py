"""``load_images(segment=...)``: a CellSegmenter run on each image as it is read.

Failures are never silent: with ``on_failure="raise"`` the error names the
files, with ``"flag"`` a warning names them and every image gets a status.
"""

import warnings

import numpy as np

__all__ = []

_SHOWN = 5  # files named in a message


def check_segment(segment):
    """The CellSegmenter to run (a validated clone), or None for no segmentation."""
    if segment is None or segment is False:
        return None
    from sklearn.base import clone

    from ..preprocessing import CellSegmenter

    if segment is True:
        return CellSegmenter().fit()
    if isinstance(segment, CellSegmenter):
        return clone(segment).fit()  # fit validates the parameters
    raise TypeError(
        f"segment must be None, True or a CellSegmenter, got "
        f"{type(segment).__name__}; e.g. segment=True, or "
        "segment=CellSegmenter(on_failure='flag')."
    )


class Segmentation:
    """Runs ``segmenter`` image by image and keeps the status of each.

    The segmenter's own ``on_failure`` is applied by :meth:`finish`, once all
    images are read, so that the message names every file that failed.
    """

    def __init__(self, segmenter):
        from sklearn.base import clone

        self.on_failure = segmenter.on_failure
        self._segmenter = clone(segmenter).set_params(on_failure="flag")
        self.status, self._names = [], []

    def __call__(self, image, name):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # reported in finish()
            out = self._segmenter.transform(image[None])[0]
        self.status.append(str(self._segmenter.status_[0]))
        self._names.append(str(name))
        return out

    def finish(
        self, stacklevel=3, used="keep the others with images[segment_status == 'ok']"
    ):
        """``segment_status`` array; raises or warns, naming the failed files.

        ``used`` ends the warning: what becomes of the failed images.
        """
        status = np.asarray(self.status)
        failed = np.flatnonzero(status != "ok")
        if not len(failed):
            return status
        kinds = ", ".join(
            f"{kind}: {int((status == kind).sum())}"
            for kind in sorted(set(status[failed].tolist()))
        )
        files = "; ".join(f"{self._names[i]} ({status[i]})" for i in failed[:_SHOWN])
        more = f" and {len(failed) - _SHOWN} more" if len(failed) > _SHOWN else ""
        message = (
            f"CellSegmenter found no single white cell in {len(failed)} of "
            f"{len(status)} images ({kinds}): {files}{more}"
        )
        if self.on_failure == "raise":
            raise ValueError(
                f"{message}. Crop these closer around one white cell or remove "
                "them, or pass segment=CellSegmenter(on_failure='flag') and keep "
                "the images whose segment_status is 'ok'."
            )
        warnings.warn(
            f"{message}. They are used as segmented (all black for 'no_cell'); {used}.",
            UserWarning,
            stacklevel=stacklevel,
        )
        return status
