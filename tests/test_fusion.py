"""FeatureFusionClassifier (Stage-3/3C) and fit_with_groups."""

import subprocess
import sys
import textwrap
import warnings

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError, UnsetMetadataPassedError
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    ShuffleSplit,
    StratifiedGroupKFold,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_leuko import FeatureFusionClassifier, LeukoNetClassifier, make_stage
from sklearn_leuko._classifier import CellLevelSplitWarning
from sklearn_leuko.utils._groups import fit_with_groups, groups_fit_params

TINY = dict(
    widths=(4, 4, 8, 8, 8, 8), max_epochs=2, batch_size=16, verbose=0, random_state=0
)


# ---------------------------------------------------------------- test doubles
class SpyTransformer(TransformerMixin, BaseEstimator):
    """Base estimator on ``X[:, 0]`` = row id: records what it was fitted on.

    Its single feature is 1.0 for a row it was fitted on and 0.0 otherwise,
    so any in-sample feature reaching the final estimator is visible.
    """

    log = []

    def fit(self, X, y, groups=None):
        self.fit_ids_ = set(np.asarray(X)[:, 0].astype(int).tolist())
        self.groups_ = None if groups is None else np.asarray(groups)
        self.fit_rows_ = np.asarray(X)[:, 0].astype(int)
        return self

    def transform(self, X):
        ids = np.asarray(X)[:, 0].astype(int)
        SpyTransformer.log.append((self.fit_ids_, set(ids.tolist())))
        return np.array([[float(i in self.fit_ids_)] for i in ids])


class SpyFinal(ClassifierMixin, BaseEstimator):
    """Final estimator keeping the features it was trained on."""

    def fit(self, X, y):
        self.X_ = np.asarray(X)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


class SpySplitter(StratifiedGroupKFold):
    """StratifiedGroupKFold remembering the groups it was given."""

    seen_groups = []

    def split(self, X, y=None, groups=None):
        SpySplitter.seen_groups.append(None if groups is None else np.asarray(groups))
        return super().split(X, y, groups)


class GroupsConsumer(ClassifierMixin, BaseEstimator):
    def fit(self, X, y, groups=None):
        self.groups_ = groups
        self.classes_ = np.unique(y)
        return self


class RequestingConsumer(GroupsConsumer):
    __metadata_request__fit = {"groups": True}


def _ids_data(n_subjects=8, per_subject=4):
    n = n_subjects * per_subject
    X = np.column_stack([np.arange(n), np.random.default_rng(0).normal(size=n)])
    groups = np.repeat([f"S{i}" for i in range(n_subjects)], per_subject)
    y = np.where(np.repeat(np.arange(n_subjects) % 2 == 0, per_subject), "all", "hem")
    return X, y, groups


@pytest.fixture(scope="module")
def fitted_3c(tiny_cells):
    d = tiny_cells
    return make_stage("3C", **TINY).fit(d.images, d.target, groups=d.groups)


# ------------------------------------------------------------ fit_with_groups
def test_fit_with_groups_routing_off_pipeline_gets_last_step_groups():
    X, y, g = _ids_data()
    pipe = fit_with_groups(
        Pipeline([("scale", StandardScaler()), ("net", GroupsConsumer())]), X, y, g
    )
    np.testing.assert_array_equal(pipe[-1].groups_, g)


def test_fit_with_groups_routing_off_nested_pipeline():
    X, y, g = _ids_data()
    inner = Pipeline([("net", GroupsConsumer())])
    outer = Pipeline([("scale", StandardScaler()), ("inner", inner)])
    assert list(groups_fit_params(outer, g)) == ["inner__net__groups"]
    fit_with_groups(outer, X, y, g)
    np.testing.assert_array_equal(outer[-1][-1].groups_, g)


def test_fit_with_groups_routing_off_plain_estimators():
    X, y, g = _ids_data()
    est = fit_with_groups(GroupsConsumer(), X, y, g)
    np.testing.assert_array_equal(est.groups_, g)
    # no groups in fit's signature: plain fit, no TypeError
    assert fit_with_groups(LogisticRegression(), X, y, g).coef_.shape == (1, 2)
    assert groups_fit_params(Pipeline([("lr", LogisticRegression())]), g) == {}
    assert groups_fit_params(GroupsConsumer(), None) == {}


