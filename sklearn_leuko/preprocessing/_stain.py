"""Optical density and stain deconvolution (the SD-Layer's fixed counterpart)."""

import math
from numbers import Integral, Real

import numpy as np
import torch
from scipy import ndimage
from skimage.color import rgb_from_bex, rgb_from_hed
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..datasets._cnmc_colour import CNMC_STAIN_MATRIX
from ..nn._functional import rgb_to_od
from ..nn._preprocess import StainDeconvolutionModule
from ..nn._sd_layer import check_stain_matrix
from ..utils import check_rgb_images
from ._chunks import (
    check_structure,
    iter_checked_chunks,
    rgb_chunk_to_tensor,
    transform_in_chunks,
)

__all__ = ["STAIN_MATRICES", "StainDeconvolution"]


def _frozen(rows):
    matrix = np.array(rows, dtype=float)
    matrix.setflags(write=False)
    return matrix


#: Named stain matrices; rows are the OD vectors of the stains (R, G, B), the
#: convention of ``skimage.color.rgb_from_*`` (taken from there: one source).
STAIN_MATRICES = {
    # Giemsa: methylene blue and eosin (ImageJ Colour Deconvolution plugin,
    # ``skimage.color.rgb_from_bex``); its third row is their cross product.
    "giemsa": _frozen(rgb_from_bex),
    # Hematoxylin, eosin, DAB (Ruifrok and Johnston 2001, ``rgb_from_hed``).
    "hed": _frozen(rgb_from_hed),
    # No deconvolution: the output is the optical density itself.
    "identity": _frozen(np.eye(3)),
    # C-NMC 2019: Macenko fit on the 36 real calibration cells (see
    # ``sklearn_leuko/datasets/_cnmc_colour.py``); OD energy off its stain
    # plane 0.07% (calibration) and 0.05% (evaluation cells), Giemsa's 2.5%.
    "cnmc": _frozen(CNMC_STAIN_MATRIX),
}


_CHANNEL_NAMES = {
    "giemsa": ("methylene_blue", "eosin", "residual"),
    "hed": ("hematoxylin", "eosin", "dab"),
    "identity": ("od_red", "od_green", "od_blue"),
    "cnmc": ("cnmc_blue", "cnmc_magenta", "residual"),
}


def _check_stain_matrix(stain_matrix):
    """A copy of an explicit 3x3 stain matrix, checked by the SD layer's rules."""
    if isinstance(stain_matrix, str):
        raise ValueError(
            f"stain_matrix={stain_matrix!r} is unknown; use one of "
            f"{sorted([*STAIN_MATRICES, 'macenko'])} or a 3x3 array of numbers."
        )
    return check_stain_matrix(stain_matrix).copy()


_MIN_STAIN_ANGLE = 3.0


def _macenko(pixels, *, i0, offset, log_base, zero_as_background, alpha, beta):
    """Macenko et al. (2009) stain vectors from sampled foreground pixels."""
    rgb = torch.from_numpy(np.ascontiguousarray(pixels.T, dtype=np.float64))
    od = (
        rgb_to_od(
            rgb[None, :, :, None],
            i0=i0,
            offset=offset,
            log_base=log_base,
            zero_as_background=zero_as_background,
        )[0, :, :, 0]
        .numpy()
        .T
    )
    # beta is in natural-log OD units whatever log_base is (the usual 0.15).
    od = od[np.linalg.norm(od, axis=1) * math.log(log_base) > beta]
    if od.shape[0] < 50:
        raise ValueError(
            f"stain_matrix='macenko' found only {od.shape[0]} stained pixels (OD norm > "
            f"macenko_beta={beta}) among the sampled foreground pixels (away from the "
            "black background by macenko_erosion pixels); use more or less faint "
            "training images, a larger n_pixels, a smaller macenko_erosion, or "
            "stain_matrix='giemsa'."
        )
    # Uncentred second moment: its leading eigenvectors span the stain plane.
    _, vectors = np.linalg.eigh(od.T @ od / od.shape[0])
    v1, v2 = vectors[:, 2], vectors[:, 1]
    if v1.sum() < 0:
        v1 = -v1
    angles = np.arctan2(od @ v2, od @ v1)
    low, high = np.percentile(angles, [alpha, 100 - alpha])
    stains = []
    for angle in (low, high):
        vector = math.cos(angle) * v1 + math.sin(angle) * v2
        vector /= np.linalg.norm(vector)
        stains.append(vector if vector.sum() >= 0 else -vector)
    # The stain absorbing red most (methylene blue, like hematoxylin) first.
    first, second = sorted(stains, key=lambda v: -v[0])
    third = np.cross(first, second)
    norm = np.linalg.norm(third)
    # Below a few degrees the two "stains" are one colour plus pixel noise.
    if norm < math.sin(math.radians(_MIN_STAIN_ANGLE)):
        raise ValueError(
            f"stain_matrix='macenko' estimated two nearly identical stain vectors "
            f"({math.degrees(math.asin(min(norm, 1.0))):.2g} degrees apart, under "
            f"{_MIN_STAIN_ANGLE}): the training pixels hold a single colour; use "
            "stain_matrix='giemsa' or train on images with both stains."
        )
    return np.stack([first, second, third / norm])


