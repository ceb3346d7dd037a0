"""The thresholded log-DCT of LeukoNet's Stage-2."""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..nn._functional import LOG_RULES, dct2, energy_threshold, log_dct
from ..nn._preprocess import LogDCTModule
from ..utils import check_channels_first
from ._chunks import (
    channels_first_chunk_to_tensor,
    check_structure,
    iter_checked_chunks,
    transform_in_chunks,
)

__all__ = ["LogDCT"]


class LogDCT(TransformerMixin, BaseEstimator):
    r"""Energy-thresholded, sign-preserving log10 of the 2-D DCT.

    LeukoNet's Stage-2 input (Mourya et al. 2018, section 4): per image and
    channel, the orthonormal 2-D DCT-II of the optical density (equal to
    ``scipy.fft.dctn(x, type=2, norm="ortho")``); the largest-magnitude
    coefficients that together hold ``energy`` of the channel's energy
    :math:`\sum c^2` are kept, all others are set to 1; then
    :math:`\operatorname{sign}(c)\log_{10}|c|`. The paper leaves the rule for
    kept coefficients below 1 open; the exact rules here are:

    - ``log_rule="paper"``: :math:`\operatorname{sign}(c)\,\log_{10}\max(|c|, 1)`
      on kept coefficients, 0 elsewhere: a kept :math:`|c| < 1` becomes 0
      instead of flipping its sign;
    - ``log_rule="log1p"``: :math:`\operatorname{sign}(c)\,\log_{10}(1 + |c|)`
      on kept coefficients, 0 elsewhere (the rule of the same lab's
      SDCT-AuxNet).

    Why ``scale`` matters: OD values are small (about 0-1.5 with log10), so
    95% of the energy of a 350x350 cell sits in a few hundred coefficients
    whose magnitude threshold is below 1, and with ``log_rule="paper"`` only
    about 0.1-0.25% of the outputs are non-zero. ``scale`` multiplies the
    coefficients before thresholding and log (the energy threshold itself is
    scale invariant, the log is not). ``nonzero_fraction_`` reports the share
    actually seen by the network.

    Parameters
    ----------
    energy : float, default=0.95
        Share of each channel's energy kept, in (0, 1].
    log_rule : {"paper", "log1p"}, default="paper"
        See above.
    scale : float, default=1.0
        Multiplier on the DCT coefficients before thresholding and log.
    threshold : {"per_image", "fit"}, default="per_image"
        ``"per_image"``: each image and channel gets its own energy
        threshold. ``"fit"``: one magnitude threshold per channel, the median
        over the training images of their per-image thresholds, learnt in
        :meth:`fit` (``thresholds_``) and applied to every image.
    subsample : int or None, default=256
        Number of training images (drawn at random without replacement)
        used by :meth:`fit` for ``thresholds_`` and ``nonzero_fraction_``;
        ``None`` uses all.
    batch_size : int, default=64
        Images per chunk in :meth:`fit` and :meth:`transform`. Beyond the
        float32 output, memory grows by about 4 float32 copies of one chunk,
        whatever the number of images (about 370 MiB for 64 images of
        3x350x350).
    random_state : int, RandomState instance or None, default=None
        Seeds the subsample.

    Attributes
    ----------
    n_channels_in_ : int
        Number of channels seen in :meth:`fit`.
    thresholds_ : ndarray of shape (n_channels_in,)
        Per-channel magnitude thresholds (on scaled coefficients). Only with
        ``threshold="fit"``.
    nonzero_fraction_ : float
        Share of non-zero output values on the (subsampled) training images.

    See Also
    --------
    StainDeconvolution : the OD input of this transformer.
    sklearn_leuko.nn.log_dct : the torch function doing the math.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_leuko.preprocessing import LogDCT
    >>> od = np.full((1, 1, 8, 8), 2.0, dtype=np.float32)  # constant image
    >>> Xt = LogDCT().fit_transform(od)
    >>> np.flatnonzero(Xt)  # only the DC coefficient: 2 * 8 = 16 -> log10(16)
    array([0])
    >>> round(float(Xt[0, 0, 0, 0]), 4)
    1.2041
    """

    _parameter_constraints: dict = {
        "energy": [Interval(Real, 0, 1, closed="right")],
        "log_rule": [StrOptions(set(LOG_RULES))],
        "scale": [Interval(Real, 0, None, closed="neither")],
        "threshold": [StrOptions({"per_image", "fit"})],
        "subsample": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        energy=0.95,
        log_rule="paper",
        scale=1.0,
        threshold="per_image",
        subsample=256,
        batch_size=64,
        random_state=None,
    ):
        self.energy = energy
        self.log_rule = log_rule
        self.scale = scale
        self.threshold = threshold
        self.subsample = subsample
        self.batch_size = batch_size
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the thresholds (``threshold="fit"``) and measure the sparsity.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_channels, height, width)
            Optical density (e.g. the output of :class:`StainDeconvolution`).
        y : None
            Ignored.

        Returns
        -------
        self : LogDCT
        """
        X = check_structure(X, check_channels_first)
        n = X.shape[0]
        rows = None
        if self.subsample is not None and n > self.subsample:
            rng = check_random_state(self.random_state)
            rows = np.sort(rng.choice(n, size=self.subsample, replace=False))

        def chunks():
            for _, chunk in iter_checked_chunks(
                X, check_channels_first, self.batch_size, rows=rows
            ):
                yield channels_first_chunk_to_tensor(chunk)

        thresholds = None
        with torch.inference_mode():
            if self.threshold == "fit":
                per_image = [
                    energy_threshold(dct2(x) * self.scale, self.energy)
                    for x in chunks()
                ]
                # NumPy's median averages the two middle values (torch's picks one).
                thresholds = np.median(torch.cat(per_image).double().numpy(), axis=0)
            nonzero = total = 0
            for x in chunks():
                out = log_dct(
                    x,
                    energy=self.energy,
                    log_rule=self.log_rule,
                    scale=self.scale,
                    thresholds=thresholds,
                )
                nonzero += int(torch.count_nonzero(out))
                total += out.numel()
        self.n_channels_in_ = int(X.shape[1])
        if thresholds is not None:
            self.thresholds_ = thresholds
        elif hasattr(self, "thresholds_"):
            del self.thresholds_
        self.nonzero_fraction_ = nonzero / total
        return self

    def transform(self, X):
        """Thresholded log-DCT, computed chunk by chunk with the torch module.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_channels_in, height, width)
            Optical density.

        Returns
        -------
        Xt : ndarray of shape (n_samples, n_channels_in, height, width), float32
            Coefficient ``[k, l]`` is the DCT frequency (row ``k``, column ``l``);
            ``[0, 0]`` is the DC term.
        """
        check_is_fitted(self)
        return transform_in_chunks(
            self.to_module(),
            X,
            check_channels_first,
            channels_first_chunk_to_tensor,
            self.batch_size,
            n_channels=self.n_channels_in_,
        )

    def to_module(self):
        """The fitted transformer as a torch module (same numbers as :meth:`transform`).

        Returns
        -------
        module : LogDCTModule
            Maps OD ``(n, C, H, W)`` to the log-DCT ``(n, C, H, W)``.
        """
        check_is_fitted(self)
        thresholds = None
        if self.threshold == "fit":
            if not hasattr(self, "thresholds_"):
                raise ValueError(
                    "threshold='fit' was set after fitting with threshold='per_image'; "
                    "call fit again to learn thresholds_."
                )
            thresholds = self.thresholds_
        return LogDCTModule(
            energy=self.energy,
            log_rule=self.log_rule,
            scale=self.scale,
            thresholds=thresholds,
        )

    def get_feature_names_out(self, input_features=None):
        """Names of the output channels, ``"dct_" + input channel``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Names of the input channels (e.g. a
            :class:`StainDeconvolution`'s); ``None`` gives ``dct_0``...

        Returns
        -------
        names : ndarray of str objects, shape (n_channels_in,)
        """
        check_is_fitted(self)
        if input_features is None:
            input_features = [str(i) for i in range(self.n_channels_in_)]
        elif len(input_features) != self.n_channels_in_:
            raise ValueError(
                f"input_features has {len(input_features)} names but LogDCT was "
                f"fitted on {self.n_channels_in_} channels."
            )
        return np.asarray([f"dct_{name}" for name in input_features], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
