"""Tests for sklearn_leuko.metrics: C-NMC scorers and subject-level diagnosis."""

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

from sklearn_leuko.metrics import (
    CANCER_LABEL,
    CNMC_SCORING,
    NORMAL_LABEL,
    as_cnmc_labels,
    cnmc_accuracy_score,
    cnmc_metrics,
    f1_cancer_score,
    f1_normal_score,
    f1_weighted_score,
    misclassified_subjects,
    subject_accuracy,
    subject_level_report,
    subject_predictions,
)

# Hand-made example: 4 "all" cells, 3 "hem" cells.
#   cancer "all": TP = 3, FP = 1 (a hem called all), FN = 1 (an all called hem)
#                 F1 = 2TP / (2TP + FP + FN) = 6 / 8 = 0.75
#   normal "hem": TP = 2, FP = 1, FN = 1 -> F1 = 4 / 6 = 2/3
#   accuracy = 5 / 7; weighted F1 = (4 * 0.75 + 3 * 2/3) / 7 = 5 / 7
Y_TRUE = ["all", "all", "all", "all", "hem", "hem", "hem"]
Y_PRED = ["all", "all", "all", "hem", "hem", "hem", "all"]
EXPECTED = {
    "accuracy": 5 / 7,
    "f1_normal": 2 / 3,
    "f1_cancer": 0.75,
    "f1_weighted": 5 / 7,
}


def _ints(labels):
    return np.array([1 if v == "all" else 0 for v in labels])


def test_constants():
    assert CANCER_LABEL == "all"
    assert NORMAL_LABEL == "hem"
    assert set(CNMC_SCORING) == {"accuracy", "f1_normal", "f1_cancer", "f1_weighted"}


def test_scores_match_hand_computed_values():
    assert cnmc_accuracy_score(Y_TRUE, Y_PRED) == pytest.approx(EXPECTED["accuracy"])
    assert f1_normal_score(Y_TRUE, Y_PRED) == pytest.approx(EXPECTED["f1_normal"])
    assert f1_cancer_score(Y_TRUE, Y_PRED) == pytest.approx(EXPECTED["f1_cancer"])
    assert f1_weighted_score(Y_TRUE, Y_PRED) == pytest.approx(EXPECTED["f1_weighted"])


def test_cnmc_metrics_keys_and_values():
    result = cnmc_metrics(Y_TRUE, Y_PRED)
    assert list(result) == ["accuracy", "f1_normal", "f1_cancer", "f1_weighted"]
    assert result == pytest.approx(EXPECTED)


def test_weighted_f1_equals_sklearn_weighted():
    assert f1_weighted_score(Y_TRUE, Y_PRED) == pytest.approx(
        f1_score(Y_TRUE, Y_PRED, average="weighted")
    )


def test_integer_labels_follow_cnmc_coding():
    # C-NMC test CSV: all = 1, hem = 0.
    assert cnmc_metrics(_ints(Y_TRUE), _ints(Y_PRED)) == pytest.approx(EXPECTED)
    # Mixed codings (string truth, integer predictions) agree too.
    assert cnmc_metrics(Y_TRUE, _ints(Y_PRED)) == pytest.approx(EXPECTED)


def test_as_cnmc_labels_mapping():
    assert as_cnmc_labels([1, 0, True]).tolist() == ["all", "hem", "all"]
    assert as_cnmc_labels(np.array(["ALL", " hem "])).tolist() == ["all", "hem"]
    assert as_cnmc_labels(["1", "0"]).tolist() == ["all", "hem"]
    assert as_cnmc_labels([1.0, 0.0]).tolist() == ["all", "hem"]


@pytest.mark.parametrize(
    "labels, match",
    [
        (["all", "cancer"], "expected 'all'"),
        ([0, 2], "integer labels"),
        ([[1, 0], [0, 1]], "1-D"),
    ],
)
def test_as_cnmc_labels_rejects_unknown(labels, match):
    with pytest.raises(ValueError, match=match):
        as_cnmc_labels(labels)


def test_length_mismatch_is_reported():
    with pytest.raises(ValueError, match="y_true has 7 labels but y_pred has 6"):
        cnmc_metrics(Y_TRUE, Y_PRED[:-1])


def test_absent_class_gives_zero_f1_not_error():
    assert f1_normal_score(["all", "all"], ["all", "all"]) == 0.0
    assert f1_cancer_score(["all", "all"], ["all", "all"]) == 1.0


def _fold_data(labels):
    # Three contiguous folds of 4 cells: 3/4, 2/4 and 1/4 of them "all".
    y = np.array(
        ["all", "all", "all", "hem"]
        + ["all", "all", "hem", "hem"]
        + ["all", "hem", "hem", "hem"]
    )
    if labels == "int":
        y = _ints(y)
    X = np.arange(24, dtype=float).reshape(12, 2)
    return X, y


