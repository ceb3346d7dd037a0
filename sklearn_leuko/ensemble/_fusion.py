"""Feature fusion: LeukoNet's Stage-3 and Stage-3C hybrids.

This module is long because :class:`FeatureFusionClassifier` documents and
validates its parameters and fitting modes (prefit networks, inner
cross-fitting, TTA, the out-of-domain summary) in one class, as
scikit-learn's ``StackingClassifier`` does in ``sklearn/ensemble/_stacking.py``.
"""

import warnings
from numbers import Integral

import numpy as np
from sklearn.base import (
    ClassifierMixin,
    TransformerMixin,
    _fit_context,
    clone,
    is_classifier,
)
from sklearn.ensemble._base import _BaseHeterogeneousEnsemble
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, check_cv
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch, _safe_indexing, get_tags
from sklearn.utils._param_validation import HasMethods, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _num_samples, check_is_fitted

from .._classifier import CellLevelSplitWarning
from .._classifier._tta_outputs import tta_override
from .._classifier._versioning import VersionedPickleMixin
from ..utils import check_groups, check_targets
from ..utils._groups import fit_with_groups

__all__ = ["FeatureFusionClassifier", "default_final_estimator"]


def default_final_estimator():
    """The fusion's default "fully connected layer": a logistic regression.

    A single linear layer with softmax trained by cross-entropy, as in the
    paper, with scikit-learn's default L2 penalty (``C=1``). Standardising the
    bilinear features first was measured and did not help (synthetic cells,
    ``benchmarks/accuracy/stage_accuracy.py``: Stage-3C 79.4% accuracy without,
    77.3% with a ``StandardScaler``, 3 subject-level folds, differences within
    the fold spread), so the default stays the plain linear layer.

    Returns
    -------
    estimator : LogisticRegression
        ``LogisticRegression(max_iter=1000)``.
    """
    return LogisticRegression(max_iter=1000)


def _final_estimator_has(attr):
    def check(self):
        if hasattr(self, "final_estimator_"):
            return hasattr(self.final_estimator_, attr)
        final = self.final_estimator
        if final is None:
            final = default_final_estimator()
        return hasattr(final, attr)

    return check


def _fit_one(estimator, X, y, groups, rows):
    if rows is not None:
        X = _safe_indexing(X, rows)
        y = y[rows]
        groups = None if groups is None else groups[rows]
    return fit_with_groups(estimator, X, y, groups)


def _fit_transform_fold(estimator, X, y, groups, train, test):
    fitted = _fit_one(estimator, X, y, groups, train)
    return test, _as_2d(fitted.transform(_safe_indexing(X, test)))


def _as_2d(features):
    features = np.asarray(features)
    if features.ndim == 1:
        features = features.reshape(-1, 1)
    elif features.ndim > 2:
        features = features.reshape(len(features), -1)
    return features


