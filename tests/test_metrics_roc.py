"""Tests of the threshold-free metrics: cell and subject ROC AUC and their scorers."""

import numpy as np
import pytest
import sklearn
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_validate

from sklearn_leuko.metrics import (
    CNMC_SCORING,
    CNMC_SCORING_WITH_AUC,
    cell_roc_auc_score,
    make_subject_roc_auc_scorer,
    subject_roc_auc_score,
)


def test_cell_auc_has_all_as_positive_class():
    y = ["all", "hem", "all", "hem", "all"]
    p_all = [0.9, 0.2, 0.4, 0.6, 0.7]
    expected = roc_auc_score([1, 0, 1, 0, 1], p_all)
    assert cell_roc_auc_score(y, p_all) == pytest.approx(expected)
    assert cell_roc_auc_score([1, 0, 1, 0, 1], p_all) == pytest.approx(expected)
    # A perfect ranking of "all" above "hem" is 1, the reverse 0.
    assert cell_roc_auc_score(["all", "hem"], [0.8, 0.1]) == 1.0
    assert cell_roc_auc_score(["all", "hem"], [0.1, 0.8]) == 0.0


def test_subject_auc_uses_mean_probability_and_counts_each_subject_once():
    # Subject "1" has many cells with a low mean; cell-level and subject-level
    # AUC therefore differ.
    y = ["all"] * 6 + ["hem"] * 2 + ["all"] * 2
    p = [0.45] * 6 + [0.5, 0.5] + [0.9, 0.8]
    groups = ["1"] * 6 + ["H1", "H1"] + ["2", "2"]
    # Subject scores: 1 -> 0.45 (all), H1 -> 0.5 (hem), 2 -> 0.85 (all).
    assert subject_roc_auc_score(y, p, groups=groups) == pytest.approx(0.5)
    assert cell_roc_auc_score(y, p) == pytest.approx(
        roc_auc_score(np.array(y) == "all", p)
    )
    assert cell_roc_auc_score(y, p) != pytest.approx(0.5)


def test_one_class_gives_nan_with_a_warning():
    with pytest.warns(UndefinedMetricWarning, match="cells"):
        assert np.isnan(cell_roc_auc_score(["all", "all"], [0.2, 0.9]))
    with pytest.warns(UndefinedMetricWarning, match="subjects"):
        value = subject_roc_auc_score(
            ["hem", "hem", "hem"], [0.1, 0.2, 0.3], groups=["H1", "H2", "H2"]
        )
    assert np.isnan(value)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: cell_roc_auc_score(["all", "hem"], [[0.2, 0.8], [0.6, 0.4]]),
            "'all' column",
        ),
        (lambda: cell_roc_auc_score(["all", "hem"], [0.2]), "one score per cell"),
        (lambda: cell_roc_auc_score(["all", "hem"], [0.2, np.nan]), "NaN"),
        (lambda: cell_roc_auc_score([], []), "empty"),
        (
            lambda: subject_roc_auc_score(["all", "hem"], [0.2, 0.4], groups=None),
            "groups is required",
        ),
        (
            lambda: subject_roc_auc_score(["all", "hem"], [2.0, -1.0], groups=[1, 2]),
            r"in \[0, 1\]",
        ),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _fitted(labels):
    rng = np.random.default_rng(0)
    is_all = np.repeat([True, False, True, False, True, False], 10)
    X = (is_all + rng.normal(0, 0.8, is_all.size))[:, None]
    groups = np.repeat(["1", "H1", "2", "H2", "3", "H3"], 10)
    y = np.where(is_all, *labels)
    return LogisticRegression().fit(X, y), X, y, groups


@pytest.mark.parametrize("labels", [("all", "hem"), (1, 0), ("ALL", "HEM")])
def test_cell_scorer_reads_the_all_column_for_both_codings(labels):
    clf, X, y, _ = _fitted(labels)
    column = [str(c).lower() for c in clf.classes_].index(str(labels[0]).lower())
    expected = cell_roc_auc_score(y, clf.predict_proba(X)[:, column])
    assert expected > 0.7  # a learnable signal, so a flipped column would show
    assert CNMC_SCORING_WITH_AUC["roc_auc"](clf, X, y) == pytest.approx(expected)


def test_scoring_dict_keeps_cnmc_scoring_and_adds_roc_auc():
    assert set(CNMC_SCORING_WITH_AUC) == set(CNMC_SCORING) | {"roc_auc"}
    assert "roc_auc" not in CNMC_SCORING


def test_cell_scorer_in_cross_validate_with_routing_off():
    clf, X, y, groups = _fitted(("all", "hem"))
    result = cross_validate(
        clf,
        X,
        y,
        groups=groups,
        cv=GroupKFold(3),
        scoring=CNMC_SCORING_WITH_AUC,
        error_score="raise",
    )
    assert np.all((result["test_roc_auc"] > 0.5) & (result["test_roc_auc"] <= 1))


@pytest.mark.parametrize("labels", [("all", "hem"), (1, 0)])
def test_subject_scorer_with_routing_on(labels):
    clf, X, y, groups = _fitted(labels)
    scorer = make_subject_roc_auc_scorer()
    column = list(clf.classes_).index(labels[0])
    expected = subject_roc_auc_score(y, clf.predict_proba(X)[:, column], groups=groups)
    with sklearn.config_context(enable_metadata_routing=True):
        assert scorer(clf, X, y, groups=groups) == pytest.approx(expected)
        result = cross_validate(
            LogisticRegression(),
            X,
            y,
            cv=GroupKFold(3),
            scoring={**CNMC_SCORING_WITH_AUC, "subject_roc_auc": scorer},
            params={"groups": groups},
            error_score="raise",
        )
    assert np.all(np.isfinite(result["test_subject_roc_auc"]))


def test_subject_scorer_without_routing_says_how_to_enable_it():
    clf, X, y, groups = _fitted(("all", "hem"))
    with pytest.raises(ValueError, match="enable metadata routing"):
        make_subject_roc_auc_scorer()(clf, X, y)
    with pytest.raises(ValueError, match="enable metadata routing"):
        cross_validate(
            clf,
            X,
            y,
            groups=groups,
            cv=GroupKFold(3),
            scoring={"subject_roc_auc": make_subject_roc_auc_scorer()},
            error_score="raise",
        )


def test_subject_scorers_are_independent_objects():
    a, b = make_subject_roc_auc_scorer(), make_subject_roc_auc_scorer()
    assert a is not b
    with sklearn.config_context(enable_metadata_routing=True):
        a.set_score_request(groups=False)
        assert b.get_metadata_routing().score.requests["groups"] is True
