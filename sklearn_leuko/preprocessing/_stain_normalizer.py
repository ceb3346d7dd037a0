"""StainNormalizer: map any microscope's colours to a reference appearance."""

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..nn._stain_normalize import StainNormalizerModule
from ..utils import check_rgb_images
from ._chunks import check_structure, iter_checked_chunks, rgb_chunk_to_tensor

__all__ = ["StainNormalizer"]

METHODS = ("reinhard", "macenko", "vahadane")


class StainNormalizer(TransformerMixin, BaseEstimator):
    """Give RGB images the stain appearance of reference cells.

    :meth:`fit` learns the appearance of the reference images (for example
    real C-NMC 2019 cells); :meth:`transform` maps any RGB images to it, so
    that cells from another microscope, stain batch or laboratory look like
    the cells a model was trained on. Three classical methods:

    - ``"reinhard"`` (Reinhard et al. 2001): match the per-channel mean and
      standard deviation in CIE L*a*b*.
    - ``"macenko"`` (Macenko et al. 2009): estimate each image's two stain
      vectors from the extreme angles of its optical density in the plane
      of the two leading eigenvectors, then rebuild the image with the
      reference's stain vectors and 99th-percentile concentrations.
    - ``"vahadane"`` (Vahadane et al. 2016): the stain vectors from a sparse
      non-negative factorisation of the optical density (started from the
      Macenko vectors), then the same rebuilding as Macenko.

    **Background-aware.** Statistics are taken only over the stained cell:
    pixels whose channels are all at most ``black_level`` (the black
    background of segmented cells, e.g. C-NMC) and pixels brighter than OD
    ``beta`` in every channel (the light background of a smear) are left out,
    as is an ``erosion``-pixel rim next to black background. Those background
    pixels are returned as they came. Stain-vector estimation also drops
    pixels with OD below ``beta`` in any channel (torchstain's rule).

    **Never NaN, never negative OD.** Intensities are clamped to
    ``[0, i0 - offset]`` before the logarithm, concentrations are clamped at
    0, and the output is clipped to [0, 255].

    **Too little stain.** An image with fewer than ``min_pixels`` usable
    pixels (an empty or overexposed crop) cannot be normalised: with
    ``on_empty="raise"`` :meth:`transform` raises a ValueError naming the
    images; with ``"passthrough"`` they are returned unchanged with a
    warning, and their indices are kept in ``too_faint_``.

    Unlike the other transformers of this package, the output is uint8 RGB
    ``(n, H, W, 3)``, the input form of
    :class:`~sklearn_leuko.LeukoNetClassifier`: a normaliser is placed in a
    :class:`~sklearn.pipeline.Pipeline` before a stage's network, which then
    augments and preprocesses the normalised images as usual.

    The work is done by a batched torch module
    (:class:`~sklearn_leuko.nn._stain_normalize.StainNormalizerModule`,
    :meth:`to_module`), chunk by chunk on the CPU in :meth:`transform`, or on
    any device by the module itself.

    Parameters
    ----------
    method : {"reinhard", "macenko", "vahadane"}, default="macenko"
        The normalisation method.
    i0 : float, default=255.0
        Incident light intensity of the OD conversion (torchstain: 240).
    offset : float, default=0.0
        Added to intensities before the logarithm (torchstain: 1).
    beta : float, default=0.15
        OD threshold (natural-log units) of bright background and of the
        pixels used for stain vectors.
    black_level : float, default=0.0
        Pixels with every channel at most this are black background (use
        about 10 for JPEG images of segmented cells).
    erosion : int, default=1
        Rim next to black background left out of the statistics, in pixels.
    alpha : float, default=1.0
        Percentile of the extreme angles in Macenko (and Vahadane's start).
    regularizer : float, default=0.02
        L1 weight on the concentrations in Vahadane's sparse factorisation
        (StainTools' name; the lambda of the paper).
    n_iter : int, default=30
        Multiplicative-update iterations of Vahadane's factorisation.
    min_pixels : int, default=100
        Fewest usable pixels an image (and the reference) must have.
    on_empty : {"raise", "passthrough"}, default="raise"
        What :meth:`transform` does with an image with too little stain.
    n_pixels : int, default=200_000
        Reference pixels sampled in :meth:`fit` (bounds its memory).
    batch_size : int, default=16
        Images per chunk in :meth:`transform`.
    random_state : int, RandomState instance or None, default=None
        Seeds the sampling of reference pixels.

    Attributes
    ----------
    target_ : ndarray of shape (2, 3) or (3, 3)
        ``"reinhard"``: L*a*b* mean (row 0) and standard deviation (row 1)
        of the reference cells. Otherwise rows 0-1: the reference stain OD
        vectors; row 2: their 99th-percentile concentrations (and a 0).
    too_faint_ : ndarray of int
        Indices of the images the last :meth:`transform` passed through
        unchanged for lack of stain (``on_empty="passthrough"``).

    References
    ----------
    .. [1] E. Reinhard et al., "Color transfer between images", 2001.
    .. [2] M. Macenko et al., "A method for normalizing histology slides for
       quantitative analysis", ISBI 2009.
    .. [3] A. Vahadane et al., "Structure-preserving color normalization and
       sparse stain separation for histological images", IEEE TMI 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_leuko.preprocessing import StainNormalizer
    >>> reference = np.zeros((1, 32, 32, 3), dtype=np.uint8)  # black background
    >>> reference[:, 8:24, 8:24] = (70, 30, 80)               # a purple cell
    >>> X = np.full((1, 32, 32, 3), 230, dtype=np.uint8)      # light background
    >>> X[:, 8:24, 8:24] = (120, 90, 150)
    >>> Xt = StainNormalizer("reinhard").fit(reference).transform(X)
    >>> Xt.dtype, Xt.shape
    (dtype('uint8'), (1, 32, 32, 3))
    >>> Xt[0, 16, 16].tolist(), Xt[0, 0, 0].tolist()  # cell recoloured, background kept
    ([70, 30, 80], [230, 230, 230])
    """

    _parameter_constraints: dict = {
        "method": [StrOptions(set(METHODS))],
        "i0": [Interval(Real, 1, None, closed="left")],
        "offset": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "black_level": [Interval(Real, 0, 255, closed="left")],
        "erosion": [Interval(Integral, 0, None, closed="left")],
        "alpha": [Interval(Real, 0, 50, closed="left")],
        "regularizer": [Interval(Real, 0, None, closed="left")],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "min_pixels": [Interval(Integral, 1, None, closed="left")],
        "on_empty": [StrOptions({"raise", "passthrough"})],
        "n_pixels": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        method="macenko",
        *,
        i0=255.0,
        offset=0.0,
        beta=0.15,
        black_level=0.0,
        erosion=1,
        alpha=1.0,
        regularizer=0.02,
        n_iter=30,
        min_pixels=100,
        on_empty="raise",
        n_pixels=200_000,
        batch_size=16,
        random_state=None,
    ):
        self.method = method
        self.i0 = i0
        self.offset = offset
        self.beta = beta
        self.black_level = black_level
        self.erosion = erosion
        self.alpha = alpha
        self.regularizer = regularizer
        self.n_iter = n_iter
        self.min_pixels = min_pixels
        self.on_empty = on_empty
        self.n_pixels = n_pixels
        self.batch_size = batch_size
        self.random_state = random_state

    def _module(self, target):
        return StainNormalizerModule(
            self.method,
            target,
            i0=self.i0,
            offset=self.offset,
            beta=self.beta,
            black_level=self.black_level,
            erosion=self.erosion,
            alpha=self.alpha,
            lambda_=self.regularizer,
            n_iter=self.n_iter,
            min_pixels=self.min_pixels,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the appearance of the reference images.

        The statistics are pooled over the cell pixels of all reference
        images (``n_pixels`` of them, sampled), as if they were one image.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width, 3)
            uint8 RGB reference images (e.g. C-NMC-like cells).
        y : None
            Ignored.

        Returns
        -------
        self : StainNormalizer
        """
        if self.offset >= self.i0:
            raise ValueError(
                f"offset={self.offset} must be below i0={self.i0}: the OD is "
                "-ln((I + offset) / i0)."
            )
        X = check_structure(X, check_rgb_images)
        module = self._module(torch.zeros(3, 3))
        kept = []
        with torch.inference_mode():
            for _, chunk in iter_checked_chunks(X, check_rgb_images, self.batch_size):
                rgb = rgb_chunk_to_tensor(chunk)
                _, _, used, _ = module.statistics(rgb)
                pixels = rgb.permute(0, 2, 3, 1)[used]
                if module.method != "reinhard":
                    od = -torch.log(
                        (pixels + self.offset).clamp(1.0, self.i0) / self.i0
                    )
                    pixels = pixels[od.amin(dim=1) >= self.beta]
                kept.append(pixels)
        pixels = torch.cat(kept)
        if pixels.shape[0] < self.min_pixels:
            raise ValueError(
                f"the reference images hold {pixels.shape[0]} stained cell pixels, "
                f"fewer than min_pixels={self.min_pixels} (pixels darker than OD "
                f"beta={self.beta} in some channel, not black background): pass "
                "reference images of stained cells, or lower beta or min_pixels."
            )
        rng = check_random_state(self.random_state)
        if pixels.shape[0] > self.n_pixels:
            rows = np.sort(rng.choice(pixels.shape[0], self.n_pixels, replace=False))
            pixels = pixels[torch.from_numpy(rows)]
        # The pooled pixels as one image, one row of pixels: the same
        # statistics as for every image in transform.
        strip = pixels.T[None, :, None, :].contiguous()
        with torch.inference_mode():
            stats = module.statistics(strip)[0][0]
        target = stats.numpy().astype(np.float64)
        if not np.all(np.isfinite(target)):
            raise ValueError(
                "the reference statistics are not finite; pass reference images "
                "of stained cells."
            )
        self.target_ = target if self.method != "reinhard" else target[:2]
        return self

    def to_module(self):
        """The fitted normaliser as a torch module (same numbers as :meth:`transform`).

        Returns
        -------
        module : StainNormalizerModule
            Maps float RGB ``(n, 3, H, W)`` in [0, 255] to float RGB of the
            same shape, whole numbers in [0, 255].
        """
        check_is_fitted(self)
        return self._module(self.target_)

    def transform(self, X):
        """Map the images to the reference appearance.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width, 3)
            uint8 RGB images (float in [0, 255] accepted).

        Returns
        -------
        Xt : ndarray of shape (n_samples, height, width, 3), uint8
            The normalised images; background pixels unchanged.

        Raises
        ------
        ValueError
            With ``on_empty="raise"``, images with too little stain.
        """
        check_is_fitted(self)
        X = check_structure(X, check_rgb_images)
        module = self.to_module().cpu().eval()
        out = np.empty((X.shape[0], *X.shape[1:3], 3), dtype=np.uint8)
        faint = []
        with torch.inference_mode():
            for start, chunk in iter_checked_chunks(
                X, check_rgb_images, self.batch_size
            ):
                result = module(rgb_chunk_to_tensor(chunk))
                faint.extend(
                    (start + np.flatnonzero(module.last_too_faint_.numpy())).tolist()
                )
                out[start : start + len(chunk)] = (
                    result.permute(0, 2, 3, 1).numpy().astype(np.uint8)
                )
        self.too_faint_ = np.asarray(faint, dtype=int)
        if faint:
            message = (
                f"{len(faint)} of {X.shape[0]} images (indices {faint[:10]}"
                f"{' ...' if len(faint) > 10 else ''}) have fewer than "
                f"min_pixels={self.min_pixels} stained cell pixels (an empty, black "
                f"or overexposed crop): they cannot be stain-normalised"
            )
            if self.on_empty == "raise":
                raise ValueError(
                    f"{message}. Remove them, or set on_empty='passthrough' to return "
                    "them unchanged."
                )
            warnings.warn(f"{message}; returned unchanged.", UserWarning, stacklevel=2)
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.transformer_tags.preserves_dtype = ["uint8"]
        return tags
