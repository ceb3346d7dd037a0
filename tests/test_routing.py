"""The scikit-learn recipes of the README: subject IDs reach the network's inner split.

REFERENCE.md ("How subject IDs travel"): with metadata routing off, a plain
``cross_validate(..., groups=g)`` gives the groups to the outer splitter only;
``params={"net__groups": g}`` carries them into the net. With routing on,
``params={"groups": g}`` and ``GridSearchCV(...).fit(X, y, groups=g)`` reach
both.
"""

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    StratifiedGroupKFold,
    cross_validate,
)

from sklearn_leuko import make_stage
from sklearn_leuko._classifier import CellLevelSplitWarning
from sklearn_leuko.metrics import CNMC_SCORING

TINY = {"widths": (4, 4, 4, 4, 4, 4), "max_epochs": 1, "verbose": 0, "random_state": 0}


@pytest.fixture(scope="module")
def cells():
    """Enough subjects that the training part of every fold holds two subjects
    of each class, so the network's inner split can hold both classes."""
    from sklearn_leuko.datasets import make_cells

    return make_cells(n_subjects=16, cells_per_subject=3, image_size=24, random_state=0)


def _cell_level_warnings(record):
    return [w for w in record if issubclass(w.category, CellLevelSplitWarning)]


def test_routing_off_net_groups_param_gives_subject_level_inner_split(cells):
    X, y, g = cells.images, cells.target, cells.groups
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = cross_validate(
            make_stage("1", **TINY),
            X,
            y,
            groups=g,
            cv=StratifiedGroupKFold(2),
            scoring=CNMC_SCORING,
            params={"net__groups": g},
            error_score="raise",
        )
    assert _cell_level_warnings(record) == []
    assert set(CNMC_SCORING) <= {
        k[len("test_") :] for k in result if k.startswith("test_")
    }
    assert np.all((result["test_accuracy"] >= 0) & (result["test_accuracy"] <= 1))


def test_routing_off_plain_groups_warns_cell_level_inner_split(cells):
    X, y, g = cells.images, cells.target, cells.groups
    with pytest.warns(CellLevelSplitWarning):
        cross_validate(
            make_stage("1", **TINY),
            X,
            y,
            groups=g,
            cv=StratifiedGroupKFold(2),
            scoring=CNMC_SCORING,
            error_score="raise",
        )


class _SpySplitter(StratifiedGroupKFold):
    """Records the groups the outer cross-validation loop receives."""

    seen = []

    def split(self, X, y=None, groups=None):
        type(self).seen.append(None if groups is None else np.asarray(groups))
        return super().split(X, y, groups)


def test_routing_on_groups_reach_outer_splitter_and_net(cells):
    X, y, g = cells.images, cells.target, cells.groups
    _SpySplitter.seen = []
    with sklearn.config_context(enable_metadata_routing=True):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            result = cross_validate(
                make_stage("1", **TINY),
                X,
                y,
                params={"groups": g},
                cv=_SpySplitter(2),
                scoring=CNMC_SCORING,
                return_estimator=True,
                error_score="raise",
            )
    assert _cell_level_warnings(record) == []
    assert any(s is not None and np.array_equal(s, g) for s in _SpySplitter.seen)
    # every fold's net kept the best epoch of a (subject-level) validation split
    assert all(est[-1].best_epoch_ is not None for est in result["estimator"])


def test_routing_on_grid_search_with_groups(cells):
    X, y, g = cells.images, cells.target, cells.groups
    with sklearn.config_context(enable_metadata_routing=True):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            search = GridSearchCV(
                make_stage("1", **TINY),
                {"net__activation": ["relu", "ptelu"]},
                cv=GroupKFold(2),
                error_score="raise",
            ).fit(X, y, groups=g)
    assert _cell_level_warnings(record) == []
    assert search.best_params_["net__activation"] in ("relu", "ptelu")
    assert len(search.cv_results_["mean_test_score"]) == 2
