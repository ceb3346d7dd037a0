"""Labels and subject IDs: one reading everywhere, nothing merged or split silently."""

import numpy as np
import pytest

from sklearn_leuko import LeukoNetClassifier
from sklearn_leuko.metrics import (
    as_cnmc_labels,
    cnmc_accuracy_score,
    subject_predictions,
)
from sklearn_leuko.utils import check_groups, check_targets

# ------------------------------------------------------------------- labels
VALID_LABELS = [
    ["all", "hem", "all"],
    np.array(["all", "hem", "all"]),
    [1, 0, 1],
    np.array([True, False, True]),
    np.array([1.0, 0.0, 1.0]),
    np.array(["ALL", "HEM", "ALL"]),  # one spelling per class: kept as given
    np.array(["1", "0", "1"]),
    np.array([1, 0, 1], dtype=object),
]


@pytest.mark.parametrize("y", VALID_LABELS, ids=repr)
def test_valid_labels_are_returned_unchanged(y):
    out = check_targets(y, 3)
    np.testing.assert_array_equal(out, np.asarray(y))
    assert as_cnmc_labels(out).tolist() == ["all", "hem", "all"]


BAD_LABELS = {
    "class spelled two ways": (["all", "ALL", "hem"], ValueError, r"'all' in 2 ways"),
    "space variant": (["hem ", "hem", "all"], ValueError, r"'hem' in 2 ways"),
    "1 and 'all' mixed": (
        np.array([1, "hem", "all"], dtype=object),
        ValueError,
        r"mixes the integer coding and label names \(1 and 'hem'\)",
    ),
    "'1' and 'all' mixed": (["1", "hem", "all"], ValueError, r"mixes"),
    "unknown name": (["all", "blast", "hem"], ValueError, r"labels \['blast'\]"),
    "empty string": (["all", "", "hem"], ValueError, r"labels \[''\]"),
    "integer 2": ([1, 2, 0], ValueError, r"integer labels \[2\]"),
    "float 0.5": (np.array([1.0, 0.5, 0.0]), TypeError, r"dtype float64"),
    "None": (np.array(["all", None, "hem"], dtype=object), ValueError, r"missing"),
    "NaN in object": (
        np.array(["all", np.nan, "hem"], dtype=object),
        ValueError,
        r"1 missing label\(s\).*position 1",
    ),
    "bytes array": (np.array([b"all", b"hem", b"all"]), TypeError, r"holds bytes"),
    "bytes objects": (
        np.array([b"all", "hem", "all"], dtype=object),
        TypeError,
        r"holds bytes",
    ),
    "other objects": (
        np.array([("all",), "hem", "all"], dtype=object),
        TypeError,
        r"type tuple",
    ),
}


@pytest.mark.parametrize("case", BAD_LABELS)
def test_bad_labels_are_refused_naming_the_argument(case):
    y, error, match = BAD_LABELS[case]
    with pytest.raises(error, match=f"y_train {match}|y_train.*{match}"):
        check_targets(y, 3, name="y_train")


@pytest.mark.parametrize(
    "case", [c for c in BAD_LABELS if "ways" not in BAD_LABELS[c][2]]
)
def test_metrics_refuse_what_fit_refuses(case):
    # the two spellings of one class are the only labels the metrics accept
    # and fit refuses: the metrics normalise them, a classifier cannot
    y, error, match = BAD_LABELS[case]
    with pytest.raises(error):
        as_cnmc_labels(y, name="y_true")


def test_metrics_read_case_variants_as_one_class():
    assert cnmc_accuracy_score(["all", "ALL", " hem"], [1, 1, 0]) == 1.0


def test_classifier_refuses_a_class_spelled_two_ways(tiny_cells):
    y = tiny_cells.target.astype(object)
    y[0] = "ALL" if y[0] == "all" else "HEM"
    with pytest.raises(ValueError, match=r"y writes the class"):
        LeukoNetClassifier(widths=(4,) * 6, max_epochs=1).fit(tiny_cells.images, y)


# ------------------------------------------------------------------ groups
VALID_GROUPS = [
    np.array(["7", "H3", "7"]),
    ["7", "H3", "7"],
    np.array([7, 3, 7]),
    np.array([7.0, 3.5, 7.0]),
    np.array(["7", "H3", "7"], dtype=object),
    np.array([7, 3, 7], dtype=object),
    np.array(["patient a", "b", "patient a"]),  # inner spaces are fine
]


@pytest.mark.parametrize("groups", VALID_GROUPS, ids=repr)
def test_valid_groups_are_returned_unchanged(groups):
    out = check_groups(groups, 3)
    np.testing.assert_array_equal(out, np.asarray(groups))
    assert out.dtype == np.asarray(groups).dtype


BAD_GROUPS = {
    "7 and '7'": (
        np.array([7, "7", 3], dtype=object),
        ValueError,
        r"mixes .*7 and '7'",
    ),
    "7 and 7.0": (
        np.array([7, 7.0, 3], dtype=object),
        ValueError,
        r"mixes .*7 and 7\.0",
    ),
    "7 and 'H3'": (np.array([7, "H3", 7], dtype=object), ValueError, r"mixes"),
    "None": (np.array(["7", None, "3"], dtype=object), ValueError, r"missing subject"),
    "NaN in object": (
        np.array(["7", np.nan, "3"], dtype=object),
        ValueError,
        r"missing",
    ),
    "NaN floats": (np.array([7.0, np.nan, 3.0]), ValueError, r"NaN subject IDs"),
    "inf floats": (np.array([7.0, np.inf, 3.0]), ValueError, r"infinite"),
    "empty string": (np.array(["7", "", "3"]), ValueError, r"empty subject ID"),
    "whitespace variant": (
        np.array(["7 ", "7", "3"]),
        ValueError,
        r"'7 ' with surrounding",
    ),
    "case variant": (
        np.array(["H3", "h3", "7"]),
        ValueError,
        r"'H3' and 'h3'.*only in case",
    ),
    "bytes": (np.array([b"7", b"3", b"7"]), TypeError, r"holds bytes"),
    "bytes objects": (
        np.array([b"7", "3", "7"], dtype=object),
        TypeError,
        r"holds bytes",
    ),
    "booleans": (np.array([True, False, True]), TypeError, r"boolean"),
    "other objects": (
        np.array([(7,), "3", "7"], dtype=object),
        TypeError,
        r"type tuple",
    ),
}


@pytest.mark.parametrize("case", BAD_GROUPS)
def test_bad_groups_are_refused_naming_the_argument(case):
    groups, error, match = BAD_GROUPS[case]
    with pytest.raises(error, match=f"subjects.*{match}"):
        check_groups(groups, 3, name="subjects")


def test_subject_metrics_do_not_merge_7_and_string_7():
    groups = np.array([7, "7", 7, "7"], dtype=object)
    with pytest.raises(ValueError, match=r"groups mixes"):
        subject_predictions(["all"] * 4, ["all"] * 4, groups=groups)


def test_fit_does_not_merge_7_and_string_7(tiny_cells):
    groups = tiny_cells.groups.astype(object)
    groups[0] = int(groups[0]) if groups[0].isdigit() else groups[0]
    groups[1] = 5  # numbers beside strings
    with pytest.raises(ValueError, match=r"groups mixes"):
        LeukoNetClassifier(widths=(4,) * 6, max_epochs=1).fit(
            tiny_cells.images, tiny_cells.target, groups=groups
        )
