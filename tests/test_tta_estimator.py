"""Test-time augmentation through the estimators: ``LeukoNetClassifier(tta=...)``,
``FeatureFusionClassifier(tta=...)`` and ``make_stage(..., tta=...)``."""

import json
import pickle

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.base import clone

from sklearn_leuko import (
    FeatureFusionClassifier,
    LeukoNetClassifier,
    load_safetensors,
    make_stage,
    save_safetensors,
)
from sklearn_leuko.preprocessing import StainDeconvolution

# Small batches and a few epochs: the batch-norm statistics settle, so the
# outputs depend on the cell and on its orientation (after one batch they are
# nearly constant and any average would pass).
TINY = dict(
    widths=(4, 4, 8, 8, 8, 8),
    batch_size=4,
    max_epochs=5,
    validation_fraction=None,
    verbose=0,
    random_state=0,
)


def hand_views(X):
    """The eight views of DIHEDRAL_VIEWS, in its order, made with NumPy."""
    return [
        X,
        X[:, :, ::-1],  # hflip
        X[:, ::-1],  # vflip
        X[:, ::-1, ::-1],  # rot180
        np.rot90(X, 1, axes=(1, 2)),  # rot90 (counter-clockwise)
        np.rot90(X, 3, axes=(1, 2)),  # rot270
        X.transpose(0, 2, 1, 3),  # transpose
        X[:, ::-1, ::-1].transpose(0, 2, 1, 3),  # anti-transpose
    ]


def hand_mean(method, X, n_views):
    return np.mean(
        [method(np.ascontiguousarray(v)) for v in hand_views(X)[:n_views]], axis=0
    )


@pytest.fixture(scope="module")
def fitted(tiny_cells):
    return LeukoNetClassifier(preprocessing="od", **TINY).fit(
        tiny_cells.images, tiny_cells.target
    )


@pytest.fixture
def clf(fitted):
    """The fitted classifier, its tta reset after each test."""
    yield fitted
    fitted.set_params(tta=False)


@pytest.fixture(scope="module")
def X(tiny_cells):
    return tiny_cells.images[:16]


# ------------------------------------------------------------ the average
@pytest.mark.parametrize("n_views", [2, 4, 8])
def test_proba_is_the_mean_over_the_views_made_by_hand(clf, X, n_views):
    expected = hand_mean(clf.predict_proba, X, n_views)
    got = clf.set_params(tta=n_views).predict_proba(X)
    assert got.dtype == np.float64 and got.shape == (len(X), 2)
    assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
    # The views matter for this model: the test could fail.
    plain = clf.set_params(tta=False).predict_proba(X)
    assert np.abs(got - plain).max() > 1e-3


def test_true_means_eight_views(clf, X):
    eight = clf.set_params(tta=8).predict_proba(X)
    assert_array_equal(clf.set_params(tta=True).predict_proba(X), eight)


@pytest.mark.parametrize("tta", [False, 1, np.int64(1), np.False_])
def test_one_view_is_plain_prediction(clf, X, tta):
    plain = {
        m: getattr(clf, m)(X)
        for m in ("predict_proba", "predict", "decision_function", "transform")
    }
    clf.set_params(tta=tta)
    for method, expected in plain.items():
        assert_array_equal(getattr(clf, method)(X), expected, err_msg=method)


def test_transform_is_the_mean_of_the_features_over_the_views(clf, X):
    expected = hand_mean(clf.transform, X, 8)
    got = clf.set_params(tta=8).transform(X)
    assert got.dtype == np.float32 and got.shape == (len(X), clf.n_features_out_)
    assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.abs(got - clf.set_params(tta=1).transform(X)).max() > 1e-3


def test_predict_and_decision_follow_the_averaged_proba(clf, X):
    clf.set_params(tta=8)
    proba = clf.predict_proba(X)
    assert_array_equal(clf.predict(X), clf.classes_[np.argmax(proba, axis=1)])
    scores = clf.decision_function(X)
    assert_allclose(scores, np.log(proba[:, 1] / proba[:, 0]), rtol=1e-5, atol=1e-6)
    assert_array_equal(scores > 0, clf.predict(X) == clf.classes_[1])