def test_fit_with_groups_routing_on():
    X, y, g = _ids_data()
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = fit_with_groups(Pipeline([("net", RequestingConsumer())]), X, y, g)
        np.testing.assert_array_equal(pipe[-1].groups_, g)
        # the pipeline is a router: it routes ``groups``, not ``net__groups``
        assert list(groups_fit_params(pipe, g)) == ["groups"]
        declined = Pipeline(
            [("net", RequestingConsumer().set_fit_request(groups=False))]
        )
        assert fit_with_groups(declined, X, y, g)[-1].groups_ is None
        assert fit_with_groups(LogisticRegression(), X, y, g).coef_.shape == (1, 2)
        # a consumer that never said whether it wants groups: scikit-learn's
        # own error, not a silent drop
        with pytest.raises(UnsetMetadataPassedError):
            fit_with_groups(Pipeline([("net", GroupsConsumer())]), X, y, g)


def test_fit_with_groups_routing_on_real_network(tiny_cells):
    d = tiny_cells
    with (
        sklearn.config_context(enable_metadata_routing=True),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error", CellLevelSplitWarning)
        pipe = fit_with_groups(make_stage("1", **TINY), d.images, d.target, d.groups)
    assert pipe.predict(d.images[:4]).shape == (4,)


# ----------------------------------------------------------- fusion: the stages
@pytest.mark.parametrize("stage", ["3", "3C"])
@pytest.mark.parametrize("cv", ["in_sample", 2])
def test_fusion_stage_fits_and_predicts(tiny_cells, stage, cv):
    d = tiny_cells
    fusion = make_stage(stage, cv=cv, **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CellLevelSplitWarning)
        fusion.fit(d.images, d.target, groups=d.groups)
    pred = fusion.predict(d.images)
    assert set(pred) <= {"all", "hem"} and pred.shape == (len(d.images),)
    proba = fusion.predict_proba(d.images)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(fusion.classes_, ["all", "hem"])
    widths = [est[-1].n_features_out_ for est in fusion.estimators_]
    assert fusion.transform(d.images).shape == (len(d.images), sum(widths))
    assert fusion.decision_function(d.images).shape == (len(d.images),)
    assert 0.0 <= fusion.score(d.images, d.target) <= 1.0


def test_fusion_prefit_uses_given_networks_unchanged(tiny_cells, fitted_3c):
    d = tiny_cells
    bases = [
        (name, fitted_3c.named_estimators_[name]) for name in ("stage1", "stage2c")
    ]
    modules = [est[-1].net_.module_ for _, est in bases]
    fusion = FeatureFusionClassifier(bases, cv="prefit").fit(d.images, d.target)
    assert [est for est in fusion.estimators_] == [est for _, est in bases]
    assert [est[-1].net_.module_ for est in fusion.estimators_] == modules
    np.testing.assert_array_equal(
        fusion.transform(d.images), fitted_3c.transform(d.images)
    )


def test_fusion_prefit_refuses_labels_the_networks_never_saw(tiny_cells, fitted_3c):
    d = tiny_cells
    bases = [
        (name, fitted_3c.named_estimators_[name]) for name in ("stage1", "stage2c")
    ]
    # the networks learnt "all"/"hem"; the same classes in the integer coding
    # are labels they never saw (labels outside C-NMC fail earlier, in
    # check_targets)
    y = np.where(d.target == "all", 1, 0)
    with pytest.raises(ValueError, match=r"y has labels \[.*0.*1.*\] that the prefit"):
        FeatureFusionClassifier(bases, cv="prefit").fit(d.images, y)
    y = d.target.astype(object)
    y[:3] = "blast"
    with pytest.raises(ValueError, match=r"y has labels \['blast'\]"):
        FeatureFusionClassifier(bases, cv="prefit").fit(d.images, y)


def test_fusion_prefit_refuses_unfitted(tiny_cells):
    d = tiny_cells
    fusion = make_stage("3", cv="prefit", **TINY)
    with pytest.raises(NotFittedError, match="cv='prefit'"):
        fusion.fit(d.images, d.target)


def test_out_of_fold_features_never_come_from_a_base_trained_on_the_cell():
    X, y, g = _ids_data()
    SpyTransformer.log.clear()
    fusion = FeatureFusionClassifier(
        [("a", SpyTransformer()), ("b", SpyTransformer())], SpyFinal(), cv=4
    ).fit(X, y, groups=g)
    # every training feature says "not fitted on this row"
    assert fusion.final_estimator_.X_.shape == (len(X), 2)
    assert not fusion.final_estimator_.X_.any()
    assert len(SpyTransformer.log) == 2 * 4  # one held-out transform per base and fold
    for fit_ids, transformed in SpyTransformer.log:
        assert not fit_ids & transformed
    # the refitted estimators_ saw everything
    assert all(est.fit_ids_ == set(range(len(X))) for est in fusion.estimators_)
    # in-sample fusion (the paper's protocol) is the opposite: all ones
    in_sample = FeatureFusionClassifier([("a", SpyTransformer())], SpyFinal()).fit(X, y)
    assert in_sample.final_estimator_.X_.all()


def test_out_of_fold_folds_are_subject_level_and_bases_get_groups():
    X, y, g = _ids_data()
    SpyTransformer.log.clear()
    FeatureFusionClassifier([("a", SpyTransformer())], SpyFinal(), cv=4).fit(
        X, y, groups=g
    )
    for fit_ids, transformed in SpyTransformer.log:
        fit_subjects = set(g[sorted(fit_ids)])
        assert not fit_subjects & set(g[sorted(transformed)])


def test_groups_reach_the_inner_splitter_and_fold_fits():
    X, y, g = _ids_data()
    SpySplitter.seen_groups.clear()
    fusion = FeatureFusionClassifier(
        [("a", Pipeline([("spy", SpyTransformer())]))], SpyFinal(), cv=SpySplitter(2)
    ).fit(X, y, groups=g)
    assert len(SpySplitter.seen_groups) == 1
    np.testing.assert_array_equal(SpySplitter.seen_groups[0], g)
    refit = fusion.estimators_[0][-1]
    np.testing.assert_array_equal(refit.groups_, g[refit.fit_rows_])


def test_groups_reach_the_fusion_under_routing_in_grid_search():
    X, y, g = _ids_data()
    SpySplitter.seen_groups.clear()
    fusion = FeatureFusionClassifier(
        [("a", SpyTransformer())], LogisticRegression(), cv=SpySplitter(2)
    )
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            fusion, {"final_estimator__C": [0.1, 1.0]}, cv=StratifiedGroupKFold(2)
        )
        search.fit(X, y, groups=g)
    # 2 candidates x 2 outer folds + the refit, each splitting with groups
    assert len(SpySplitter.seen_groups) == 5
    assert all(seen is not None for seen in SpySplitter.seen_groups)


