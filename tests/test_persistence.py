"""Safe model files (save_safetensors / load_safetensors) and joblib version warnings."""

import io
import json
import pickle
import re

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import sklearn_leuko
from sklearn_leuko import (
    FeatureFusionClassifier,
    LeukoNetClassifier,
    load_safetensors,
    make_stage,
    save_safetensors,
)
from sklearn_leuko._persistence import FORMAT, FORMAT_VERSION
from sklearn_leuko.preprocessing import ChannelUnion, LogDCT, StainDeconvolution

WIDTHS = (4, 4, 8, 8, 8, 8)
TINY = dict(max_epochs=1, batch_size=16, verbose=0, random_state=0)


def _stage_params(name):
    widths = WIDTHS + (8, 8) if name == "vgg11" else WIDTHS
    return dict(widths=widths, **TINY)


@pytest.fixture(scope="module")
def stages(tiny_cells):
    """Every stage of make_stage, fitted on the tiny data (6 networks in all)."""
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    fitted = {}
    for name in ("1", "2", "2C", "vgg11"):
        fitted[name] = make_stage(name, **_stage_params(name)).fit(X, y, net__groups=g)
    # Stage-3 as the paper trains it: both networks fitted inside the fusion.
    fitted["3"] = make_stage(
        "3",
        final_estimator=make_pipeline(StandardScaler(), LogisticRegression()),
        **_stage_params("3"),
    ).fit(X, y, groups=g)
    # Stage-3C from the networks fitted above, with a bare logistic regression.
    stage3c = make_stage(
        "3C", cv="prefit", final_estimator=LogisticRegression(), **_stage_params("3C")
    )
    stage3c.set_params(stage1=fitted["1"], stage2c=fitted["2C"])
    fitted["3C"] = stage3c.fit(X, y, groups=g)
    return fitted


def _roundtrip(estimator, tmp_path, name="model.safetensors"):
    path = tmp_path / name
    save_safetensors(estimator, path)
    return load_safetensors(path), path


def _assert_same_predictions(original, loaded, X):
    assert_array_equal(loaded.predict(X), original.predict(X))
    assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))
    assert_array_equal(loaded.transform(X), original.transform(X))
    assert_array_equal(loaded.decision_function(X), original.decision_function(X))


@pytest.mark.parametrize("name", ["1", "2", "2C", "vgg11", "3", "3C"])
def test_every_stage_roundtrips_with_identical_predictions(
    stages, name, tiny_cells, tmp_path
):
    original = stages[name]
    loaded, _ = _roundtrip(original, tmp_path)
    assert type(loaded) is type(original)
    assert loaded is not original
    assert repr(loaded.get_params(deep=True)) == repr(original.get_params(deep=True))
    assert_array_equal(loaded.classes_, original.classes_)
    _assert_same_predictions(original, loaded, tiny_cells.images)


def test_fitted_attributes_are_restored(stages, tmp_path):
    original = stages["2C"][-1]
    loaded, _ = _roundtrip(stages["2C"], tmp_path)
    net = loaded[-1]
    for attr in (
        "input_shape_",
        "input_kind_",
        "n_features_out_",
        "best_epoch_",
        "device_",
    ):
        assert getattr(net, attr) == getattr(original, attr), attr
    assert isinstance(net.input_shape_, tuple)
    assert net.classes_.dtype == original.classes_.dtype
    assert net.net_.device == "cpu"
    # the epoch table survives (without per-batch rows)
    assert len(net.history_) == len(original.history_)
    assert net.history_[-1, "valid_acc"] == original.history_[-1, "valid_acc"]
    assert "batches" not in net.history_[-1]
    # the fitted preprocessing: both stain matrices of the union
    for (_, a), (_, b) in zip(
        net.preprocessing_.transformers_,
        original.preprocessing_.transformers_,
        strict=True,
    ):
        stain_a = a.stain_matrix_ if hasattr(a, "stain_matrix_") else a[0].stain_matrix_
        stain_b = b.stain_matrix_ if hasattr(b, "stain_matrix_") else b[0].stain_matrix_
        assert_array_equal(stain_a, stain_b)
        assert stain_a.dtype == np.float64


def test_fusion_final_estimator_and_scaler_are_exact(stages, tmp_path):
    original = stages["3"]
    loaded, _ = _roundtrip(original, tmp_path)
    scaler, logreg = (step for _, step in loaded.final_estimator_.steps)
    ref_scaler, ref_logreg = (step for _, step in original.final_estimator_.steps)
    for attr in ("mean_", "scale_", "var_"):
        assert_array_equal(getattr(scaler, attr), getattr(ref_scaler, attr))
    for attr in ("coef_", "intercept_", "classes_"):
        assert_array_equal(getattr(logreg, attr), getattr(ref_logreg, attr))
        assert getattr(logreg, attr).dtype == getattr(ref_logreg, attr).dtype
    assert loaded.n_features_per_estimator_ == original.n_features_per_estimator_
    assert list(loaded.named_estimators_) == ["stage1", "stage2"]
    # named_estimators_ are the very objects of estimators_, as after fit
    assert loaded.named_estimators_["stage1"] is loaded.estimators_[0]