def test_set_after_fit_changes_no_weight(clf, X):
    module = clf.net_.module_
    before = {k: v.clone() for k, v in module.state_dict().items()}
    plain = clf.predict_proba(X)
    clf.set_params(tta=8).predict_proba(X)
    clf.set_params(tta=4).transform(X)
    clf.set_params(tta=2).decision_function(X)
    assert clf.net_.module_ is module
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not module.training
    assert all(p.grad is None for p in module.parameters())
    assert_array_equal(clf.set_params(tta=False).predict_proba(X), plain)


def test_training_ignores_tta(tiny_cells):
    X, y = tiny_cells.images, tiny_cells.target
    plain = LeukoNetClassifier(preprocessing="od", **TINY).fit(X, y)
    with_tta = LeukoNetClassifier(preprocessing="od", tta=8, **TINY).fit(X, y)
    for key, value in plain.net_.module_.state_dict().items():
        assert torch.equal(with_tta.net_.module_.state_dict()[key], value), key
    assert_array_equal(
        with_tta.set_params(tta=False).predict_proba(X), plain.predict_proba(X)
    )


# ------------------------------------------------------------- refusals
@pytest.mark.parametrize("bad", [3, 0, 16, 1.5, 8.0, "yes", "8", None])
def test_invalid_values_are_refused_at_predict_and_fit(clf, X, tiny_cells, bad):
    clf.set_params(tta=bad)
    for method in ("predict_proba", "predict", "decision_function", "transform"):
        with pytest.raises(ValueError, match=r"tta must be one of False, True, 1, 2"):
            getattr(clf, method)(X)
    with pytest.raises(ValueError, match="'tta' parameter of LeukoNetClassifier"):
        clone(clf).fit(tiny_cells.images, tiny_cells.target)


def test_preprocessed_float_input_is_refused_with_the_fix(tiny_cells):
    od = StainDeconvolution().fit_transform(tiny_cells.images)
    clf = LeukoNetClassifier(**TINY).fit(od, tiny_cells.target)
    assert_array_equal(clf.set_params(tta=1).predict_proba(od), clf.predict_proba(od))
    clf.set_params(tta=2)
    for method in ("predict_proba", "transform", "decision_function"):
        with pytest.raises(ValueError, match=r"raw uint8 RGB images.*preprocessing="):
            getattr(clf, method)(od)
    # Refused before training, too.
    with pytest.raises(ValueError, match="DCT of a flipped cell"):
        LeukoNetClassifier(tta=8, **TINY).fit(od, tiny_cells.target)


def test_non_square_images_take_four_views_not_eight(tiny_cells):
    X = np.ascontiguousarray(tiny_cells.images[:, :, 4:28])  # 32 x 24
    clf = LeukoNetClassifier(preprocessing="od", **TINY).fit(X, tiny_cells.target)
    with pytest.raises(ValueError, match=r"32x24 images; use tta=4"):
        clf.set_params(tta=8).predict_proba(X)
    with pytest.raises(ValueError, match="use tta=4"):
        clf.set_params(tta=True).transform(X)
    expected = hand_mean(clf.set_params(tta=1).predict_proba, X, 4)
    assert_allclose(clf.set_params(tta=4).predict_proba(X), expected, atol=1e-5)
    with pytest.raises(ValueError, match="use tta=4"):
        clone(clf).set_params(tta=8).fit(X, tiny_cells.target)


# ----------------------------------------------------------- persistence
def test_joblib_and_safetensors_keep_tta(clf, X, tmp_path):
    clf.set_params(tta=4)
    expected = clf.predict_proba(X)
    joblib.dump(clf, tmp_path / "m.joblib")
    save_safetensors(clf, tmp_path / "m.safetensors")
    for loaded in (
        joblib.load(tmp_path / "m.joblib"),
        load_safetensors(tmp_path / "m.safetensors"),
    ):
        assert loaded.tta == 4
        assert_array_equal(loaded.predict_proba(X), expected)
    clf.set_params(tta=True)
    save_safetensors(clf, tmp_path / "true.safetensors")
    assert load_safetensors(tmp_path / "true.safetensors").tta is True


