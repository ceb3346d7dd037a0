"""Subject-level diagnosis: aggregate cell predictions per subject.

The paper's failure analysis (Mourya et al., 2018, Sec. 4) found that the
model "was failing at the subject-level data, i.e., either most of the cells
of a subject were recognized correctly or were mis-classified". A clinical
test diagnoses a subject, not a cell, so these helpers turn cell predictions
into one call per subject (as flow cytometry would) and list the subjects
whose cells are mostly misclassified.
"""

import numbers
import warnings

import numpy as np
import pandas as pd

from ..utils import check_groups
from ._scorers import CANCER_LABEL, NORMAL_LABEL, as_cnmc_labels, proba_of_cancer

__all__ = [
    "misclassified_subjects",
    "subject_accuracy",
    "subject_level_report",
    "subject_predictions",
]

_METHODS = ("auto", "mean_proba", "fraction")
SUBJECT_COLUMNS = [
    "subject",
    "true_label",
    "n_cells",
    "score",
    "pred_label",
    "cell_accuracy",
    "correct",
]


def _check_length(values, n_samples, name, what):
    if values.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {values.shape[0]} {what} but y_true has {n_samples} cells; "
            f"pass one value per cell, in the same order."
        )


def _cancer_probability(proba, y_true_raw, classes, n_samples):
    proba = np.asarray(proba)
    if proba.dtype.kind not in "fiu":
        raise TypeError(f"proba has dtype {proba.dtype}; pass predict_proba output.")
    proba = proba.astype(np.float64)
    if proba.ndim == 2 and proba.shape[1] == 1:
        proba = proba.ravel()
    if proba.ndim == 1:
        p_all = proba
    elif proba.ndim == 2 and proba.shape[1] == 2:
        if classes is None:
            classes = np.unique(np.asarray(y_true_raw))
            if classes.shape[0] != 2:
                raise ValueError(
                    "classes is required when y_true holds one class only: pass the "
                    "column order of proba, e.g. classes=clf.classes_."
                )
        if sorted(as_cnmc_labels(classes, name="classes").tolist()) != sorted(
            [CANCER_LABEL, NORMAL_LABEL]
        ):
            raise ValueError(
                f"classes must name the two columns of proba, 'all' and 'hem' (or 1 "
                f"and 0), got {list(classes)}."
            )
        p_all = proba_of_cancer(proba, classes)
    else:
        raise ValueError(
            f"proba must have shape (n_cells,) with P('all') or (n_cells, 2) as "
            f"returned by predict_proba, got shape {proba.shape}."
        )
    _check_length(p_all, n_samples, "proba", "probabilities")
    if not np.isfinite(p_all).all() or p_all.min() < 0 or p_all.max() > 1:
        raise ValueError(
            "proba must hold finite probabilities in [0, 1]; pass predict_proba "
            "output, not decision_function scores or logits."
        )
    return p_all


def _check_unit_interval(value, name):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= value <= 1.0
    ):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}.")
    return float(value)