class FeatureFusionClassifier(
    VersionedPickleMixin, ClassifierMixin, TransformerMixin, _BaseHeterogeneousEnsemble
):
    """Fuse the features of several networks into one linear classifier.

    The paper's hybrid stages (Mourya et al. 2018, section 4, "Stage-3" and
    "Stage-3C"): features are extracted from each trained network (the
    bilinear-pooled penultimate features, i.e. their ``transform``),
    concatenated, and a single fully connected layer is trained on them. The
    fully connected layer is a linear classifier here (by default a
    logistic regression); any scikit-learn classifier can take its place.

    Like :class:`~sklearn.ensemble.StackingClassifier`, but the base
    estimators' *features* are stacked, not their predictions.

    Parameters
    ----------
    estimators : list of (str, estimator)
        Base estimators, each with a ``transform`` method (e.g. the
        ``Pipeline([("net", LeukoNetClassifier(...))])`` of
        :func:`~sklearn_leuko.make_stage`). Names must be unique and must not
        contain ``"__"``. An estimator can be set to ``"drop"`` with
        ``set_params``.
    final_estimator : classifier, default=None
        Trained on the concatenated features. ``None`` uses
        :func:`default_final_estimator`.
    cv : "in_sample", "prefit", int, cross-validation splitter or iterable, \
            default="in_sample"
        Which features train the final estimator:

        - ``"in_sample"`` (the paper's protocol): the base estimators are
          fitted on all training data and the final estimator is trained on
          their features of that same data.
        - ``"prefit"``: the base estimators are already fitted (e.g. the
          Stage-1 and Stage-2C networks of earlier runs) and are fused as
          they are, not refitted; ``estimators_`` are the very objects given.
          :func:`~sklearn.base.clone` (hence ``GridSearchCV``) un-fits them;
          wrap each in :class:`sklearn.frozen.FrozenEstimator` to keep them.
        - int, splitter or iterable of ``(train, test)`` pairs: out-of-fold
          features. For each fold the base estimators are cloned, fitted on
          the training part and transform the held-out part, so no feature
          comes from a network that saw its cell; then the base estimators
          are refitted on all data for ``estimators_``. An int ``k`` means
          :class:`~sklearn.model_selection.StratifiedGroupKFold` (``k``) over
          ``groups`` (subject-level folds), or, without groups,
          :class:`~sklearn.model_selection.StratifiedKFold` with a
          :class:`~sklearn_leuko._classifier.CellLevelSplitWarning`. A splitter gets
          ``split(X, y, groups)``. The test folds must partition the samples.

          Caveat, measured: unlike predicted probabilities, learned features
          have no common meaning across networks trained on different data.
          The final layer learns on the fold networks' features but predicts
          from the refitted networks' features, and it degenerates to one
          class: in ``benchmarks/accuracy/stage_accuracy.py`` (synthetic cells, 3
          subject-level folds) out-of-fold Stage-3C scored 66.7% accuracy
          with F1 0 for "hem" (every cell called "all"), 42.1% with a
          standardised final layer, against 79.4% in-sample. Prefer
          ``"in_sample"`` or ``"prefit"`` for networks; out-of-fold suits
          base estimators with a fixed feature space.
    n_jobs : int, default=None
        Number of joblib jobs fitting base estimators (and folds) in parallel.
        ``None`` means 1 unless in a :func:`joblib.parallel_config` context.
    verbose : int, default=0
        Verbosity of the joblib loop.
    tta : {None, False, True, 1, 2, 4, 8}, default=None
        Test-time augmentation of the fitted networks: while
        :meth:`transform`, :meth:`predict`, :meth:`predict_proba` and
        :meth:`decision_function` run, every fitted base estimator with a
        ``tta`` parameter (:class:`~sklearn_leuko.LeukoNetClassifier`, alone
        or ending a Pipeline) uses this value (see its ``tta``: the features
        averaged over 2, 4 or 8 exact flips / rotations of each cell; ``True``
        means 8), and gets its own value back afterwards. ``None`` leaves the
        networks' own ``tta``. Acts at inference only, so it can be set on a
        fitted fusion (``fusion.set_params(tta=8).predict(X)``); :meth:`fit`
        trains the final layer on the networks' features as their own ``tta``
        makes them. With the default linear final layer, its logit of the
        averaged features is the average of its logits over the views. Cost:
        ``n`` views take ``n`` times the feature extraction.

        Setting the networks' ``tta`` by nested name
        (``fusion.set_params(stage1__net__tta=8, stage2c__net__tta=8)`` for
        :func:`~sklearn_leuko.make_stage`'s ``"3C"``) changes the templates in
        ``estimators``: with ``cv="prefit"`` they are the fitted networks, but
        otherwise ``estimators_`` are fitted clones that keep their value
        until the next :meth:`fit`, which then also averages the features the
        final layer is trained on. Set the fitted ones with
        ``fusion.named_estimators_["stage1"].set_params(net__tta=8)``, or use
        this parameter.

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted base estimators (``"drop"`` ones left out).
    named_estimators_ : :class:`~sklearn.utils.Bunch`
        The fitted base estimators by name.
    final_estimator_ : classifier
        The fitted final estimator.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_per_estimator_ : list of int
        Width of each base estimator's features in the concatenation.
    n_features_out_ : int
        Width of :meth:`transform`'s output (their sum).

    See Also
    --------
    sklearn_leuko.make_stage : Builds Stage-3 and Stage-3C with this class.
    sklearn.ensemble.StackingClassifier : Stacks predictions, not features.

    Notes
    -----
    Subject IDs: ``fit(X, y, groups=subject_ids)`` gives them to the fold
    split and to every base fit (through
    :func:`~sklearn_leuko.utils._groups.fit_with_groups`, so a network inside
    a Pipeline gets them as ``net__groups``). Under metadata routing the
    class requests ``groups`` by default, so ``GridSearchCV(...).fit(X, y,
    groups=g)`` and ``cross_validate(..., params={"groups": g})`` deliver
    them. With routing off, ``GridSearchCV`` cannot pass them to ``fit``: put
    the fusion in a ``Pipeline([("fusion", ...)])`` and pass
    ``fusion__groups=g``, or enable routing.

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_leuko import FeatureFusionClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> X, y = X[y < 2], y[y < 2]  # two classes, in C-NMC's coding 1 = "all"
    >>> fusion = FeatureFusionClassifier([("a", PCA(2)), ("b", PCA(3))])
    >>> fusion.fit(X, y).transform(X).shape
    (100, 5)
    >>> fusion.classes_.tolist()
    [0, 1]
    >>> round(fusion.score(X, y), 2)
    1.0
    """

    _parameter_constraints: dict = {
        "estimators": [list],
        "final_estimator": [None, HasMethods("fit")],
        "cv": ["cv_object", StrOptions({"in_sample", "prefit"})],
        "n_jobs": [None, Integral],
        "verbose": ["verbose"],
        "tta": [None, "boolean", Options(Integral, {1, 2, 4, 8})],
    }

    # Subject IDs are requested by default under metadata routing: they feed
    # the out-of-fold split and every base network's inner validation split.
    __metadata_request__fit = {"groups": True}

    def __init__(
        self,
        estimators,
        final_estimator=None,
        *,
        cv="in_sample",
        n_jobs=None,
        verbose=0,
        tta=None,
    ):
        super().__init__(estimators=estimators)
        self.final_estimator = final_estimator
        self.cv = cv
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.tta = tta

    def __setstate__(self, state):
        # Fusions pickled before tta existed use their networks' own.
        state.setdefault("tta", None)
        super().__setstate__(state)

    # ------------------------------------------------------------ validation
    def _validate_estimators(self):
        if len(self.estimators) == 0 or not all(
            isinstance(item, (tuple, list))
            and len(item) == 2
            and isinstance(item[0], str)
            for item in self.estimators
        ):
            raise ValueError(
                "estimators must be a non-empty list of (name, estimator) tuples, e.g. "
                "[('stage1', stage1_pipeline), ('stage2c', stage2c_pipeline)] as built "
                "by make_stage; got "
                f"{self.estimators!r:.200}."
            )
        names, estimators = zip(*self.estimators, strict=True)
        self._validate_names(names)
        if all(isinstance(est, str) and est == "drop" for est in estimators):
            raise ValueError(
                "estimators: all estimators are 'drop'; at least one is needed."
            )
        for name, est in zip(names, estimators, strict=True):
            if isinstance(est, str) and est == "drop":
                continue
            if not hasattr(est, "fit") or not hasattr(est, "transform"):
                raise TypeError(
                    f"estimators: {name!r} is a {type(est).__name__}, which has no "
                    "'transform' method; feature fusion needs each base estimator's "
                    "features, e.g. a LeukoNetClassifier or a Pipeline ending in one."
                )
        return names, estimators

    def _validate_cv(self, y, groups):
        cv = self.cv
        if cv is None:
            raise ValueError(
                "cv=None is not supported: use 'in_sample' (the paper's protocol), "
                "'prefit', an int (out-of-fold features) or a splitter."
            )
        if isinstance(cv, Integral):
            if groups is None:
                warnings.warn(
                    f"FeatureFusionClassifier(cv={cv}) got no groups, so the "
                    "out-of-fold features come from cell-level folds (StratifiedKFold): "
                    "cells of one subject end up on both sides. Pass "
                    "fit(X, y, groups=subject_ids) for subject-level folds "
                    "(StratifiedGroupKFold).",
                    CellLevelSplitWarning,
                    stacklevel=4,
                )
                return StratifiedKFold(n_splits=cv)
            return StratifiedGroupKFold(n_splits=cv)
        return check_cv(cv, y, classifier=True)

    def _folds(self, X, y, groups):
        cv = self._validate_cv(y, groups)
        with warnings.catch_warnings():
            # Few subjects per class trigger scikit-learn's "least populated
            # class" warning; the folds are still valid partitions.
            warnings.filterwarnings("ignore", message=".*least populated class.*")
            folds = [
                (np.asarray(tr), np.asarray(te)) for tr, te in cv.split(X, y, groups)
            ]
        n = len(y)
        seen = np.zeros(n, dtype=int)
        for _, test in folds:
            seen[test] += 1
        if not np.all(seen == 1):
            raise ValueError(
                f"cv={self.cv!r}: the test folds must partition the samples (each "
                f"sample held out exactly once); {int(np.sum(seen == 0))} samples are "
                f"never held out and {int(np.sum(seen > 1))} more than once."
            )
        if groups is not None:
            leaks = sum(
                len(np.intersect1d(groups[train], groups[test])) > 0
                for train, test in folds
            )
            if leaks:
                warnings.warn(
                    f"cv={self.cv!r} put cells of the same subject in the training and "
                    f"held-out parts of {leaks} fold(s): those out-of-fold features are "
                    "optimistic. Use a group splitter (StratifiedGroupKFold, GroupKFold) "
                    "or an int.",
                    CellLevelSplitWarning,
                    stacklevel=3,
                )
        return folds

    # ------------------------------------------------------------------- fit
    @_fit_context(
        # the base and final estimators are validated by their own fit
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y, groups=None):
        """Fit the base estimators and the final classifier on their features.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Training input of the base estimators, e.g. uint8 images
            ``(n, H, W, 3)``.
        y : array-like of shape (n_samples,)
            Labels, e.g. ``"all"`` / ``"hem"``.
        groups : array-like of shape (n_samples,), default=None
            Subject IDs: used for subject-level folds (int ``cv``) and given
            to every base fit.

        Returns
        -------
        self : FeatureFusionClassifier
        """
        names, all_estimators = self._validate_estimators()
        n = _num_samples(X)
        y = check_targets(y, n)
        groups = check_groups(groups, n)
        self._label_encoder = LabelEncoder().fit(y)
        self.classes_ = self._label_encoder.classes_
        final = (
            default_final_estimator()
            if self.final_estimator is None
            else self.final_estimator
        )
        if not is_classifier(final):
            raise TypeError(
                f"final_estimator must be a classifier, got {type(final).__name__}; e.g. "
                "LogisticRegression() (the paper's fully connected layer)."
            )
        self.final_estimator_ = clone(final)

        kept = [
            (name, est)
            for name, est in zip(names, all_estimators, strict=True)
            if not (isinstance(est, str) and est == "drop")
        ]
        parallel = Parallel(n_jobs=self.n_jobs, verbose=self.verbose)

        if self.cv == "prefit":
            for name, est in kept:
                check_is_fitted(
                    est,
                    msg=(
                        f"cv='prefit' but estimators[{name!r}] is not fitted; fit it first, "
                        "or use cv='in_sample' to fit it here."
                    ),
                )
            for name, est in kept:
                seen = getattr(est, "classes_", None)
                unseen = (
                    sorted(set(self.classes_) - set(seen)) if seen is not None else []
                )
                if unseen:
                    raise ValueError(
                        f"y has labels {unseen} that the prefit estimators[{name!r}] never "
                        f"saw (it knows {list(seen)}); fit the base estimators on the same "
                        "labels, or use cv='in_sample'."
                    )
            self.estimators_ = [est for _, est in kept]
            features = None
        elif self.cv == "in_sample":
            self.estimators_ = parallel(
                delayed(_fit_one)(clone(est), X, y, groups, None) for _, est in kept
            )
            features = None
        else:
            folds = self._folds(X, y, groups)
            jobs = [
                delayed(_fit_one)(clone(est), X, y, groups, None) for _, est in kept
            ]
            jobs += [
                delayed(_fit_transform_fold)(clone(est), X, y, groups, train, test)
                for _, est in kept
                for train, test in folds
            ]
            results = parallel(jobs)
            self.estimators_ = results[: len(kept)]
            per_fold = results[len(kept) :]
            blocks = []
            for i in range(len(kept)):
                parts = per_fold[i * len(folds) : (i + 1) * len(folds)]
                width = {part.shape[1] for _, part in parts}
                if len(width) != 1:
                    raise ValueError(
                        f"estimators[{kept[i][0]!r}] gave features of different widths "
                        f"{sorted(width)} on different folds; its transform must have a "
                        "fixed output size."
                    )
                block = np.empty((n, width.pop()), dtype=parts[0][1].dtype)
                for test, part in parts:
                    block[test] = part
                blocks.append(block)
            features = np.hstack(blocks)

        self.named_estimators_ = Bunch()
        fitted = iter(self.estimators_)
        for name, est in zip(names, all_estimators, strict=True):
            self.named_estimators_[name] = (
                est if isinstance(est, str) and est == "drop" else next(fitted)
            )
        self._kept_names = [name for name, _ in kept]

        if features is None:
            features = self._features(X)
        else:
            self.n_features_per_estimator_ = [b.shape[1] for b in blocks]
        self.n_features_out_ = int(features.shape[1])
        self.final_estimator_.fit(features, self._label_encoder.transform(y))
        return self

    # --------------------------------------------------------------- predict
    def _features(self, X):
        blocks = [_as_2d(est.transform(X)) for est in self.estimators_]
        self.n_features_per_estimator_ = [b.shape[1] for b in blocks]
        return np.hstack(blocks)

    def transform(self, X):
        """Concatenated features of the fitted base estimators.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input of the base estimators.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
            Base features side by side, in the order of ``estimators``; with
            ``tta`` each network's averaged over the views.
        """
        check_is_fitted(self)
        with tta_override(self.estimators_, self.tta):
            features = np.hstack([_as_2d(est.transform(X)) for est in self.estimators_])
        if features.shape[1] != self.n_features_out_:
            raise ValueError(
                f"the base estimators gave {features.shape[1]} features, but the final "
                f"estimator was trained on {self.n_features_out_}; were the base "
                "estimators refitted after this fusion was fitted?"
            )
        return features

    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self._label_encoder.inverse_transform(
            self.final_estimator_.predict(self.transform(X))
        )

    @available_if(_final_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the final estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        return self.final_estimator_.predict_proba(self.transform(X))

    @available_if(_final_estimator_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the final estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            For two classes, positive values favour ``classes_[1]``.
        """
        check_is_fitted(self)
        return self.final_estimator_.decision_function(self.transform(X))

    def domain_score(self, X):
        """How unlike the training cells each input is: the worst network's score.

        Each fitted network keeps a summary of its training cells'
        penultimate features (:meth:`LeukoNetClassifier.domain_score
        <sklearn_leuko.LeukoNetClassifier.domain_score>`); the fusion's score
        is their maximum, so an input is in domain only if every network
        finds it so.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Above 1: out of domain.
        """
        from .._classifier._domain import model_domain_score

        check_is_fitted(self)
        with tta_override(self.estimators_, self.tta):
            scores = [model_domain_score(est, X) for est in self.estimators_]
        return np.max(scores, axis=0)

    def in_domain(self, X):
        """Whether each input looks like the training cells to every network.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        in_domain : ndarray of bool, shape (n_samples,)
            ``domain_score(X) <= 1``.
        """
        return self.domain_score(X) <= 1.0

    def get_feature_names_out(self, input_features=None):
        """Names of the fused features, ``"<estimator name>_<index>"``.

        Parameters
        ----------
        input_features : None
            Ignored; present for API consistency.

        Returns
        -------
        names : ndarray of str objects
        """
        check_is_fitted(self)
        return np.asarray(
            [
                f"{name}_{i}"
                for name, width in zip(
                    self._kept_names, self.n_features_per_estimator_, strict=True
                )
                for i in range(width)
            ],
            dtype=object,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:
            bases = [
                est
                for _, est in self.estimators
                if not (isinstance(est, str) and est == "drop")
            ]
            tags.input_tags.two_d_array = all(
                get_tags(est).input_tags.two_d_array for est in bases
            )
        except Exception:  # malformed estimators: fit raises the clear error
            pass
        return tags