def test_old_pickle_without_tta_loads_without_augmentation(clf, X):
    old = pickle.loads(pickle.dumps(clf))
    del old.__dict__["tta"]  # as pickled before the parameter existed
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.tta is False
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_old_safetensors_file_without_tta_loads_without_augmentation(clf, X, tmp_path):
    from sklearn_leuko._persistence._schema import file_digest

    path = tmp_path / "old.safetensors"
    save_safetensors(clf.set_params(tta=8), path)
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    config = json.loads(metadata["config"])
    del config["params"]["tta"]
    metadata["config"] = json.dumps(config)
    metadata["digest"] = file_digest(metadata, tensors)
    save_file(tensors, path, metadata=metadata)
    loaded = load_safetensors(path)
    assert loaded.tta is False
    assert_array_equal(loaded.predict_proba(X), clf.set_params(tta=1).predict_proba(X))


# ----------------------------------------------------------- fused stages
@pytest.fixture(scope="module")
def fusion(tiny_cells):
    stage = make_stage("3C", **TINY)
    return stage.fit(tiny_cells.images, tiny_cells.target, groups=tiny_cells.groups)


def test_nested_names_of_the_networks_tta(fusion):
    params = make_stage("3C").get_params()
    assert params["tta"] is None
    assert params["stage1__net__tta"] is False
    assert params["stage2c__net__tta"] is False
    assert fusion.get_params()["tta"] is None


def test_make_stage_gives_tta_to_the_fusion_and_to_a_single_network():
    stage = make_stage("3C", tta=8)
    assert stage.tta == 8
    assert stage.get_params()["stage1__net__tta"] is False
    assert make_stage("1", tta=4).get_params()["net__tta"] == 4


def test_fusion_tta_averages_every_networks_features(fusion, X):
    nets = [est.steps[-1][1] for est in fusion.estimators_]
    expected = np.hstack([net.set_params(tta=8).transform(X) for net in nets])
    for net in nets:
        net.set_params(tta=False)
    plain = fusion.transform(X)
    got = fusion.set_params(tta=8).transform(X)
    try:
        assert_allclose(got, expected, rtol=0, atol=1e-6)
        assert np.abs(got - plain).max() > 1e-3
        final = fusion.final_estimator_
        assert_allclose(fusion.predict_proba(X), final.predict_proba(expected))
        assert_array_equal(fusion.predict(X), fusion.classes_[final.predict(expected)])
        # The networks get their own value back.
        assert [net.tta for net in nets] == [False, False]
    finally:
        fusion.set_params(tta=None)
    assert_array_equal(fusion.transform(X), plain)


def test_fusion_without_tta_uses_the_networks_own(fusion, X):
    fitted = fusion.named_estimators_["stage1"]
    expected = fitted.set_params(net__tta=4).transform(X)
    try:
        assert_allclose(fusion.transform(X)[:, : expected.shape[1]], expected)
        # The nested name reaches the unfitted template, not the fitted clone.
        fusion.set_params(stage1__net__tta=8)
        assert fitted.get_params()["net__tta"] == 4
    finally:
        fitted.set_params(net__tta=False)
        fusion.set_params(stage1__net__tta=False)


def test_fusion_refuses_invalid_tta_and_tta_without_networks(fusion, X):
    with pytest.raises(ValueError, match="tta must be one of"):
        fusion.set_params(tta=3).predict(X)
    fusion.set_params(tta=None)
    from sklearn.decomposition import PCA

    flat = X.reshape(len(X), -1).astype(float)
    y = np.array(["all", "hem"] * 8)
    pca = FeatureFusionClassifier([("a", PCA(2))], tta=4).fit(flat, y)
    with pytest.raises(ValueError, match="none of the base estimators has a tta"):
        pca.predict(flat)
    assert_array_equal(pca.set_params(tta=None).predict(flat), pca.predict(flat))


def test_fusion_tta_survives_pickle_and_safetensors(fusion, X, tmp_path):
    fusion.set_params(tta=2)
    try:
        expected = fusion.predict_proba(X)
        save_safetensors(fusion, tmp_path / "f.safetensors")
        for loaded in (
            pickle.loads(pickle.dumps(fusion)),
            load_safetensors(tmp_path / "f.safetensors"),
        ):
            assert loaded.tta == 2
            assert_allclose(loaded.predict_proba(X), expected, rtol=0, atol=1e-12)
        old = pickle.loads(pickle.dumps(fusion))
        del old.__dict__["tta"]
        assert pickle.loads(pickle.dumps(old)).tta is None
    finally:
        fusion.set_params(tta=None)
