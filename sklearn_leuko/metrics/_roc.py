"""Threshold-free metrics: ROC AUC of cells and of subjects, "all" positive.

Accuracy and F1 judge the calls at P("all") = 0.5; the area under the ROC
curve judges the ranking of the scores at every threshold at once, which is
how C-NMC entries and clinical tests are compared.
"""

import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import make_scorer, roc_auc_score

from ._scorers import CANCER_LABEL, CNMC_SCORING, as_cnmc_labels
from ._subjects import subject_predictions

__all__ = [
    "CNMC_SCORING_WITH_AUC",
    "cell_roc_auc_score",
    "make_subject_roc_auc_scorer",
    "subject_roc_auc_score",
]


def _check_scores(y_score, n_samples, name="y_score"):
    scores = np.asarray(y_score)
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores.ravel()
    if scores.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D, one P('all') per cell, got shape {scores.shape}; "
            "from predict_proba take the 'all' column, "
            "proba[:, list(clf.classes_).index('all')]."
        )
    if scores.dtype.kind not in "fiub":
        raise TypeError(f"{name} has dtype {scores.dtype}; pass numbers.")
    scores = scores.astype(np.float64)
    if scores.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {scores.shape[0]} scores but y_true has {n_samples} cells; "
            "pass one score per cell, in the same order."
        )
    if not np.isfinite(scores).all():
        raise ValueError(f"{name} holds NaN or infinite scores.")
    return scores


def _auc_all_positive(is_all, scores, sample_weight, what):
    # scikit-learn >= 1.7 returns NaN with a warning for one class; older
    # versions raise. One behaviour for all supported versions.
    if is_all.all() or not is_all.any():
        warnings.warn(
            f"Only one class is present in y_true ({what}); ROC AUC is not defined "
            "and is set to NaN.",
            UndefinedMetricWarning,
            stacklevel=3,
        )
        return float("nan")
    return float(roc_auc_score(is_all, scores, sample_weight=sample_weight))


def cell_roc_auc_score(y_true, y_score, *, sample_weight=None):
    """Area under the ROC curve of cells, "all" (leukemic blast) positive.

    The probability that a random "all" cell gets a higher score than a
    random "hem" cell (ties count one half). 0.5 is chance, 1 a perfect
    ranking.

    Parameters
    ----------
    y_true : array-like of shape (n_cells,)
        Labels ``"all"``/``"hem"`` or C-NMC integers ``1``/``0``.
    y_score : array-like of shape (n_cells,)
        Score of ``"all"`` per cell, higher meaning more likely leukemic:
        P("all") from ``predict_proba`` (any monotone score gives the same
        AUC).
    sample_weight : array-like of shape (n_cells,), default=None

    Returns
    -------
    auc : float
        In [0, 1]; NaN with an :class:`~sklearn.exceptions.UndefinedMetricWarning`
        when ``y_true`` holds one class only (as scikit-learn's
        :func:`~sklearn.metrics.roc_auc_score`).

    See Also
    --------
    subject_roc_auc_score : The same for subjects.

    Examples
    --------
    >>> from sklearn_leuko.metrics import cell_roc_auc_score
    >>> cell_roc_auc_score(["all", "hem", "all", "hem"], [0.9, 0.2, 0.4, 0.6])
    0.75
    """
    labels = as_cnmc_labels(y_true, name="y_true")
    if labels.shape[0] == 0:
        raise ValueError("y_true is empty: at least one cell is required.")
    scores = _check_scores(y_score, labels.shape[0])
    return _auc_all_positive(labels == CANCER_LABEL, scores, sample_weight, "cells")


def subject_roc_auc_score(y_true, y_score, *, groups):
    """Area under the ROC curve of subjects; a subject's score is its mean P("all").

    Each subject gets one score, the mean probability of ``"all"`` over its
    cells (``method="mean_proba"`` of :func:`subject_predictions`), and its
    true label; the AUC is then taken over subjects, each counting once
    whatever its number of cells.

    Parameters
    ----------
    y_true : array-like of shape (n_cells,)
        Cell labels ``"all"``/``"hem"`` or C-NMC integers ``1``/``0``. A
        subject's label is that of its cells (the majority, with a warning,
        if they disagree).
    y_score : array-like of shape (n_cells,)
        P("all") per cell, in [0, 1].
    groups : array-like of shape (n_cells,)
        Subject ID of every cell.

    Returns
    -------
    auc : float
        In [0, 1]; NaN with an :class:`~sklearn.exceptions.UndefinedMetricWarning`
        when all subjects have the same label.

    See Also
    --------
    make_subject_roc_auc_scorer : The scorer for ``cross_validate``.

    Examples
    --------
    >>> from sklearn_leuko.metrics import subject_roc_auc_score
    >>> subject_roc_auc_score(
    ...     ["all", "all", "hem", "hem", "all", "all"],
    ...     [0.9, 0.7, 0.2, 0.4, 0.3, 0.5],
    ...     groups=["1", "1", "H1", "H1", "2", "2"],
    ... )
    1.0
    """
    labels = as_cnmc_labels(y_true, name="y_true")
    if labels.shape[0] == 0:
        raise ValueError("y_true is empty: at least one cell is required.")
    if groups is None:
        raise ValueError(
            "groups is required: pass the subject ID of each cell. In a scorer, "
            "enable metadata routing (sklearn.set_config(enable_metadata_routing="
            "True)) and pass params={'groups': groups}; see "
            "make_subject_roc_auc_scorer."
        )
    scores = _check_scores(y_score, labels.shape[0])
    if scores.min() < 0 or scores.max() > 1:
        raise ValueError(
            "y_score must hold P('all') in [0, 1] (the subject score is its mean), "
            f"got values in [{scores.min():g}, {scores.max():g}]; pass "
            "predict_proba output, not logits."
        )
    table = subject_predictions(labels, groups=groups, proba=scores)
    return _auc_all_positive(
        (table["true_label"] == CANCER_LABEL).to_numpy(),
        table["score"].to_numpy(),
        None,
        "subjects",
    )


