"""Build LeukoNet's preprocessing transformers by name."""

from sklearn.pipeline import Pipeline

from ._dct import LogDCT
from ._stain import StainDeconvolution
from ._union import ChannelUnion

__all__ = ["PREPROCESSING_NAMES", "make_preprocessing"]

#: Names accepted by :func:`make_preprocessing` and by
#: ``LeukoNetClassifier(preprocessing=...)``.
PREPROCESSING_NAMES = ("od", "log_dct", "od+log_dct")


def make_preprocessing(name, *, stain_matrix="giemsa", random_state=None):
    """Unfitted preprocessing transformer for one of LeukoNet's input kinds.

    Parameters
    ----------
    name : {"od", "log_dct", "od+log_dct"}
        - ``"od"``: :class:`StainDeconvolution` (stain concentrations in
          optical density space; Stage-1);
        - ``"log_dct"``: ``Pipeline([("od", StainDeconvolution()),
          ("dct", LogDCT())])`` (Stage-2);
        - ``"od+log_dct"``: :class:`ChannelUnion` of the two, 6 channels
          (Stage-2C's two inputs stacked).
    stain_matrix : {"giemsa", "hed", "identity", "macenko"} or array-like, \
            default="giemsa"
        The :class:`StainDeconvolution` matrix (see there).
    random_state : int, RandomState instance or None, default=None
        Seeds the pixel sampling of ``stain_matrix="macenko"``.

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

    def stains():
        return StainDeconvolution(stain_matrix, random_state=random_state)

    if name == "od":
        return stains()
    if name == "log_dct":
        return Pipeline([("od", stains()), ("dct", LogDCT())])
    if name == "od+log_dct":
        return ChannelUnion(
            [("od", stains()), ("dct", Pipeline([("od", stains()), ("dct", LogDCT())]))]
        )
    raise ValueError(
        f"Unknown preprocessing name {name!r}; valid names are "
        f"{', '.join(repr(n) for n in PREPROCESSING_NAMES)}, or pass a transformer."
    )
