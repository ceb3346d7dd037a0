"""Cell-level metrics of the paper (Table 2) and of the C-NMC challenge.

LeukoNet reports accuracy, the F1 score of the normal class ("F1,N") and the
F1 score of the cancer class ("F1,C") per validation fold and on the test set
(Mourya et al., 2018, Tables 1 and 2). The C-NMC 2019 challenge ranks entries
by the support-weighted F1 score over both classes.
"""

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, make_scorer

from ..utils._validation import CANCER_LABEL, NORMAL_LABEL, _cnmc_label_array

__all__ = [
    "CANCER_LABEL",
    "CNMC_SCORING",
    "NORMAL_LABEL",
    "as_cnmc_labels",
    "cnmc_accuracy_score",
    "cnmc_metrics",
    "f1_cancer_score",
    "f1_normal_score",
    "f1_weighted_score",
    "proba_of_cancer",
]


_LABELS = [NORMAL_LABEL, CANCER_LABEL]


def as_cnmc_labels(y, *, name="y"):
    """Convert class labels to the strings ``"all"`` and ``"hem"``.

    Strings are matched without regard to case or surrounding spaces. Integer
    (or boolean, integral float, or ``"1"``/``"0"`` string) labels follow the
    C-NMC test-set CSV: ``1`` is ``"all"`` (leukemic blast, cancer) and ``0``
    is ``"hem"`` (normal cell). One array uses one coding: names and integer
    codes mixed (``[1, "hem"]``) are refused, as are None/NaN, bytes and any
    other value. :func:`sklearn_leuko.utils.check_targets` (the classifiers'
    ``fit``) accepts the labels this function reads, each class spelled one
    way.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels as strings ``"all"``/``"hem"`` or integers ``1``/``0``.
    name : str, default="y"
        Name used in error messages.

    Returns
    -------
    labels : ndarray of str, shape (n_samples,)
        Each entry is ``"all"`` or ``"hem"``.

    Raises
    ------
    ValueError
        Unknown, missing or mixed-coding labels; a 2-D array.
    TypeError
        Bytes or labels that are neither strings nor numbers.

    Examples
    --------
    >>> from sklearn_leuko.metrics import as_cnmc_labels
    >>> as_cnmc_labels([1, 0, 1]).tolist()
    ['all', 'hem', 'all']
    >>> as_cnmc_labels(["ALL", "hem"]).tolist()
    ['all', 'hem']
    """
    if y is None:
        raise ValueError(f"{name} is required: pass one label per cell.")
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one label per cell), got shape {arr.shape}."
        )
    return _cnmc_label_array(arr, name)


def _pair(y_true, y_pred):
    y_true = as_cnmc_labels(y_true, name="y_true")
    y_pred = as_cnmc_labels(y_pred, name="y_pred")
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(
            f"y_true has {y_true.shape[0]} labels but y_pred has {y_pred.shape[0]}; "
            "pass one prediction per cell."
        )
    if y_true.shape[0] == 0:
        raise ValueError("y_true is empty: at least one cell is required.")
    return y_true, y_pred


def _class_f1(y_true, y_pred, label, sample_weight):
    y_true, y_pred = _pair(y_true, y_pred)
    # ``labels=[label]`` rather than ``pos_label`` so a fold holding one class
    # only gives F1 = 0 for the absent class instead of an error.
    return float(
        f1_score(
            y_true,
            y_pred,
            labels=[label],
            average=None,
            sample_weight=sample_weight,
            zero_division=0.0,
        )[0]
    )