def test_int_cv_without_groups_warns_cell_level():
    X, y, _ = _ids_data()
    with pytest.warns(CellLevelSplitWarning, match="cell-level folds"):
        FeatureFusionClassifier([("a", SpyTransformer())], SpyFinal(), cv=2).fit(X, y)


@pytest.mark.filterwarnings("ignore:The groups parameter is ignored:UserWarning")
def test_non_group_splitter_with_groups_warns_about_leaks():
    X, y, g = _ids_data()
    with pytest.warns(CellLevelSplitWarning, match="same subject"):
        FeatureFusionClassifier(
            [("a", SpyTransformer())],
            SpyFinal(),
            cv=KFold(2, shuffle=True, random_state=0),
        ).fit(X, y, groups=g)


def test_cv_must_partition_the_samples():
    X, y, g = _ids_data()
    fusion = FeatureFusionClassifier(
        [("a", SpyTransformer())], SpyFinal(), cv=ShuffleSplit(2, random_state=0)
    )
    with pytest.raises(ValueError, match="partition"):
        fusion.fit(X, y)


# --------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "estimators, error, match",
    [
        ([], ValueError, "non-empty list"),
        ([("a", PCA(1)), ("a", PCA(1))], ValueError, "unique"),
        ([("a__b", PCA(1))], ValueError, "__"),
        ([("a", LogisticRegression())], TypeError, "no 'transform'"),
        ([("a", "drop")], ValueError, "at least one"),
    ],
)
def test_invalid_estimators(estimators, error, match):
    X, y, _ = _ids_data()
    with pytest.raises(error, match=match):
        FeatureFusionClassifier(estimators).fit(X, y)


@pytest.mark.parametrize("cv, match", [("foo", "cv"), (1, "cv"), (None, "cv=None")])
def test_invalid_cv(cv, match):
    X, y, _ = _ids_data()
    with pytest.raises(ValueError, match=match):
        FeatureFusionClassifier([("a", PCA(1))], cv=cv).fit(X, y)


def test_final_estimator_must_be_a_classifier():
    X, y, _ = _ids_data()
    with pytest.raises(TypeError, match="final_estimator must be a classifier"):
        FeatureFusionClassifier([("a", PCA(1))], LinearRegression()).fit(X, y)