def test_prefit_fusion_shares_its_networks(stages, tmp_path):
    """cv='prefit': estimators and estimators_ are the same objects; stored once."""
    loaded, path = _roundtrip(stages["3C"], tmp_path)
    assert loaded.estimators[0][1] is loaded.estimators_[0]
    with safe_open(path, framework="pt") as handle:
        conv_weights = [k for k in handle.keys() if k.endswith("network.stem.0.weight")]
    assert len(conv_weights) == 2


def test_custom_preprocessing_ptelu_and_fitted_thresholds(tiny_cells, tmp_path):
    """A transformer as ``preprocessing`` (Macenko matrix, fitted log-DCT
    thresholds), PTELU activations and augmentation on."""
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    preprocessing = ChannelUnion(
        [
            (
                "od",
                StainDeconvolution(
                    stain_matrix="macenko", n_pixels=5000, random_state=0
                ),
            ),
            (
                "dct",
                Pipeline(
                    [
                        ("od", StainDeconvolution()),
                        ("dct", LogDCT(threshold="fit", scale=10.0)),
                    ]
                ),
            ),
        ]
    )
    clf = LeukoNetClassifier(
        preprocessing=preprocessing,
        stain_layer="fixed",  # two different stain matrices: no shared SD-Layer
        activation="ptelu",
        augment="all",
        widths=WIDTHS,
        **TINY,
    ).fit(X, y, groups=g)
    loaded, path = _roundtrip(clf, tmp_path)
    _assert_same_predictions(clf, loaded, X)
    od, dct = (t for _, t in loaded.preprocessing_.transformers_)
    assert_array_equal(
        od.stain_matrix_, clf.preprocessing_.transformers_[0][1].stain_matrix_
    )
    assert_array_equal(
        dct[-1].thresholds_, clf.preprocessing_.transformers_[1][1][-1].thresholds_
    )
    # the unfitted parameter is rebuilt as an unfitted transformer
    assert not hasattr(loaded.preprocessing.transformer_list[0][1], "stain_matrix_")
    with safe_open(path, framework="pt") as handle:
        keys = list(handle.keys())
    assert any(k.endswith(".alpha") for k in keys)  # PTELU parameters
    assert any(k.endswith("running_var") for k in keys)  # batch-norm buffers
    assert any(
        k.endswith("preprocessing_.transformers_[1][1].steps[1][1].thresholds_")
        for k in keys
    )


def test_channels_first_pipeline_roundtrips(tiny_cells, tmp_path):
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    pipe = Pipeline(
        [
            ("od", StainDeconvolution()),
            ("net", LeukoNetClassifier(widths=WIDTHS, **TINY)),
        ]
    )
    pipe.fit(X, y, net__groups=g)
    assert pipe[-1].input_kind_ == "channels_first"
    loaded, _ = _roundtrip(pipe, tmp_path)
    _assert_same_predictions(pipe, loaded, X)