@pytest.mark.parametrize("labels", ["str", "int"])
def test_scoring_dict_in_cross_validate(labels):
    X, y = _fold_data(labels)
    constant = "all" if labels == "str" else 1
    clf = DummyClassifier(strategy="constant", constant=constant)
    cv = cross_validate(clf, X, y, cv=KFold(3), scoring=CNMC_SCORING)
    # Always predicting "all" on a fold with a share p of "all" cells:
    # accuracy = p, F1 cancer = 2p / (1 + p), F1 normal = 0,
    # weighted F1 = p * 2p / (1 + p).
    p = np.array([0.75, 0.5, 0.25])
    np.testing.assert_allclose(cv["test_accuracy"], p)
    np.testing.assert_allclose(cv["test_f1_cancer"], 2 * p / (1 + p))
    np.testing.assert_allclose(cv["test_f1_normal"], 0.0)
    np.testing.assert_allclose(cv["test_f1_weighted"], p * 2 * p / (1 + p))


def test_normal_class_scorer_uses_hem_as_positive():
    X, y = _fold_data("str")
    clf = DummyClassifier(strategy="constant", constant="hem")
    cv = cross_validate(clf, X, y, cv=KFold(3), scoring=CNMC_SCORING)
    q = np.array([0.25, 0.5, 0.75])  # share of "hem" per fold
    np.testing.assert_allclose(cv["test_f1_normal"], 2 * q / (1 + q))
    np.testing.assert_allclose(cv["test_f1_cancer"], 0.0)


@pytest.mark.parametrize("refit, best", [("f1_cancer", "all"), ("f1_normal", "hem")])
def test_scoring_dict_in_grid_search_refit(refit, best):
    X, y = _fold_data("str")
    grid = GridSearchCV(
        DummyClassifier(strategy="constant"),
        {"constant": ["hem", "all"]},
        cv=KFold(3),
        scoring=CNMC_SCORING,
        refit=refit,
    ).fit(X, y)
    # Predicting only one class gives that class a positive F1 and the other 0.
    assert grid.best_params_ == {"constant": best}
    assert "mean_test_f1_weighted" in grid.cv_results_


# Subject example (P("all") per cell, y_pred = P >= 0.5):
#   "1"  (all, 4 cells): P .9 .8 .7 .2 -> mean .65 all;  fraction 3/4 all; cell acc 3/4
#   "2"  (all, 2 cells): P .4 .45      -> mean .425 hem; fraction 0 hem;   cell acc 0
#   "H3" (hem, 3 cells): P .1 .6 .2    -> mean .3 hem;   fraction 1/3 hem; cell acc 2/3
#   "H4" (hem, 2 cells): P .7 .2       -> mean .45 hem;  fraction 1/2 all; cell acc 1/2
S_GROUPS = ["1", "1", "1", "1", "2", "2", "H3", "H3", "H3", "H4", "H4"]
S_TRUE = ["all"] * 6 + ["hem"] * 5
S_P_ALL = np.array([0.9, 0.8, 0.7, 0.2, 0.4, 0.45, 0.1, 0.6, 0.2, 0.7, 0.2])
S_PRED = np.where(S_P_ALL >= 0.5, "all", "hem")


def test_subject_predictions_fraction():
    df = subject_predictions(S_TRUE, S_PRED, groups=S_GROUPS, method="fraction")
    assert list(df.columns) == [
        "subject",
        "true_label",
        "n_cells",
        "score",
        "pred_label",
        "cell_accuracy",
        "correct",
    ]
    assert df["subject"].tolist() == ["1", "2", "H3", "H4"]
    assert df["true_label"].tolist() == ["all", "all", "hem", "hem"]
    assert df["n_cells"].tolist() == [4, 2, 3, 2]
    np.testing.assert_allclose(df["score"], [0.75, 0.0, 1 / 3, 0.5])
    assert df["pred_label"].tolist() == ["all", "hem", "hem", "all"]
    np.testing.assert_allclose(df["cell_accuracy"], [0.75, 0.0, 2 / 3, 0.5])
    assert df["correct"].tolist() == [True, False, True, False]


def test_subject_predictions_mean_proba():
    df = subject_predictions(
        S_TRUE, S_PRED, groups=S_GROUPS, proba=S_P_ALL, method="mean_proba"
    )
    np.testing.assert_allclose(df["score"], [0.65, 0.425, 0.3, 0.45])
    assert df["pred_label"].tolist() == ["all", "hem", "hem", "hem"]
    assert df["correct"].tolist() == [True, False, True, True]


def test_auto_method_and_cell_calls_from_proba():
    # Without y_pred, cells are called from proba; "auto" picks mean_proba.
    df = subject_predictions(S_TRUE, groups=S_GROUPS, proba=S_P_ALL)
    np.testing.assert_allclose(df["score"], [0.65, 0.425, 0.3, 0.45])
    np.testing.assert_allclose(df["cell_accuracy"], [0.75, 0.0, 2 / 3, 0.5])


