"""Tests for sklearn_leuko.report tables: Table-2 layout, text/Markdown, CSV."""

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import KFold, cross_validate

from sklearn_leuko.metrics import CNMC_SCORING, subject_predictions
from sklearn_leuko.report import (
    format_table2,
    load_table2,
    save_table2,
    subject_table,
    table2,
)

CV_A = {
    "fit_time": np.array([1.0, 1.0, 1.0]),
    "test_accuracy": np.array([0.93, 0.9303, 0.92634]),
    "test_f1_normal": np.array([0.8857, 0.8409, 0.87056]),
    "test_f1_cancer": np.array([0.9495, 0.9303, 0.9484]),
    "test_f1_weighted": np.array([0.92, 0.91, 0.93]),
}
CV_B = {
    "test_accuracy": np.array([0.8, 0.9]),
    "test_f1_normal": np.array([0.7, 0.8]),
    "test_f1_cancer": np.array([0.85, 0.95]),
}
TEST_A = {
    "accuracy": 0.8808,
    "f1_normal": 0.8794,
    "f1_cancer": 0.882,
    "f1_weighted": 0.88,
}


def test_table2_layout():
    t = table2({"A": CV_A, "B": CV_B}, test={"A": TEST_A})
    assert t.index.tolist() == ["A", "B"]
    assert t.index.name == "Model"
    assert t.columns.names == ["split", "metric"]
    splits = list(dict.fromkeys(t.columns.get_level_values(0)))
    assert splits == ["Val0", "Val1", "Val2", "Mean", "Test"]
    assert t.columns.get_level_values(1)[:3].tolist() == ["Acc", "F1-N", "F1-C"]
    assert t.shape == (2, 15)


def test_table2_values_in_percent_two_decimals():
    t = table2({"A": CV_A, "B": CV_B}, test={"A": TEST_A})
    assert t.loc["A", ("Val0", "Acc")] == 93.0
    assert t.loc["A", ("Val2", "Acc")] == 92.63  # 92.634 rounded
    assert t.loc["A", ("Val2", "F1-N")] == 87.06  # 87.056 rounded
    assert t.loc["A", ("Test", "F1-C")] == 88.2
    # Mean of the unrounded fold values: (93 + 93.03 + 92.634) / 3 = 92.888
    assert t.loc["A", ("Mean", "Acc")] == 92.89
    assert t.loc["B", ("Mean", "F1-C")] == 90.0
    # B has two folds and no test result.
    assert np.isnan(t.loc["B", ("Val2", "Acc")])
    assert np.isnan(t.loc["B", ("Test", "Acc")])


def test_table2_options():
    t = table2(
        {"A": CV_A, "B": CV_B}, models=["A"], mean=False, metrics=["F1-W", "Acc"]
    )
    assert t.index.tolist() == ["A"]
    assert list(dict.fromkeys(t.columns.get_level_values(0))) == [
        "Val0",
        "Val1",
        "Val2",
    ]
    assert t.columns.get_level_values(1)[:2].tolist() == ["F1-W", "Acc"]
    assert t.loc["A", ("Val1", "F1-W")] == 91.0
    # B has no weighted F1 in its cross_validate output.
    with pytest.raises(ValueError, match="has no 'test_f1_weighted'"):
        table2({"B": CV_B}, metrics=["F1-W"])


def test_table2_test_only_model():
    t = table2({}, test={"A": TEST_A})
    assert t.columns.get_level_values(0).unique().tolist() == ["Test"]
    assert t.loc["A", ("Test", "Acc")] == 88.08


def test_table2_from_cross_validate():
    X = np.zeros((12, 2))
    y = np.array(["all"] * 8 + ["hem"] * 4)
    clf = DummyClassifier(strategy="constant", constant="all")
    cv = cross_validate(
        clf, X, y, cv=KFold(3, shuffle=True, random_state=0), scoring=CNMC_SCORING
    )
    t = table2({"dummy": cv})
    np.testing.assert_allclose(
        t.loc["dummy", (slice(None), "Acc")].to_numpy()[:3],
        np.round(100 * cv["test_accuracy"], 2),
    )
    assert (t.loc["dummy", (slice(None), "F1-N")] == 0).all()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"results": {"A": {"test_score": [1]}}}, ValueError, "scoring=sklearn_leuko"),
        ({"results": {"A": CV_A}, "models": ["Z"]}, ValueError, "neither results nor"),
        ({"results": {}}, ValueError, "both empty"),
        ({"results": [CV_A]}, TypeError, "results must be a dict"),
        ({"results": {"A": CV_A}, "metrics": ["AUC"]}, ValueError, "metrics must be"),
        (
            {"results": {"A": CV_A}, "test": {"A": {"acc": 1}}},
            ValueError,
            "cnmc_metrics",
        ),
    ],
)
def test_table2_errors(kwargs, error, match):
    results = kwargs.pop("results")
    with pytest.raises(error, match=match):
        table2(results, **kwargs)