def _p_all_from_scorer_column(y_true, y_column):
    """P("all") from the one ``predict_proba`` column a scikit-learn scorer passes.

    For a binary classifier, a ``make_scorer(..., response_method=
    "predict_proba")`` scorer without ``pos_label`` passes the column of
    ``estimator.classes_[-1]``, the largest label. ``classes_`` is the
    sorted set of the training labels, and ``y_true`` uses the same coding,
    so the largest label of ``y_true`` names that column: ``"hem"`` for
    strings, ``1`` (= ``"all"``) for the C-NMC integers.
    """
    raw = np.unique(np.asarray(y_true))
    column_label = as_cnmc_labels(raw[-1:], name="y_true")[0]
    y_column = np.asarray(y_column, dtype=np.float64)
    return y_column if column_label == CANCER_LABEL else 1.0 - y_column


def _cell_auc_scorer_func(y_true, y_pred, *, sample_weight=None):
    p_all = _p_all_from_scorer_column(y_true, y_pred)
    return cell_roc_auc_score(y_true, p_all, sample_weight=sample_weight)


def _subject_auc_scorer_func(y_true, y_pred, *, groups=None):
    p_all = _p_all_from_scorer_column(y_true, y_pred)
    return subject_roc_auc_score(y_true, p_all, groups=groups)


def make_subject_roc_auc_scorer():
    """A scorer of :func:`subject_roc_auc_score` that receives ``groups`` by routing.

    The subject score needs the subject ID of every test cell, which reaches
    a scorer only through scikit-learn's metadata routing. The returned
    scorer already requests ``groups`` (``set_score_request(groups=True)``),
    so with routing on it works as is::

        sklearn.set_config(enable_metadata_routing=True)
        scoring = {**CNMC_SCORING_WITH_AUC,
                   "subject_roc_auc": make_subject_roc_auc_scorer()}
        cross_validate(clf, X, y, cv=GroupKFold(5), scoring=scoring,
                       params={"groups": groups})

    With routing off (scikit-learn's default), ``cross_validate`` and
    ``GridSearchCV`` give ``groups`` to the splitter only: the scorer is then
    called without them and raises a ``ValueError`` saying so (which
    ``cross_validate`` turns into NaN with a warning unless
    ``error_score="raise"``). Without routing, score the out-of-fold
    probabilities with the plain :func:`subject_roc_auc_score`.

    Each call returns a new scorer, so setting its requests does not change
    anyone else's.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, groups=...)``, built with
        :func:`~sklearn.metrics.make_scorer` on ``predict_proba``; higher is
        better.

    Examples
    --------
    >>> import numpy as np, sklearn
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_leuko.metrics import make_subject_roc_auc_scorer
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> y = np.array(["hem", "hem", "all", "all"])
    >>> clf = LogisticRegression().fit(X, y)
    >>> scorer = make_subject_roc_auc_scorer()
    >>> with sklearn.config_context(enable_metadata_routing=True):
    ...     scorer(clf, X, y, groups=["H1", "H2", "1", "2"])
    1.0
    """
    import sklearn

    scorer = make_scorer(_subject_auc_scorer_func, response_method="predict_proba")
    # set_score_request only runs with routing on; the request is stored on
    # the scorer and used whenever routing is turned on later.
    with sklearn.config_context(enable_metadata_routing=True):
        scorer.set_score_request(groups=True)
    return scorer


#: :data:`~sklearn_leuko.metrics.CNMC_SCORING` plus ``"roc_auc"``, the cell-level
#: ROC AUC of :func:`cell_roc_auc_score` ("all" positive, from
#: ``predict_proba``). A separate dict so that ``CNMC_SCORING``'s result keys
#: and cost stay as they were; the AUC needs one more pass of
#: ``predict_proba`` per split. Works with metadata routing on or off.
CNMC_SCORING_WITH_AUC = {
    **CNMC_SCORING,
    "roc_auc": make_scorer(_cell_auc_scorer_func, response_method="predict_proba"),
}