def test_methods_need_fit():
    X, _, _ = _ids_data()
    fusion = FeatureFusionClassifier([("a", PCA(1))])
    for method in ("predict", "predict_proba", "transform", "decision_function"):
        with pytest.raises(NotFittedError):
            getattr(fusion, method)(X)


def test_decision_function_only_when_final_has_it():
    X, y, _ = _ids_data()
    fusion = FeatureFusionClassifier([("a", PCA(1))], KNeighborsClassifier(3)).fit(X, y)
    assert not hasattr(fusion, "decision_function")
    assert hasattr(fusion, "predict_proba")


def test_drop_an_estimator_and_nested_params():
    X, y, _ = _ids_data()
    fusion = FeatureFusionClassifier(
        [("a", PCA(1)), ("b", PCA(2))], LogisticRegression()
    )
    fusion.set_params(b="drop", a__n_components=2, final_estimator__C=0.5)
    fusion.fit(X, y)
    assert fusion.named_estimators_["b"] == "drop"
    assert fusion.transform(X).shape == (len(X), 2)
    assert fusion.final_estimator_.C == 0.5
    assert list(fusion.get_feature_names_out()) == ["a_0", "a_1"]


def test_n_jobs_gives_the_same_result():
    X, y, g = _ids_data()
    est = [("a", PCA(1)), ("b", PCA(2))]
    serial = FeatureFusionClassifier(est, cv=2).fit(X, y, groups=g)
    parallel = FeatureFusionClassifier(est, cv=2, n_jobs=2).fit(X, y, groups=g)
    np.testing.assert_allclose(serial.predict_proba(X), parallel.predict_proba(X))


# ------------------------------------------------- clone, search, persistence
def test_clone_and_nested_params_of_a_stage():
    fusion = make_stage("3C", **TINY)
    fusion.set_params(stage1__net__activation="prelu", final_estimator__C=3.0)
    twin = clone(fusion)
    params = twin.get_params()
    assert params["stage1__net__activation"] == "prelu"
    assert params["stage2c__net__activation"] == "relu"
    assert params["final_estimator__C"] == 3.0
    assert twin.estimators[0][1] is not fusion.estimators[0][1]


@pytest.mark.slow
def test_grid_search_over_a_fusion_stage(tiny_cells):
    d = tiny_cells
    fusion = make_stage("3", **{**TINY, "max_epochs": 1})
    grid = {
        "stage1__net__activation": ["relu", "prelu"],
        "final_estimator__C": [0.1, 1.0],
    }
    with (
        sklearn.config_context(enable_metadata_routing=True),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error", CellLevelSplitWarning)
        search = GridSearchCV(fusion, grid, cv=GroupKFold(2)).fit(
            d.images, d.target, groups=d.groups
        )
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["stage1__net__activation"] in {"relu", "prelu"}
    assert search.best_estimator_.predict(d.images[:3]).shape == (3,)


def test_joblib_round_trip_in_a_fresh_process(tiny_cells, fitted_3c, tmp_path):
    d = tiny_cells
    joblib.dump(fitted_3c, tmp_path / "stage3c.joblib")
    np.save(tmp_path / "images.npy", d.images)
    script = textwrap.dedent(
        f"""
        import joblib, numpy as np
        model = joblib.load({str(tmp_path / "stage3c.joblib")!r})
        X = np.load({str(tmp_path / "images.npy")!r})
        np.save({str(tmp_path / "proba.npy")!r}, model.predict_proba(X))
        np.save({str(tmp_path / "pred.npy")!r}, model.predict(X))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    np.testing.assert_array_equal(
        np.load(tmp_path / "pred.npy"), fitted_3c.predict(d.images)
    )
    np.testing.assert_array_equal(
        np.load(tmp_path / "proba.npy"), fitted_3c.predict_proba(d.images)
    )


def test_fusion_of_networks_in_transformer_form(tiny_cells):
    from sklearn_leuko.preprocessing import StainDeconvolution

    d = tiny_cells
    stage1 = Pipeline(
        [("od", StainDeconvolution()), ("net", LeukoNetClassifier(**TINY))]
    )
    fusion = FeatureFusionClassifier([("stage1", stage1)], cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CellLevelSplitWarning)
        fusion.fit(d.images, d.target, groups=d.groups)
    assert fusion.predict(d.images).shape == (len(d.images),)