def test_format_text():
    t = table2({"Stage-1 w/o aug": CV_A}, test={"Stage-1 w/o aug": TEST_A})
    text = format_table2(t)
    lines = text.splitlines()
    assert [s in lines[0] for s in ("Val0", "Val2", "Mean", "Test")] == [True] * 4
    assert lines[1].startswith("Model") and "F1-N" in lines[1]
    assert set(lines[2]) == {"-"}
    assert lines[3].startswith("Stage-1 w/o aug")
    assert "93.00" in lines[3] and "92.63" in lines[3] and "88.20" in lines[3]
    # Every line of the table body has its column separators at the same places.
    bars = {tuple(i for i, ch in enumerate(line) if ch == "|") for line in lines[:2]}
    bars.add(tuple(i for i, ch in enumerate(lines[3]) if ch == "|"))
    assert len(bars) == 1


def test_format_markdown():
    t = table2({"A|B": CV_B}, mean=False)
    md = format_table2(t, "markdown")
    assert md.splitlines() == [
        "| Model | Val0 Acc | Val0 F1-N | Val0 F1-C | Val1 Acc | Val1 F1-N | Val1 F1-C |",
        "| :--- | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| A\\|B | 80.00 | 70.00 | 85.00 | 90.00 | 80.00 | 95.00 |",
    ]


def test_format_nan_and_errors():
    t = table2({"A": CV_A, "B": CV_B})
    # B has two folds: its Val2 cells show "-".
    cells = format_table2(t, "markdown").splitlines()[-1].split("|")
    assert cells[1].strip() == "B" and cells[8].strip() == "-"
    assert " -  " in format_table2(t).splitlines()[-1]
    with pytest.raises(ValueError, match="fmt must be"):
        format_table2(t, "html")
    with pytest.raises(TypeError, match="DataFrame"):
        format_table2({"A": 1})


def test_csv_round_trip(tmp_path):
    t = table2({"A": CV_A, "B": CV_B}, test={"A": TEST_A})
    path = save_table2(t, tmp_path / "sub" / "table2.csv")
    assert path.exists()
    header = path.read_text().splitlines()[0].split(",")
    assert header[:3] == ["Model", "Val0 Acc", "Val0 F1-N"]
    assert header[-1] == "Test F1-C"
    back = load_table2(path)
    pd.testing.assert_frame_equal(back, t, check_names=True)


def test_load_table2_rejects_foreign_csv(tmp_path):
    path = tmp_path / "x.csv"
    pd.DataFrame({"Model": ["A"], "acc": [1.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="save_table2"):
        load_table2(path)


def test_subject_table():
    s1 = subject_predictions(
        ["all", "all", "hem", "hem"],
        ["all", "hem", "all", "all"],
        groups=["1", "1", "H2", "H2"],
    )
    s2 = subject_predictions(["all", "hem"], ["all", "hem"], groups=["3", "H4"])
    t = subject_table({"M": [s1, s2], "N": s2})
    assert t.columns.tolist() == [
        "Subjects",
        "Correct",
        "Subject acc",
        "Cell acc",
        "Wrong",
    ]
    assert t.loc["M", "Subjects"] == 4 and t.loc["M", "Correct"] == 3
    assert t.loc["M", "Subject acc"] == 75.0
    # Cell accuracies per subject: 0.5, 0, 1, 1 -> mean 62.5 %
    assert t.loc["M", "Cell acc"] == 62.5
    assert t.loc["M", "Wrong"] == "H2" and t.loc["N", "Wrong"] == ""
    assert "H2" in format_table2(t).splitlines()[2]
    with pytest.raises(ValueError, match="subject_predictions"):
        subject_table({"M": pd.DataFrame({"x": [1]})})