def test_two_column_proba_uses_class_order():
    # scikit-learn sorts string classes: column 0 is "all", column 1 "hem".
    proba = np.column_stack([S_P_ALL, 1 - S_P_ALL])
    df = subject_predictions(S_TRUE, groups=S_GROUPS, proba=proba)
    np.testing.assert_allclose(df["score"], [0.65, 0.425, 0.3, 0.45])
    swapped = subject_predictions(
        S_TRUE, groups=S_GROUPS, proba=proba[:, ::-1], classes=["hem", "all"]
    )
    np.testing.assert_allclose(swapped["score"], df["score"])
    # Integer labels: classes_ is [0, 1], so column 1 is "all".
    ints = subject_predictions(_ints(S_TRUE), groups=S_GROUPS, proba=proba[:, ::-1])
    np.testing.assert_allclose(ints["score"], df["score"])


def test_subject_accuracy_both_methods():
    assert subject_accuracy(S_TRUE, S_PRED, groups=S_GROUPS) == pytest.approx(0.5)
    assert subject_accuracy(
        S_TRUE, S_PRED, groups=S_GROUPS, proba=S_P_ALL
    ) == pytest.approx(0.75)


def test_threshold_changes_subject_call():
    # With threshold 0.8 only subject "1" (fraction .75) is no longer "all".
    df = subject_predictions(S_TRUE, S_PRED, groups=S_GROUPS, threshold=0.8)
    assert df["pred_label"].tolist() == ["hem", "hem", "hem", "hem"]


def test_misclassified_subjects():
    df = misclassified_subjects(S_TRUE, S_PRED, groups=S_GROUPS)
    # cell errors: "1" .25, "2" 1.0, "H3" 1/3, "H4" .5 -> worst first
    assert df["subject"].tolist() == ["2", "H4"]
    np.testing.assert_allclose(df["cell_error"], [1.0, 0.5])
    strict = misclassified_subjects(S_TRUE, S_PRED, groups=S_GROUPS, min_error=0.9)
    assert strict["subject"].tolist() == ["2"]
    none = misclassified_subjects(S_TRUE, S_TRUE, groups=S_GROUPS)
    assert none.empty and "cell_error" in none.columns


def test_subject_level_report():
    report = subject_level_report(S_TRUE, S_PRED, groups=S_GROUPS)
    assert report["n_subjects"] == 4
    assert report["n_correct"] == 2
    assert report["subject_accuracy"] == pytest.approx(0.5)
    assert report["wrong_subjects"] == ["2", "H4"]
    assert report["mostly_misclassified"] == ["2", "H4"]
    assert isinstance(report["subjects"], pd.DataFrame)


def test_subject_errors_name_the_argument():
    with pytest.raises(ValueError, match="groups has 10 subject IDs but y_true has 11"):
        subject_predictions(S_TRUE, S_PRED, groups=S_GROUPS[:-1])
    with pytest.raises(ValueError, match="y_pred has 10 labels"):
        subject_predictions(S_TRUE, S_PRED[:-1], groups=S_GROUPS)
    with pytest.raises(ValueError, match="groups is required"):
        subject_predictions(S_TRUE, S_PRED, groups=None)
    with pytest.raises(ValueError, match="y_pred .* or proba"):
        subject_predictions(S_TRUE, groups=S_GROUPS)
    with pytest.raises(ValueError, match="method='mean_proba' needs proba"):
        subject_predictions(S_TRUE, S_PRED, groups=S_GROUPS, method="mean_proba")
    with pytest.raises(ValueError, match="method must be one of"):
        subject_predictions(S_TRUE, S_PRED, groups=S_GROUPS, method="vote")
    with pytest.raises(ValueError, match="threshold must be"):
        subject_predictions(S_TRUE, S_PRED, groups=S_GROUPS, threshold=1.5)
    with pytest.raises(ValueError, match="proba must hold finite probabilities"):
        subject_predictions(S_TRUE, groups=S_GROUPS, proba=S_P_ALL * 3)
    with pytest.raises(ValueError, match="proba has 10 probabilities"):
        subject_predictions(S_TRUE, groups=S_GROUPS, proba=S_P_ALL[:-1])


def test_two_column_proba_needs_classes_with_one_class():
    proba = np.column_stack([S_P_ALL, 1 - S_P_ALL])[:6]
    with pytest.raises(ValueError, match="classes is required"):
        subject_predictions(S_TRUE[:6], groups=S_GROUPS[:6], proba=proba)
    df = subject_predictions(
        S_TRUE[:6], groups=S_GROUPS[:6], proba=proba, classes=["all", "hem"]
    )
    assert df["subject"].tolist() == ["1", "2"]


def test_mixed_label_subject_warns():
    with pytest.warns(UserWarning, match="hold cells of both classes"):
        df = subject_predictions(
            ["all", "all", "hem"], ["all", "all", "all"], groups=["1", "1", "1"]
        )
    assert df["true_label"].tolist() == ["all"]
