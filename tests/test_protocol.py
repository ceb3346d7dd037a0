"""run_protocol: the paper's subject-level protocol, each network trained once per fold."""

import warnings

import numpy as np
import pytest

from sklearn_leuko import FeatureFusionClassifier
from sklearn_leuko._classifier import CellLevelSplitWarning
from sklearn_leuko.evaluation import fit_stage, run_protocol, split_test_subjects
from sklearn_leuko.report import format_protocol_report, protocol_tables

TINY = {"widths": (4, 4, 4, 4, 4, 4), "max_epochs": 1}


@pytest.fixture(scope="module")
def cells():
    from sklearn_leuko.datasets import make_cells

    return make_cells(n_subjects=10, cells_per_subject=4, image_size=24, random_state=0)


@pytest.fixture(scope="module")
def protocol_cells():
    """Enough subjects that every training fold holds two subjects of each class,
    so each network's inner validation split can hold both classes."""
    from sklearn_leuko.datasets import make_cells

    return make_cells(n_subjects=16, cells_per_subject=4, image_size=24, random_state=0)


@pytest.fixture(scope="module")
def protocol(protocol_cells):
    cells = protocol_cells
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = run_protocol(
            cells.images,
            cells.target,
            cells.groups,
            stages=["1", "3C"],
            n_splits=2,
            test_subjects=2,
            net_params=TINY,
            random_state=0,
            progress=False,
        )
    return result, record


def test_split_test_subjects_is_subject_level_and_stratified(cells):
    mask = split_test_subjects(cells.target, cells.groups, 3, random_state=0)
    test_subjects = set(cells.groups[mask])
    assert len(test_subjects) == 3
    assert not test_subjects & set(cells.groups[~mask])
    labels = {cells.target[cells.groups == s][0] for s in test_subjects}
    assert labels == {"all", "hem"}


def test_split_test_subjects_ids_fraction_and_none(cells):
    mask = split_test_subjects(cells.target, cells.groups, ["H1", "2"])
    assert set(cells.groups[mask]) == {"H1", "2"}
    assert (
        split_test_subjects(cells.target, cells.groups, 0.2, random_state=0).sum() == 8
    )
    assert not split_test_subjects(cells.target, cells.groups, None).any()
    assert not split_test_subjects(cells.target, cells.groups, 0).any()


@pytest.mark.parametrize(
    "bad, match",
    [(["nobody"], "not in groups"), (10, "between 0 and 9"), (1.5, "fraction")],
)
def test_split_test_subjects_errors(cells, bad, match):
    with pytest.raises(ValueError, match=match):
        split_test_subjects(cells.target, cells.groups, bad)


def test_table2_layout(protocol):
    result, _ = protocol
    table = protocol_tables(result).table2
    assert table.index.tolist() == ["Stage-1", "Stage-3C"]
    assert list(dict.fromkeys(table.columns.get_level_values(0))) == [
        "Val0",
        "Val1",
        "Mean",
        "Test",
    ]
    assert {"Acc", "F1-N", "F1-C", "F1-W"} == set(table.columns.get_level_values(1))
    values = table.to_numpy()
    assert np.all((values >= 0) & (values <= 100))


def test_folds_and_test_set_are_subject_disjoint(protocol, protocol_cells):
    cells = protocol_cells
    result, _ = protocol
    g = cells.groups
    test = set(g[result.test_index])
    assert len(test) == 2
    seen = []
    for train, val in result.folds:
        assert not set(g[train]) & set(g[val])
        assert not (set(g[train]) | set(g[val])) & test
        seen.extend(val.tolist())
    # every non-test cell is validated exactly once
    assert sorted(seen) == sorted(set(range(len(g))) - set(result.test_index.tolist()))


def test_networks_trained_once_and_fused_prefit(protocol):
    result, _ = protocol
    for k in range(2):
        fusion = result.estimators["Stage-3C"][k]
        assert isinstance(fusion, FeatureFusionClassifier)
        assert fusion.cv == "prefit"
        # the fusion's Stage-1 network is the Stage-1 row's model of that fold
        assert fusion.estimators_[0] is result.estimators["Stage-1"][k]


def test_groups_reach_every_network(protocol):
    result, record = protocol
    assert not [w for w in record if issubclass(w.category, CellLevelSplitWarning)]
    for k in range(2):
        for pipe in result.estimators["Stage-3C"][k].estimators_:
            assert pipe[-1].best_epoch_ is not None


def test_test_column_uses_best_validation_fold(protocol):
    result, _ = protocol
    for label in result.stages:
        acc = result.cv_results[label]["test_accuracy"]
        best = result.test_fold[label]
        assert acc[best] == acc.max()
        assert result.test_metrics[label] == result.test_metrics_per_fold[label][best]
        expected = round(100 * result.test_metrics[label]["accuracy"], 2)
        assert protocol_tables(result).table2.loc[label, ("Test", "Acc")] == expected