def test_loading_runs_no_unpickling(stages, tiny_cells, tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    save_safetensors(stages["3"], path)

    def forbidden(*args, **kwargs):
        raise AssertionError("load_safetensors must not unpickle")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(joblib, "load", forbidden)
    loaded = load_safetensors(path)
    assert_array_equal(
        loaded.predict_proba(tiny_cells.images),
        stages["3"].predict_proba(tiny_cells.images),
    )


def test_file_is_one_safetensors_with_json_config(stages, tmp_path):
    path = tmp_path / "stage1.safetensors"
    save_safetensors(stages["1"], path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage1.safetensors"]
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == FORMAT
    assert metadata["format_version"] == str(FORMAT_VERSION)
    assert metadata["estimator"] == "sklearn.pipeline.Pipeline"
    config = json.loads(metadata["config"])
    net = config["params"]["steps"][0]["__tuple__"][1]
    assert net["__estimator__"] == "sklearn_leuko.LeukoNetClassifier"
    assert net["params"]["preprocessing"] == "od"
    assert net["state"]["classes_"]["__strarray__"] == ["all", "hem"]


def test_loading_leaves_the_global_torch_rng_alone(stages, tmp_path):
    path = tmp_path / "m.safetensors"
    save_safetensors(stages["1"], path)
    before = torch.get_rng_state()
    load_safetensors(path)
    assert torch.equal(before, torch.get_rng_state())


def test_loaded_model_clones_and_refits(stages, tiny_cells, tmp_path):
    loaded, _ = _roundtrip(stages["1"][-1], tmp_path)
    assert repr(clone(loaded)) == repr(clone(stages["1"][-1]))
    refit = loaded.fit(tiny_cells.images, tiny_cells.target, groups=tiny_cells.groups)
    assert refit.predict(tiny_cells.images[:4]).shape == (4,)


def test_custom_transformer_is_refused_with_joblib_hint(stages, tmp_path):
    clf = clone(stages["1"][-1])
    fitted = stages["1"][-1]
    clf.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    clf.preprocessing = FunctionTransformer()
    with pytest.raises(
        TypeError,
        match=r"estimator\.preprocessing.*FunctionTransformer"
        r".*joblib",
    ):
        save_safetensors(clf, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_custom_final_estimator_is_refused(stages, tiny_cells, tmp_path):
    fusion = FeatureFusionClassifier(
        [("stage1", stages["1"])],
        RandomForestClassifier(n_estimators=3, random_state=0),
        cv="prefit",
    ).fit(tiny_cells.images, tiny_cells.target)
    with pytest.raises(
        TypeError, match=r"final_estimator.*RandomForestClassifier.*joblib"
    ):
        save_safetensors(fusion, tmp_path / "m.safetensors")


def test_unsupported_estimators_are_refused(tmp_path):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    y = (y > 0).astype(int)  # the C-NMC integer coding: 1 = all, 0 = hem
    fusion = FeatureFusionClassifier([("pca", PCA(2))]).fit(X, y)
    with pytest.raises(TypeError, match=r"estimator\.estimators\[0\]\[1\].*PCA"):
        save_safetensors(fusion, tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match="RandomForestClassifier is not supported"):
        save_safetensors(RandomForestClassifier().fit(X, y), tmp_path / "m.safetensors")


def test_unfitted_estimator_is_refused(tmp_path):
    with pytest.raises(NotFittedError):
        save_safetensors(make_stage("1"), tmp_path / "m.safetensors")


def test_random_state_instance_and_callbacks_are_dropped_with_warning(stages, tmp_path):
    from skorch.callbacks import LRScheduler

    fitted = stages["1"][-1]
    clf = clone(fitted).set_params(
        random_state=np.random.RandomState(0), callbacks=[LRScheduler()]
    )
    clf.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    with pytest.warns(UserWarning) as record:
        save_safetensors(clf, tmp_path / "m.safetensors")
    messages = " ".join(str(w.message) for w in record)
    assert "estimator.random_state is a RandomState" in messages
    assert "estimator.callbacks" in messages
    loaded = load_safetensors(tmp_path / "m.safetensors")
    assert loaded.random_state is None and loaded.callbacks is None


def test_not_a_model_file_gives_clear_errors(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="is not a safetensors file"):
        load_safetensors(junk)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, other, metadata={"format": "pt"})
    with pytest.raises(ValueError, match="not an sklearn-leuko model"):
        load_safetensors(other)
    with pytest.raises(FileNotFoundError, match="No model file"):
        load_safetensors(tmp_path / "missing.safetensors")


def test_newer_format_version_is_refused(stages, tmp_path):
    path = tmp_path / "m.safetensors"
    save_safetensors(stages["1"], path)
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    metadata["format_version"] = str(FORMAT_VERSION + 1)
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(ValueError, match="Upgrade sklearn-leuko"):
        load_safetensors(path)


def test_weights_that_do_not_fit_the_network_are_refused(stages, tmp_path):
    """A missing tensor (e.g. a file from a version with another layout) is an
    error, never a network with partly initial weights."""
    path = tmp_path / "m.safetensors"
    save_safetensors(stages["1"], path)
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {
            k: handle.get_tensor(k)
            for k in handle.keys()
            if not k.endswith("classifier.weight")
        }
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(
        ValueError, match=r"stored weights of estimator\.steps.*do not fit"
    ):
        load_safetensors(path)


def test_unknown_class_in_file_is_refused(stages, tmp_path):
    """A crafted file cannot make the loader instantiate arbitrary classes."""
    path = tmp_path / "m.safetensors"
    save_safetensors(stages["1"], path)
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    metadata["config"] = metadata["config"].replace(
        '"sklearn.pipeline.Pipeline"', '"os.system"', 1
    )
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(
        ValueError, match="'os.system', which is not one of the classes"
    ):
        load_safetensors(path)


# ------------------------------------------------------- joblib / pickle files
def test_joblib_file_from_other_version_warns(stages, monkeypatch):
    """LeukoNetClassifier and FeatureFusionClassifier compare versions on load;
    the fusion warns for itself and for its networks."""
    import sklearn_leuko._classifier._versioning as classifier_module

    buffer = io.BytesIO()
    joblib.dump(stages["3"], buffer)
    monkeypatch.setattr(classifier_module, "__version__", "0.0.0-other")
    buffer.seek(0)
    saved = re.escape(sklearn_leuko.__version__)
    with pytest.warns(
        UserWarning, match=f"saved with sklearn-leuko {saved}.*save_safetensors"
    ):
        joblib.load(buffer)