def cnmc_accuracy_score(y_true, y_pred, *, sample_weight=None):
    """Fraction of cells classified correctly ("Acc" in Table 2).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels ``"all"``/``"hem"`` or C-NMC integers ``1``/``0`` (see
        :func:`as_cnmc_labels`); the two may use different codings.
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    score : float
        In [0, 1].

    Examples
    --------
    >>> from sklearn_leuko.metrics import cnmc_accuracy_score
    >>> cnmc_accuracy_score(["all", "hem", "all", "hem"], [1, 0, 0, 0])
    0.75
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return float(accuracy_score(y_true, y_pred, sample_weight=sample_weight))


def f1_cancer_score(y_true, y_pred, *, sample_weight=None):
    """F1 score of the cancer class ``"all"`` ("F1,C" in Table 2).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels ``"all"``/``"hem"`` or C-NMC integers ``1``/``0``.
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    score : float
        In [0, 1]; 0 when the class is absent from both ``y_true`` and
        ``y_pred``.

    Examples
    --------
    >>> from sklearn_leuko.metrics import f1_cancer_score
    >>> round(f1_cancer_score(["all", "all", "hem"], ["all", "hem", "hem"]), 4)
    0.6667
    """
    return _class_f1(y_true, y_pred, CANCER_LABEL, sample_weight)


def f1_normal_score(y_true, y_pred, *, sample_weight=None):
    """F1 score of the normal class ``"hem"`` ("F1,N" in Table 2).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels ``"all"``/``"hem"`` or C-NMC integers ``1``/``0``.
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    score : float
        In [0, 1]; 0 when the class is absent from both ``y_true`` and
        ``y_pred``.

    Examples
    --------
    >>> from sklearn_leuko.metrics import f1_normal_score
    >>> round(f1_normal_score(["all", "all", "hem"], ["all", "hem", "hem"]), 4)
    0.6667
    """
    return _class_f1(y_true, y_pred, NORMAL_LABEL, sample_weight)


def f1_weighted_score(y_true, y_pred, *, sample_weight=None):
    """Support-weighted mean of the two class F1 scores (the C-NMC metric).

    Equals ``sklearn.metrics.f1_score(y_true, y_pred, average="weighted")``
    on string labels: each class's F1 is weighted by its number of true cells.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels ``"all"``/``"hem"`` or C-NMC integers ``1``/``0``.
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    score : float
        In [0, 1].

    Examples
    --------
    >>> from sklearn_leuko.metrics import f1_weighted_score
    >>> round(f1_weighted_score(["all", "all", "hem"], ["all", "hem", "hem"]), 4)
    0.6667
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return float(
        f1_score(
            y_true,
            y_pred,
            labels=_LABELS,
            average="weighted",
            sample_weight=sample_weight,
            zero_division=0.0,
        )
    )


def cnmc_metrics(y_true, y_pred, *, sample_weight=None):
    """All four cell-level metrics at once, keyed like :data:`CNMC_SCORING`.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels ``"all"``/``"hem"`` or C-NMC integers ``1``/``0``.
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    metrics : dict
        ``{"accuracy", "f1_normal", "f1_cancer", "f1_weighted"}`` -> float in
        [0, 1]. Pass one such dict per model as ``test`` to
        :func:`sklearn_leuko.report.table2`.

    Examples
    --------
    >>> from sklearn_leuko.metrics import cnmc_metrics
    >>> m = cnmc_metrics(["all", "all", "hem", "hem"], ["all", "hem", "hem", "hem"])
    >>> {k: round(v, 3) for k, v in m.items()}
    {'accuracy': 0.75, 'f1_normal': 0.8, 'f1_cancer': 0.667, 'f1_weighted': 0.733}
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return {
        "accuracy": cnmc_accuracy_score(y_true, y_pred, sample_weight=sample_weight),
        "f1_normal": f1_normal_score(y_true, y_pred, sample_weight=sample_weight),
        "f1_cancer": f1_cancer_score(y_true, y_pred, sample_weight=sample_weight),
        "f1_weighted": f1_weighted_score(y_true, y_pred, sample_weight=sample_weight),
    }


#: Scorers for ``cross_validate``/``GridSearchCV``: ``scoring=CNMC_SCORING``.
#: Each accepts estimators trained on ``"all"``/``"hem"`` strings or on the
#: C-NMC integer coding (1 = "all", 0 = "hem"). Use ``refit="f1_weighted"``
#: (the challenge metric) or ``refit="accuracy"`` with ``GridSearchCV``.
CNMC_SCORING = {
    "accuracy": make_scorer(cnmc_accuracy_score),
    "f1_normal": make_scorer(f1_normal_score),
    "f1_cancer": make_scorer(f1_cancer_score),
    "f1_weighted": make_scorer(f1_weighted_score),
}


def proba_of_cancer(proba, classes):
    """The probability of ``"all"`` (cancer) from ``predict_proba`` output.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_classes)
        ``predict_proba`` output.
    classes : array-like of shape (n_classes,)
        The column order, ``estimator.classes_``; ``"all"`` or the C-NMC
        integer code ``1`` must be among them.

    Returns
    -------
    p_all : ndarray of float64, shape (n_samples,)

    Examples
    --------
    >>> from sklearn_leuko.metrics import proba_of_cancer
    >>> proba_of_cancer([[0.8, 0.2], [0.1, 0.9]], ["all", "hem"]).tolist()
    [0.8, 0.1]
    """
    labels = as_cnmc_labels(classes, name="classes").tolist()
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != len(labels):
        raise ValueError(
            f"proba must have shape (n_samples, {len(labels)}) to match classes "
            f"{list(classes)}, got shape {proba.shape}."
        )
    if CANCER_LABEL not in labels:
        raise ValueError(
            f"classes {list(classes)} hold no {CANCER_LABEL!r} (cancer) class; "
            "P('all') needs a model trained on the C-NMC labels."
        )
    return proba[:, labels.index(CANCER_LABEL)]