def test_predictions_subjects_and_histories(protocol, protocol_cells):
    result, _ = protocol
    cells_frame = result.predictions["Stage-1"]
    assert set(cells_frame["split"]) == {"val", "test"}
    test_rows = cells_frame[cells_frame["split"] == "test"]
    assert sorted(test_rows["index"]) == sorted(result.test_index)
    assert np.all((cells_frame["p_all"] >= 0) & (cells_frame["p_all"] <= 1))
    tables = protocol_tables(result)
    subjects = tables.subjects["Stage-1"]
    assert len(subjects) == 16  # every subject diagnosed once (14 val + 2 test)
    acc = tables.subject_accuracy["Stage-1"]
    assert acc["val"] == subjects.loc[subjects["split"] == "val", "correct"].mean()
    assert len(result.histories["Stage-1"]) == 2
    assert "valid_acc" in result.histories["Stage-1"][0][0]
    assert "Stage-3C" not in result.histories  # fusion trains no network
    assert result.best_stage in result.stages


def test_no_test_set_gives_no_test_column(cells):
    result = run_protocol(
        cells.images,
        cells.target,
        cells.groups,
        stages=["1"],
        n_splits=2,
        test_subjects=0,
        net_params=TINY,
        progress=False,
    )
    tables = protocol_tables(result)
    assert "Test" not in tables.table2.columns.get_level_values(0)
    assert result.test_metrics == {}
    assert np.isnan(tables.subject_accuracy["Stage-1"]["test"])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"groups": None}, ValueError, "groups is required"),
        ({"n_splits": 9}, ValueError, "subjects outside the test set"),
        ({"stages": ["4"]}, ValueError, "Unknown stage"),
        ({"n_splits": 1}, ValueError, "n_splits"),
        ({"stage_params": [("1", {})]}, TypeError, "stage_params"),
    ],
)
def test_run_protocol_errors(cells, kwargs, error, match):
    args = {
        "groups": cells.groups,
        "stages": ["1"],
        "progress": False,
        "net_params": TINY,
    }
    args.update(kwargs)
    groups = args.pop("groups")
    with pytest.raises(error, match=match):
        run_protocol(cells.images, cells.target, groups, **args)


def test_fit_stage_fusion_uses_prefit_networks(cells):
    model = fit_stage(
        "3c",
        cells.images,
        cells.target,
        cells.groups,
        net_params={**TINY, "verbose": 0},
    )
    assert isinstance(model, FeatureFusionClassifier)
    assert model.cv == "prefit"
    assert [name for name, _ in model.estimators] == ["stage1", "stage2c"]
    assert model.predict(cells.images[:3]).shape == (3,)


def test_result_is_raw_and_records_its_settings(protocol):
    result, _ = protocol
    assert "table2" not in result  # tables are made by sklearn_leuko.report
    assert result.settings["epoch_selection"] == "inner"
    assert result.settings["stages"] == ["1", "3C"]
    assert result.stage_names == {"Stage-1": "1", "Stage-3C": "3C"}
    assert len(result.test_subjects) == 2


def test_text_report_names_the_test_subjects(protocol):
    result, _ = protocol
    text = format_protocol_report(result)
    assert "Table 2" in text
    for subject in result.test_subjects:
        assert subject in text
    assert "validation_fold" not in text


def test_epoch_selection_validation_fold_uses_the_reported_fold(cells):
    result = run_protocol(
        cells.images,
        cells.target,
        cells.groups,
        stages=["1"],
        n_splits=2,
        test_subjects=2,
        net_params={**TINY, "max_epochs": 3},
        epoch_selection="validation_fold",
        progress=False,
    )
    for k in range(len(result.folds)):
        net = result.estimators["Stage-1"][k][-1]
        history = net.history_
        # the kept epoch is the best one on the validation fold itself ...
        best = int(np.argmax(history[:, "valid_acc"])) + 1
        assert net.best_epoch_ == best
        # ... whose accuracy is the one reported for the fold
        reported = result.cv_results["Stage-1"]["test_accuracy"][k]
        assert history[best - 1, "valid_acc"] == pytest.approx(reported)
    assert "optimistic" in format_protocol_report(result)


def test_epoch_selection_is_validated(cells):
    with pytest.raises(ValueError, match="epoch_selection"):
        run_protocol(
            cells.images,
            cells.target,
            cells.groups,
            stages=["1"],
            n_splits=2,
            epoch_selection="test",
            progress=False,
        )