# 8-connected in the image plane, never across images of a batch.
_PLANE_SQUARE = np.zeros((3, 3, 3), dtype=bool)
_PLANE_SQUARE[1] = True


def _foreground_samples(X, flat, erosion, batch_size):
    """RGB of the sampled pixels (flat indices, sorted) that lie in the eroded cell.

    The cell is every pixel with no channel equal to 0 (the black
    segmentation background), eroded per image by ``erosion`` pixels.
    """
    n, height, width = X.shape[:3]
    image, row, col = np.unravel_index(flat, (n, height, width))
    if erosion == 0:
        pixels = np.asarray(X[image, row, col])
        return pixels[(pixels >= 0.5).all(axis=1)]
    kept = []
    bounds = np.searchsorted(image, np.arange(0, n + batch_size, batch_size))
    for k, (first, last) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if first == last:
            continue
        start = k * batch_size
        chunk = np.asarray(X[start : start + batch_size])
        # border_value=1: the edge of the image is not the edge of a cell
        cell = ndimage.binary_erosion(
            (chunk >= 0.5).all(axis=-1),
            structure=_PLANE_SQUARE,
            iterations=erosion,
            border_value=1,
        )
        i, r, c = image[first:last] - start, row[first:last], col[first:last]
        inside = cell[i, r, c]
        kept.append(chunk[i[inside], r[inside], c[inside]])
    return np.concatenate(kept)


