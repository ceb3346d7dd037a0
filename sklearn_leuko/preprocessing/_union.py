"""Stack the outputs of several image transformers along the channel axis."""

from numbers import Integral

import numpy as np
from sklearn.base import TransformerMixin, _fit_context, clone
from sklearn.utils import Bunch
from sklearn.utils._user_interface import _print_elapsed_time
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from ..nn._preprocess import ChannelConcat
from ._to_module import to_torch_module

__all__ = ["ChannelUnion"]


def _fit_one(transformer, X, y, message):
    with _print_elapsed_time("ChannelUnion", message):
        return transformer.fit(X, y)


def _fit_transform_one(transformer, X, y, message):
    with _print_elapsed_time("ChannelUnion", message):
        Xt = transformer.fit_transform(X, y)
    return transformer, Xt


def _transform_one(transformer, X):
    return transformer.transform(X)


class ChannelUnion(TransformerMixin, _BaseComposition):
    """Concatenate the outputs of image transformers along the channel axis.

    Like :class:`~sklearn.pipeline.FeatureUnion`, but for image transformers
    that emit ``(n, C_i, H, W)``: the outputs are concatenated along axis 1,
    giving ``(n, sum C_i, H, W)``. Stage-2C of LeukoNet stacks the OD and its
    log-DCT this way (``make_preprocessing("od+log_dct")``). All branches
    must keep the same spatial size.

    Parameters of the branches are reached through nested names
    (``set_params(dct__energy=0.9)``), a whole branch is replaced by its name
    or dropped with ``"drop"``.

    Parameters
    ----------
    transformer_list : list of (str, transformer)
        Named transformers, each taking the same input. A transformer may be
        ``"drop"`` to leave it out.
    n_jobs : int or None, default=None
        Branches fitted and applied in parallel (joblib); ``None`` means 1.
    verbose : bool, default=False
        Print the time taken to fit each branch.

    Attributes
    ----------
    transformers_ : list of (str, transformer)
        Fitted clones of the transformers (``"drop"`` left out).
    named_transformers_ : Bunch
        The same, by name.

    See Also
    --------
    sklearn.pipeline.FeatureUnion : the 2-D (column-wise) counterpart.
    to_torch_module : turn a fitted union into a torch module.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import Pipeline
    >>> from sklearn_leuko.preprocessing import ChannelUnion, LogDCT, StainDeconvolution
    >>> X = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    >>> union = ChannelUnion([
    ...     ("od", StainDeconvolution()),
    ...     ("dct", Pipeline([("od", StainDeconvolution()), ("dct", LogDCT())])),
    ... ])
    >>> union.fit_transform(X).shape
    (3, 6, 16, 16)
    >>> union.set_params(dct__dct__energy=0.9).get_params()["dct__dct__energy"]
    0.9
    """

    _parameter_constraints: dict = {
        "transformer_list": [list],
        "n_jobs": [None, Integral],
        "verbose": ["verbose"],
    }

    def __init__(self, transformer_list, *, n_jobs=None, verbose=False):
        self.transformer_list = transformer_list
        self.n_jobs = n_jobs
        self.verbose = verbose

    def get_params(self, deep=True):
        """Parameters of this estimator and, with ``deep``, of its branches.

        Parameters
        ----------
        deep : bool, default=True
            Include the branches and their parameters (``name__param``).

        Returns
        -------
        params : dict
        """
        return self._get_params("transformer_list", deep=deep)

    def set_params(self, **params):
        """Set parameters, of a branch with ``name__param``, or a branch by ``name``.

        Parameters
        ----------
        **params : dict

        Returns
        -------
        self : ChannelUnion
        """
        self._set_params("transformer_list", **params)
        return self

    @property
    def named_transformers(self):
        """The (unfitted) transformers of ``transformer_list`` by name (Bunch)."""
        return Bunch(**dict(self.transformer_list))

    @property
    def named_transformers_(self):
        check_is_fitted(self)
        return Bunch(**dict(self.transformers_))

    def _validate_transformers(self):
        try:
            names, transformers = zip(*self.transformer_list, strict=True)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                "transformer_list must be a non-empty list of (name, transformer) "
                f"pairs, got {self.transformer_list!r}."
            ) from exc
        self._validate_names(names)
        for name, t in zip(names, transformers, strict=True):
            if isinstance(t, str) and t == "drop":
                continue
            if not (hasattr(t, "fit") and hasattr(t, "transform")):
                raise TypeError(
                    f"Branch {name!r} of ChannelUnion must be a transformer with fit and "
                    f"transform, or 'drop'; got {t!r}."
                )
        active = [
            (n, t)
            for n, t in self.transformer_list
            if not (isinstance(t, str) and t == "drop")
        ]
        if not active:
            raise ValueError(
                "ChannelUnion has no branch left: every transformer is 'drop'."
            )
        return active

    def _message(self, name, idx, total):
        if not self.verbose:
            return None
        return f"(step {idx} of {total}) Processing {name}"

    def _stack(self, names, outputs):
        for name, out in zip(names, outputs, strict=True):
            if not (isinstance(out, np.ndarray) and out.ndim == 4):
                raise ValueError(
                    f"Branch {name!r} of ChannelUnion returned "
                    f"{getattr(out, 'shape', type(out).__name__)}; every branch must "
                    "return a 4-D array (n_samples, channels, height, width)."
                )
        shapes = [out.shape for out in outputs]
        if len({(s[0], *s[2:]) for s in shapes}) > 1:
            listing = ", ".join(f"{n}: {s}" for n, s in zip(names, shapes, strict=True))
            raise ValueError(
                f"ChannelUnion branches disagree on the number of images or the "
                f"spatial size ({listing}); every branch must return (n_samples, C, H, W) "
                "with the same n_samples, H and W: crop or resize inside the branches."
            )
        return np.concatenate(outputs, axis=1).astype(np.float32, copy=False)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit a clone of every branch on X.

        Parameters
        ----------
        X : array-like
            Input of every branch (e.g. uint8 RGB images ``(n, H, W, 3)``).
        y : array-like or None, default=None
            Passed to every branch's ``fit``.

        Returns
        -------
        self : ChannelUnion
        """
        active = self._validate_transformers()
        fitted = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_one)(clone(t), X, y, self._message(name, i, len(active)))
            for i, (name, t) in enumerate(active, 1)
        )
        self.transformers_ = [
            (name, t) for (name, _), t in zip(active, fitted, strict=True)
        ]
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def fit_transform(self, X, y=None):
        """Fit every branch and concatenate their outputs along axis 1.

        Parameters
        ----------
        X : array-like
        y : array-like or None, default=None

        Returns
        -------
        Xt : ndarray of shape (n_samples, sum of channels, height, width), float32
        """
        active = self._validate_transformers()
        results = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_transform_one)(
                clone(t), X, y, self._message(name, i, len(active))
            )
            for i, (name, t) in enumerate(active, 1)
        )
        self.transformers_ = [
            (name, t) for (name, _), (t, _) in zip(active, results, strict=True)
        ]
        names = [name for name, _ in active]
        return self._stack(names, [Xt for _, Xt in results])

    def transform(self, X):
        """Apply every fitted branch and concatenate their outputs along axis 1.

        Parameters
        ----------
        X : array-like

        Returns
        -------
        Xt : ndarray of shape (n_samples, sum of channels, height, width), float32
        """
        check_is_fitted(self)
        outputs = Parallel(n_jobs=self.n_jobs)(
            delayed(_transform_one)(t, X) for _, t in self.transformers_
        )
        return self._stack([name for name, _ in self.transformers_], outputs)

    def to_module(self):
        """The fitted union as a torch module concatenating its branches on dim 1.

        Returns
        -------
        module : ChannelConcat
        """
        check_is_fitted(self)
        return ChannelConcat(
            [(name, to_torch_module(t)) for name, t in self.transformers_]
        )

    def get_feature_names_out(self, input_features=None):
        """Names of the stacked channels, ``"<branch>__<channel>"``.

        Parameters
        ----------
        input_features : None
            Passed to each branch's ``get_feature_names_out``.

        Returns
        -------
        names : ndarray of str objects, shape (n_channels,)
        """
        check_is_fitted(self)
        names = []
        for name, transformer in self.transformers_:
            if not hasattr(transformer, "get_feature_names_out"):
                raise AttributeError(
                    f"branch {name!r} ({type(transformer).__name__}) has no "
                    "get_feature_names_out."
                )
            names.extend(
                f"{name}__{channel}"
                for channel in transformer.get_feature_names_out(input_features)
            )
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
