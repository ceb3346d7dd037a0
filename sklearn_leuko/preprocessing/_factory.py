"""Build LeukoNet's preprocessing transformers by name."""

from sklearn.pipeline import Pipeline

from ._dct import LogDCT
from ._stain import StainDeconvolution
from ._union import ChannelUnion

__all__ = ["PREPROCESSING_NAMES", "make_preprocessing"]

#: Names accepted by :func:`make_preprocessing` and by
#: ``LeukoNetClassifier(preprocessing=...)``.
PREPROCESSING_NAMES = ("od", "log_dct", "od+log_dct")


def make_preprocessing(name):
    """Unfitted preprocessing transformer for one of LeukoNet's input kinds.

    Parameters
    ----------
    name : {"od", "log_dct", "od+log_dct"}
        - ``"od"``: :class:`StainDeconvolution` (Giemsa stain concentrations
          in optical density space; Stage-1);
        - ``"log_dct"``: ``Pipeline([("od", StainDeconvolution()),
          ("dct", LogDCT())])`` (Stage-2);
        - ``"od+log_dct"``: :class:`ChannelUnion` of the two, 6 channels
          (Stage-2C's two inputs stacked).

    Returns
    -------
    transformer : estimator
        Takes uint8 RGB images ``(n, H, W, 3)``.

    Examples
    --------
    >>> from sklearn_leuko.preprocessing import make_preprocessing
    >>> make_preprocessing("log_dct")
    Pipeline(steps=[('od', StainDeconvolution()), ('dct', LogDCT())])
    """
    if name == "od":
        return StainDeconvolution()
    if name == "log_dct":
        return Pipeline([("od", StainDeconvolution()), ("dct", LogDCT())])
    if name == "od+log_dct":
        return ChannelUnion(
            [
                ("od", StainDeconvolution()),
                ("dct", Pipeline([("od", StainDeconvolution()), ("dct", LogDCT())])),
            ]
        )
    raise ValueError(
        f"Unknown preprocessing name {name!r}; valid names are "
        f"{', '.join(repr(n) for n in PREPROCESSING_NAMES)}, or pass a transformer."
    )