def subject_predictions(
    y_true,
    y_pred=None,
    *,
    groups,
    proba=None,
    classes=None,
    method="auto",
    threshold=0.5,
):
    """Diagnose each subject from the predictions on its cells.

    A subject is called ``"all"`` (leukemic) when its score reaches
    ``threshold``, ``"hem"`` (healthy) otherwise. The score is either the
    mean probability of ``"all"`` over the subject's cells
    (``method="mean_proba"``) or the fraction of its cells predicted
    ``"all"`` (``method="fraction"``).

    Parameters
    ----------
    y_true : array-like of shape (n_cells,)
        True cell labels, ``"all"``/``"hem"`` or C-NMC integers ``1``/``0``.
        A subject's true label is the label of its cells (the majority, with
        a warning, if they disagree).
    y_pred : array-like of shape (n_cells,), default=None
        Predicted cell labels. When ``None``, derived from ``proba``: a cell
        is ``"all"`` when P("all") >= 0.5.
    groups : array-like of shape (n_cells,)
        Subject ID of each cell.
    proba : array-like of shape (n_cells, 2) or (n_cells,), default=None
        ``predict_proba`` output, or P("all") per cell.
    classes : array-like of shape (2,), default=None
        Labels of the columns of a 2-D ``proba``, e.g. ``clf.classes_``.
        ``None`` assumes scikit-learn's sorted order of the labels in
        ``y_true`` (``["all", "hem"]`` for strings, ``[0, 1]`` for integers).
    method : {"auto", "mean_proba", "fraction"}, default="auto"
        Subject score. ``"auto"`` uses ``"mean_proba"`` when ``proba`` is
        given and ``"fraction"`` otherwise.
    threshold : float, default=0.5
        Subjects whose score is at least ``threshold`` are called ``"all"``.

    Returns
    -------
    subjects : pandas.DataFrame
        One row per subject, sorted by subject ID, with columns
        ``subject``, ``true_label``, ``n_cells``, ``score``, ``pred_label``,
        ``cell_accuracy`` (fraction of the subject's cells predicted
        correctly) and ``correct`` (subject-level call right).

    See Also
    --------
    subject_accuracy : Fraction of subjects diagnosed correctly.
    misclassified_subjects : Subjects whose cells are mostly misclassified.

    Examples
    --------
    >>> from sklearn_leuko.metrics import subject_predictions
    >>> y_true = ["all", "all", "all", "hem", "hem", "hem"]
    >>> y_pred = ["all", "all", "hem", "all", "all", "hem"]
    >>> groups = ["1", "1", "1", "H2", "H2", "H2"]
    >>> df = subject_predictions(y_true, y_pred, groups=groups)
    >>> df[["subject", "pred_label", "correct"]].to_dict("list")
    {'subject': ['1', 'H2'], 'pred_label': ['all', 'all'], 'correct': [True, False]}
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    threshold = _check_unit_interval(threshold, "threshold")
    y_raw = y_true
    y_true = as_cnmc_labels(y_true, name="y_true")
    n_samples = y_true.shape[0]
    if n_samples == 0:
        raise ValueError("y_true is empty: at least one cell is required.")
    if groups is None:
        raise ValueError(
            "groups is required: pass the subject ID of each cell (e.g. "
            "bunch.groups from load_cnmc)."
        )
    groups = np.asarray(groups)
    if groups.ndim == 1:
        _check_length(groups, n_samples, "groups", "subject IDs")
    groups = check_groups(groups, n_samples)

    if y_pred is None and proba is None:
        raise ValueError(
            "pass y_pred (predicted labels) or proba (predict_proba output); got "
            "neither."
        )
    if method == "auto":
        method = "fraction" if proba is None else "mean_proba"
    if method == "mean_proba" and proba is None:
        raise ValueError(
            "method='mean_proba' needs proba=clf.predict_proba(X); pass it or use "
            "method='fraction'."
        )
    p_all = None
    if proba is not None:
        p_all = _cancer_probability(proba, y_raw, classes, n_samples)
    if y_pred is None:
        y_pred = np.where(p_all >= 0.5, CANCER_LABEL, NORMAL_LABEL).astype(object)
    else:
        y_pred = as_cnmc_labels(y_pred, name="y_pred")
        _check_length(y_pred, n_samples, "y_pred", "labels")

    cells = pd.DataFrame(
        {
            "subject": groups,
            "is_all": y_true == CANCER_LABEL,
            "called_all": y_pred == CANCER_LABEL,
            "hit": y_true == y_pred,
            "p_all": p_all if p_all is not None else np.nan,
        }
    )
    per = cells.groupby("subject", sort=True).agg(
        n_cells=("hit", "size"),
        frac_true_all=("is_all", "mean"),
        fraction=("called_all", "mean"),
        mean_proba=("p_all", "mean"),
        cell_accuracy=("hit", "mean"),
    )
    mixed = per.index[(per["frac_true_all"] > 0) & (per["frac_true_all"] < 1)]
    if len(mixed):
        warnings.warn(
            f"subjects {list(mixed[:5])} hold cells of both classes; their true "
            "label is the majority label. C-NMC subjects are either leukemic or "
            "healthy: check y_true and groups.",
            UserWarning,
            stacklevel=2,
        )
    true_label = np.where(per["frac_true_all"] > 0.5, CANCER_LABEL, NORMAL_LABEL)
    score = per[method].to_numpy(dtype=np.float64)
    pred_label = np.where(score >= threshold, CANCER_LABEL, NORMAL_LABEL)
    return pd.DataFrame(
        {
            "subject": per.index.to_numpy(),
            "true_label": true_label.astype(object),
            "n_cells": per["n_cells"].to_numpy(dtype=np.int64),
            "score": score,
            "pred_label": pred_label.astype(object),
            "cell_accuracy": per["cell_accuracy"].to_numpy(dtype=np.float64),
            "correct": true_label == pred_label,
        },
        columns=SUBJECT_COLUMNS,
    )


def subject_accuracy(
    y_true,
    y_pred=None,
    *,
    groups,
    proba=None,
    classes=None,
    method="auto",
    threshold=0.5,
):
    """Fraction of subjects diagnosed correctly.

    Parameters are those of :func:`subject_predictions`.

    Returns
    -------
    accuracy : float
        Correct subject-level calls divided by the number of subjects.

    Examples
    --------
    >>> from sklearn_leuko.metrics import subject_accuracy
    >>> subject_accuracy(
    ...     ["all", "all", "hem", "hem"], ["all", "hem", "hem", "hem"],
    ...     groups=["1", "1", "H2", "H2"],
    ... )
    1.0
    """
    table = subject_predictions(
        y_true,
        y_pred,
        groups=groups,
        proba=proba,
        classes=classes,
        method=method,
        threshold=threshold,
    )
    return float(table["correct"].mean())


def misclassified_subjects(
    y_true,
    y_pred=None,
    *,
    groups,
    proba=None,
    classes=None,
    min_error=0.5,
):
    """Subjects whose cells are mostly misclassified (the paper's failure mode).

    Parameters
    ----------
    y_true, y_pred, groups, proba, classes
        As in :func:`subject_predictions`.
    min_error : float, default=0.5
        Keep subjects whose cell error rate (``1 - cell_accuracy``) is at
        least ``min_error``.

    Returns
    -------
    subjects : pandas.DataFrame
        The rows of :func:`subject_predictions` for those subjects plus a
        ``cell_error`` column, worst subject first. Empty (same columns)
        when no subject qualifies.

    Examples
    --------
    >>> from sklearn_leuko.metrics import misclassified_subjects
    >>> df = misclassified_subjects(
    ...     ["all", "all", "hem", "hem"], ["hem", "hem", "hem", "all"],
    ...     groups=["1", "1", "H2", "H2"], min_error=0.6,
    ... )
    >>> df["subject"].tolist(), df["cell_error"].tolist()
    (['1'], [1.0])
    """
    min_error = _check_unit_interval(min_error, "min_error")
    table = subject_predictions(
        y_true, y_pred, groups=groups, proba=proba, classes=classes
    )
    table["cell_error"] = 1.0 - table["cell_accuracy"]
    # Rounding guards against 1 - 0.8 == 0.19999... missing min_error=0.2.
    keep = table["cell_error"].round(12) >= min_error
    out = table.loc[keep].sort_values(
        ["cell_error", "subject"], ascending=[False, True], kind="stable"
    )
    return out.reset_index(drop=True)


def subject_level_report(
    y_true,
    y_pred=None,
    *,
    groups,
    proba=None,
    classes=None,
    method="auto",
    threshold=0.5,
    min_error=0.5,
):
    """Summary of subject-level results, for logs and the command line.

    Parameters
    ----------
    y_true, y_pred, groups, proba, classes, method, threshold
        As in :func:`subject_predictions`.
    min_error : float, default=0.5
        As in :func:`misclassified_subjects`.

    Returns
    -------
    report : dict
        ``n_subjects`` (int), ``n_correct`` (int), ``subject_accuracy``
        (float), ``wrong_subjects`` (list of subject IDs diagnosed wrongly),
        ``mostly_misclassified`` (list of subject IDs whose cell error rate
        is at least ``min_error``) and ``subjects`` (the DataFrame of
        :func:`subject_predictions`).

    Examples
    --------
    >>> from sklearn_leuko.metrics import subject_level_report
    >>> r = subject_level_report(
    ...     ["all", "all", "hem", "hem"], ["all", "all", "all", "all"],
    ...     groups=["1", "1", "H2", "H2"],
    ... )
    >>> r["subject_accuracy"], r["wrong_subjects"], r["mostly_misclassified"]
    (0.5, ['H2'], ['H2'])
    """
    min_error = _check_unit_interval(min_error, "min_error")
    table = subject_predictions(
        y_true,
        y_pred,
        groups=groups,
        proba=proba,
        classes=classes,
        method=method,
        threshold=threshold,
    )
    error = (1.0 - table["cell_accuracy"]).round(12)
    return {
        "n_subjects": int(len(table)),
        "n_correct": int(table["correct"].sum()),
        "subject_accuracy": float(table["correct"].mean()),
        "wrong_subjects": table.loc[~table["correct"], "subject"].tolist(),
        "mostly_misclassified": table.loc[error >= min_error, "subject"].tolist(),
        "subjects": table,
    }