class StainDeconvolution(TransformerMixin, BaseEstimator):
    r"""Stain concentrations of RGB images in optical density space.

    Each image is converted to optical density (Beer-Lambert law) and every
    pixel's OD row vector :math:`o` is deconvolved into stain concentrations
    :math:`c = o\,S^{-1}`, where the rows of the stain matrix :math:`S` are
    the OD vectors of the stains (Ruifrok and Johnston 2001). This is the
    SD-Layer of Duggal et al. (2017), used by LeukoNet as its first layer
    (Mourya et al. 2018, section 4), with a fixed instead of a learnt
    matrix and without the ``tanh``.

    The OD follows the SD-Layer rule by default (``OD = -log10(I / 255)``,
    values equal to 0 mapped to OD 0 so the black background of segmented
    cells means "no stain"); see :func:`sklearn_leuko.nn.rgb_to_od`.

    Compared with ``skimage.color.separate_stains(rgb, inv(S))``, which uses
    the normalised OD ``ln(max(I/255, 1e-6)) / ln(1e-6)`` and clips at 0, the
    output is larger by ``ln(1e6) / ln(log_base)`` (6 for base 10) away from
    black pixels and may be negative.

    Parameters
    ----------
    stain_matrix : {"giemsa", "cnmc", "hed", "identity", "macenko"} or array-like of shape (3, 3), default="giemsa"
        Rows are the stain OD vectors (R, G, B), as in
        ``skimage.color.rgb_from_*``; used as given (not normalised).
        ``"giemsa"``: methylene blue, eosin and their cross product
        (``skimage.color.rgb_from_bex``), the textbook Jenner-Giemsa basis.
        ``"cnmc"``: the two stains of real (stain-normalised) C-NMC 2019
        cells, a Macenko fit on the 36 calibration cells of
        ``../shared/data/real/cnmc2019`` (rows ``(0.534, 0.768, 0.354)`` and
        ``(0.410, 0.786, 0.464)``, 9.6 degrees apart, and their cross
        product); on real C-NMC cells it leaves 0.07% of the OD energy in the
        residual channel (0.05% on 33 held-out cells) against 2.5% (2.3%)
        for ``"giemsa"``. ``"hed"``: hematoxylin, eosin, DAB. ``"identity"``:
        no deconvolution, the output is the OD. ``"macenko"``: estimated in
        :meth:`fit` from the training images (Macenko et al. 2009): pixels
        with a 0 in any channel (the black segmentation background) and the
        cell's rim (``macenko_erosion`` pixels) are excluded, ``n_pixels``
        pixels are sampled before that exclusion, OD vectors with a norm
        below ``macenko_beta`` dropped, the extreme angles (percentiles
        ``macenko_alpha`` and ``100 - macenko_alpha``) in the plane of the two
        leading eigenvectors of the (uncentred) OD second moment give the two
        stains (the one absorbing red most first), the third row is their
        normalised cross product. Two stains less than 3 degrees apart (a
        single colour) raise a ValueError.
    i0 : float, default=255.0
        Incident light intensity of the OD conversion.
    offset : float, default=0.0
        Added to the intensities before the logarithm (1 in torchstain).
    log_base : float, default=10.0
        Base of the OD logarithm (10 in the SD-Layer, ``math.e`` elsewhere).
    zero_as_background : bool, default=True
        Values equal to 0 get OD 0 (SD-Layer rule); otherwise the intensity
        is floored at 1 so the OD stays finite.
    n_pixels : int, default=100_000
        Number of pixels sampled (uniformly, with replacement, over all
        training images) to estimate the Macenko matrix; bounds the memory of
        :meth:`fit`. Unused by the other matrices.
    macenko_alpha : float, default=1.0
        Percentile of the extreme angles (1 in torchstain, 0.1 in SD-Layer).
    macenko_beta : float, default=0.15
        Minimum OD norm (natural-log units) of the pixels used by Macenko.
    macenko_erosion : int, default=2
        Width in pixels of the rim of each cell left out of the Macenko fit:
        the cell (pixels with no channel equal to 0) is eroded by this many
        pixels (8-connected, per image; the image's edge does not count as
        background). Rim pixels mix the cell with the black background
        (anti-aliasing, segmentation halos); darkening adds the same OD to
        every channel, a grey component that pulls one estimated vector
        towards grey. On synthetic cells with a 1-pixel soft edge the worst
        stain-vector error is about 26 degrees without erosion and under 2
        degrees with 1 or 2 pixels (``tests/test_preprocessing.py``). 0
        keeps every non-black pixel (the behaviour before this parameter).
    batch_size : int, default=64
        Images per chunk in :meth:`transform`. Beyond the float32 output,
        memory grows by about 3 float32 copies of one chunk, whatever the
        number of images (about 290 MiB for 64 images of 350x350).
    random_state : int, RandomState instance or None, default=None
        Seeds the pixel sampling of ``stain_matrix="macenko"``.

    Attributes
    ----------
    stain_matrix_ : ndarray of shape (3, 3)
        The stain matrix used (rows = stain OD vectors).

    See Also
    --------
    LogDCT : the thresholded log-DCT of the concentrations (Stage-2).
    sklearn_leuko.nn.SDLayer : the learnable version, inside the network.

    References
    ----------
    .. [1] R. Duggal et al., "SD-Layer: Stain Deconvolutional Layer for CNNs
       in Medical Microscopic Imaging", MICCAI 2017.
    .. [2] A. C. Ruifrok, D. A. Johnston, "Quantification of histochemical
       staining by color deconvolution", 2001.
    .. [3] M. Macenko et al., "A method for normalizing histology slides for
       quantitative analysis", ISBI 2009.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_leuko.preprocessing import StainDeconvolution
    >>> X = np.full((2, 8, 8, 3), 255, dtype=np.uint8)
    >>> X[:, 2:6, 2:6] = (90, 60, 160)
    >>> Xt = StainDeconvolution().fit_transform(X)
    >>> Xt.shape, Xt.dtype
    ((2, 3, 8, 8), dtype('float32'))
    >>> float(abs(Xt[0, :, 0, 0]).max())  # white is OD 0, no stain
    0.0
    """

    _parameter_constraints: dict = {
        "stain_matrix": [StrOptions({*STAIN_MATRICES, "macenko"}), "array-like"],
        "i0": [Interval(Real, 0, None, closed="neither")],
        "offset": [Interval(Real, 0, None, closed="left")],
        "log_base": [Interval(Real, 0, None, closed="neither")],
        "zero_as_background": ["boolean"],
        "n_pixels": [Interval(Integral, 1, None, closed="left")],
        "macenko_alpha": [Interval(Real, 0, 50, closed="left")],
        "macenko_beta": [Interval(Real, 0, None, closed="left")],
        "macenko_erosion": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        stain_matrix="giemsa",
        *,
        i0=255.0,
        offset=0.0,
        log_base=10.0,
        zero_as_background=True,
        n_pixels=100_000,
        macenko_alpha=1.0,
        macenko_beta=0.15,
        macenko_erosion=2,
        batch_size=64,
        random_state=None,
    ):
        self.stain_matrix = stain_matrix
        self.i0 = i0
        self.offset = offset
        self.log_base = log_base
        self.zero_as_background = zero_as_background
        self.n_pixels = n_pixels
        self.macenko_alpha = macenko_alpha
        self.macenko_beta = macenko_beta
        self.macenko_erosion = macenko_erosion
        self.batch_size = batch_size
        self.random_state = random_state

    def _od_params(self):
        if self.log_base == 1 or not math.isfinite(self.log_base):
            raise ValueError(
                f"log_base must be a positive number other than 1, got {self.log_base!r}; "
                "use 10 (SD-Layer) or math.e (natural OD)."
            )
        return {
            "i0": self.i0,
            "offset": self.offset,
            "log_base": self.log_base,
            "zero_as_background": self.zero_as_background,
        }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Set (or, for ``"macenko"``, estimate) the stain matrix.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width, 3)
            uint8 RGB images (float in [0, 255] accepted).
        y : None
            Ignored.

        Returns
        -------
        self : StainDeconvolution
        """
        od_params = self._od_params()
        if not isinstance(self.stain_matrix, str):
            explicit = _check_stain_matrix(self.stain_matrix)
        X = check_structure(X, check_rgb_images)
        for _ in iter_checked_chunks(X, check_rgb_images, self.batch_size):
            pass
        if isinstance(self.stain_matrix, str) and self.stain_matrix == "macenko":
            rng = check_random_state(self.random_state)
            n, height, width = X.shape[:3]
            flat = np.sort(rng.randint(0, n * height * width, size=self.n_pixels))
            pixels = _foreground_samples(X, flat, self.macenko_erosion, self.batch_size)
            self.stain_matrix_ = _macenko(
                pixels, alpha=self.macenko_alpha, beta=self.macenko_beta, **od_params
            )
        elif isinstance(self.stain_matrix, str):
            self.stain_matrix_ = np.array(STAIN_MATRICES[self.stain_matrix])
        else:
            self.stain_matrix_ = explicit
        return self

    def transform(self, X):
        """Stain concentrations, computed chunk by chunk with the torch module.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width, 3)
            uint8 RGB images (float in [0, 255] accepted).

        Returns
        -------
        Xt : ndarray of shape (n_samples, 3, height, width), float32
            Concentrations of the stains, in the order of the rows of
            ``stain_matrix_``.
        """
        check_is_fitted(self)
        return transform_in_chunks(
            self.to_module(), X, check_rgb_images, rgb_chunk_to_tensor, self.batch_size
        )

    def to_module(self):
        """The fitted transformer as a torch module (same numbers as :meth:`transform`).

        Returns
        -------
        module : StainDeconvolutionModule
            Maps float RGB ``(n, 3, H, W)`` in [0, 255] to ``(n, 3, H, W)``.
        """
        check_is_fitted(self)
        return StainDeconvolutionModule(self.stain_matrix_, **self._od_params())

    def get_feature_names_out(self, input_features=None):
        """Names of the output channels: ``Xt[:, i]`` is channel ``names[i]``.

        The stains of a named matrix (``"giemsa"``: methylene blue, eosin,
        residual; ``"cnmc"``: the bluer and the more magenta C-NMC stain,
        residual; ``"hed"``: hematoxylin, eosin, DAB; ``"identity"``: the OD
        of red, green, blue), ``stain0``.. for Macenko or explicit matrices.

        Parameters
        ----------
        input_features : None
            Ignored; the input is an RGB image.

        Returns
        -------
        names : ndarray of str objects, shape (3,)
        """
        check_is_fitted(self)
        names = _CHANNEL_NAMES.get(
            self.stain_matrix if isinstance(self.stain_matrix, str) else None,
            ("stain0", "stain1", "stain2"),
        )
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
