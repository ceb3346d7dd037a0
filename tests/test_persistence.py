"""Safe model files (save_safetensors / load_safetensors) and joblib version warnings."""

import io
import json
import os
import pickle
import re
import stat
import subprocess
import sys
from pathlib import Path

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

DATA = Path(__file__).parent / "data"
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


def _rewrite(path, edit):
    """Edit a saved file (``edit(metadata, tensors)`` changes them in place) and
    store it with a matching digest, as a careful forger would: the schema, not
    the digest, must catch what the edit broke."""
    from sklearn_leuko._persistence._schema import file_digest

    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    edit(metadata, tensors)
    metadata["digest"] = file_digest(metadata, tensors)
    save_file(tensors, path, metadata=metadata)


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

    def drop_classifier_weight(metadata, tensors):
        (key,) = [k for k in tensors if k.endswith("classifier.weight")]
        del tensors[key]

    _rewrite(path, drop_classifier_weight)
    with pytest.raises(
        ValueError, match=r"stored weights of estimator\.steps.*do not fit"
    ):
        load_safetensors(path)


def test_unknown_class_in_file_is_refused(stages, tmp_path):
    """A crafted file cannot make the loader instantiate arbitrary classes."""
    path = tmp_path / "m.safetensors"
    save_safetensors(stages["1"], path)

    def os_system(metadata, tensors):
        metadata["config"] = metadata["config"].replace(
            '"sklearn.pipeline.Pipeline"', '"os.system"', 1
        )
        metadata["estimator"] = "os.system"

    _rewrite(path, os_system)
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


def test_joblib_dump_leaves_the_model_unchanged_for_safetensors(stages, tmp_path):
    """Pickling once must not add attributes (the version stamp) to the model:
    a safetensors export after a joblib dump would refuse them."""
    before = {name: set(vars(est)) for name, est in stages.items()}
    for est in stages.values():
        joblib.dump(est, io.BytesIO())
    assert {name: set(vars(est)) for name, est in stages.items()} == before
    save_safetensors(stages["3"], tmp_path / "after_joblib.safetensors")
    assert (tmp_path / "after_joblib.safetensors").stat().st_size > 0


# ------------------------------------------------ the schema of model files
def _edit_config(path, change, *, redigest=True):
    """Apply ``change(config_tree)`` to the file's JSON config: in place, or by
    returning ``_Replace(new_tree)``."""

    def edit(metadata, tensors):
        tree = json.loads(metadata["config"])
        out = change(tree)
        metadata["config"] = json.dumps(out.tree if isinstance(out, _Replace) else tree)

    if redigest:
        _rewrite(path, edit)
    else:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata()
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        edit(metadata, tensors)
        save_file(tensors, path, metadata=metadata)


class _Replace:
    def __init__(self, tree):
        self.tree = tree


def _net_node(tree):
    """The LeukoNetClassifier node of a stage-1/vgg11 Pipeline config."""
    return tree["params"]["steps"][0]["__tuple__"][1]


def _set(node_path, value):
    def change(tree):
        node = _net_node(tree)
        *parents, last = node_path
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def _delete(node_path):
    def change(tree):
        node = _net_node(tree)
        *parents, last = node_path
        for key in parents:
            node = node[key]
        del node[last]

    return change


_STR2 = {"__strarray__": ["all", "hem"], "dtype": "<U3", "shape": [2]}

BAD_CONFIGS = {
    "config null": (lambda tree: _Replace(None), "config: must be an estimator object"),
    "config 5": (lambda tree: _Replace(5), "config: must be an estimator object"),
    "missing params": (
        lambda tree: tree.pop("params") and None,
        r"config estimator: the key 'params' is missing",
    ),
    "missing a parameter": (
        _delete(["params", "widths"]),
        r"steps\[0\]\[1\]\.params: the parameters \['widths'\] are missing",
    ),
    "unknown parameter": (
        _set(["params", "mystery"], 1),
        r"params\.mystery: LeukoNetClassifier has no parameter 'mystery'",
    ),
    "wrong type": (
        _set(["params", "lr"], "fast"),
        r"params\.lr: The 'lr' parameter of LeukoNetClassifier must be",
    ),
    "huge number": (
        _set(["params", "max_epochs"], 1e400),
        r"params\.max_epochs: The 'max_epochs' parameter",
    ),
    "unknown architecture": (
        _set(["params", "architecture"], "resnet"),
        r"params\.architecture: The 'architecture' parameter",
    ),
    "method shadowed": (
        _set(["state", "predict_proba"], "x"),
        r"state\.predict_proba: LeukoNetClassifier has no fitted attribute "
        "'predict_proba'",
    ),
    "property shadowed": (
        _set(["state", "history_"], []),
        r"state\.history_: LeukoNetClassifier has no fitted attribute",
    ),
    "missing fitted attribute": (
        _delete(["state", "input_shape_"]),
        r"state: the fitted attributes \['input_shape_'\] are missing",
    ),
    "classes_ not unique": (
        _set(["state", "classes_", "__strarray__"], ["all", "all"]),
        r"state\.classes_: labels must be unique",
    ),
    "classes_ swapped": (
        lambda tree: (
            [
                _set(["state", "classes_", "__strarray__"], ["hem", "all"])(tree),
                _set(
                    ["state", "_label_encoder", "state", "classes_", "__strarray__"],
                    ["hem", "all"],
                )(tree),
            ]
            and None
        ),
        r"state\._label_encoder\.state\.classes_: labels must be in sorted order",
    ),
    "classes_ of another length": (
        lambda tree: (
            [
                _set(
                    ["state", "classes_"],
                    {**_STR2, "__strarray__": ["a", "b", "c"], "shape": [3]},
                )(tree),
                _set(
                    ["state", "_label_encoder", "state", "classes_"],
                    {**_STR2, "__strarray__": ["a", "b", "c"], "shape": [3]},
                )(tree),
            ]
            and None
        ),
        r"classifier\.weight of shape \(3, 64\).*stores shape \(2, 64\)",
    ),
    "string array dtype": (
        _set(["state", "classes_", "dtype"], "<U999999999"),
        r"state\.classes_: unsupported string dtype",
    ),
    "input_shape_": (
        _set(["state", "input_shape_"], {"__tuple__": [32, 32, "x"]}),
        r"state\.input_shape_: must be 3 positive ints",
    ),
    "module_spec_": (
        _set(["state", "module_spec_", "__dict__"], [["in_channels", 3]]),
        r"state\.module_spec_: must be an object with exactly the keys",
    ),
    "preprocessing_ of another kind": (
        _set(["params", "preprocessing"], "log_dct"),
        r"state\.preprocessing_: a fitted StainDeconvolution that is not the "
        "preprocessing='log_dct'",
    ),
    "dangling reference": (
        _set(["state", "preprocessing_"], {"__ref__": "estimator.nowhere"}),
        r"state\.preprocessing_: dangling reference",
    ),
    "unknown tag": (
        _set(["state", "best_epoch_"], {"__pickle__": "cos\nsystem"}),
        r"state\.best_epoch_: unexpected JSON object",
    ),
    "best epoch beyond the history": (
        _set(["state", "best_epoch_"], 99),
        r"state\.best_epoch_: 99 but the history has 1 epochs",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_config_that_breaks_the_schema_is_one_value_error(case, stages, tmp_path):
    """Every violation: one ValueError naming the file and the field (issue 14)."""
    change, match = BAD_CONFIGS[case]
    path = tmp_path / "bad.safetensors"
    save_safetensors(stages["1"], path)
    _edit_config(path, change)
    with pytest.raises(ValueError, match=match) as info:
        load_safetensors(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "key, value, match",
    [
        (
            "format_version",
            "abc",
            "metadata format_version: 'abc' is not a whole number",
        ),
        ("format_version", "0", "versions start at 1"),
        ("config", "[" * 100_000 + "]" * 100_000, "nested more than 64 levels"),
        ("config", "{not json", "metadata config: not JSON"),
        ("estimator", "sklearn_leuko.LeukoNetClassifier", "disagrees with the config"),
    ],
)
def test_bad_metadata_is_one_value_error(key, value, match, stages, tmp_path):
    path = tmp_path / "bad.safetensors"
    save_safetensors(stages["1"], path)
    _rewrite(path, lambda metadata, tensors: metadata.__setitem__(key, value))
    with pytest.raises(ValueError, match=match) as info:
        load_safetensors(path)
    assert str(path) in str(info.value)


def test_vgg_file_with_another_architecture_is_refused(stages, tmp_path):
    """Before, any architecture but 'basic' was silently built as VGG-11."""
    path = tmp_path / "vgg.safetensors"
    save_safetensors(stages["vgg11"], path)
    _edit_config(path, _set(["params", "architecture"], "basic"))
    with pytest.raises(ValueError, match=r"params: they do not describe a network"):
        load_safetensors(path)


def test_edited_file_fails_its_digest(stages, tmp_path):
    """Swapped labels are caught twice: by the digest and by the sorted-labels rule."""
    path = tmp_path / "m.safetensors"
    save_safetensors(stages["1"], path)
    _edit_config(
        path,
        _set(["state", "classes_", "__strarray__"], ["hem", "all"]),
        redigest=False,
    )
    with pytest.raises(ValueError, match="changed after save_safetensors wrote it"):
        load_safetensors(path)


def test_non_finite_weights_are_refused(stages, tmp_path):
    path = tmp_path / "m.safetensors"
    save_safetensors(stages["1"], path)

    def poison(metadata, tensors):
        key = next(k for k in tensors if k.endswith("classifier.weight"))
        tensors[key] = tensors[key].clone()
        tensors[key][0, 0] = float("nan")

    _rewrite(path, poison)
    with pytest.raises(ValueError, match=r"classifier\.weight' holds NaN or infinite"):
        load_safetensors(path)


def test_tensor_that_belongs_to_nothing_is_refused(stages, tmp_path):
    path = tmp_path / "m.safetensors"
    save_safetensors(stages["1"], path)
    _rewrite(path, lambda m, t: t.__setitem__("smuggled", torch.zeros(3)))
    with pytest.raises(ValueError, match="'smuggled' belongs to no part of the model"):
        load_safetensors(path)


_HUGE_WIDTHS_CHILD = """
import json, sys, time
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn_leuko import load_safetensors
from sklearn_leuko._persistence._schema import file_digest

path = sys.argv[1]
load_safetensors(path)  # imports everything the loader needs, before measuring
with safe_open(path, framework="pt") as handle:
    metadata = handle.metadata()
    tensors = {k: handle.get_tensor(k) for k in handle.keys()}
tree = json.loads(metadata["config"])
tree["params"]["steps"][0]["__tuple__"][1]["params"]["widths"] = {"__tuple__": [4096] * 6}
metadata["config"] = json.dumps(tree)
metadata["digest"] = file_digest(metadata, tensors)
save_file(tensors, path, metadata=metadata)

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM"))

before, start = peak_kib(), time.perf_counter()
try:
    load_safetensors(path)
    message = "loaded"
except ValueError as exc:
    message = str(exc)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "extra_peak_mib": (peak_kib() - before) / 1024,
                  "message": message}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_huge_widths_are_refused_before_anything_is_allocated(stages, tmp_path):
    """A small file whose config claims widths=[4096]*6 (3.4 GB of weights) is
    refused from the stored shapes, without building that network (issue 14)."""
    path = tmp_path / "huge.safetensors"
    save_safetensors(stages["1"], path)
    assert path.stat().st_size < 100_000
    out = subprocess.run(
        [sys.executable, "-c", _HUGE_WIDTHS_CHILD, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "shape mismatch" in result["message"]
    assert "of shape (4096, 3, 5, 5)" in result["message"]
    assert str(path) in result["message"]
    assert result["extra_peak_mib"] < 50  # the network would take 3,400 MiB
    assert result["seconds"] < 30  # generous: ~0.1 s on a quiet machine


def test_format_v1_file_still_loads_with_identical_predictions():
    """A stage-3C file written by the first format version (module spec in the
    net node, no digest) loads and predicts exactly as when it was saved."""
    expected = np.load(DATA / "format_v1_stage3c_expected.npz")
    model = load_safetensors(DATA / "format_v1_stage3c.safetensors")
    assert_array_equal(model.predict_proba(expected["images"]), expected["proba"])


def test_saved_files_are_readable_by_others(stages, tmp_path):
    """0644 under the usual umask, like joblib files, not mkstemp's 0600."""
    from sklearn_leuko import save_model

    old = os.umask(0o022)
    try:
        save_safetensors(stages["1"], tmp_path / "a.safetensors")
        save_model(stages["1"], tmp_path / "b.joblib")
        save_model(stages["1"], tmp_path / "c.safetensors")
    finally:
        os.umask(old)
    for name in ("a.safetensors", "b.joblib", "c.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_bad_target_path_is_reported_with_the_target_name(stages, tmp_path):
    target = tmp_path / "no-such-folder" / "m.safetensors"
    with pytest.raises(OSError) as info:
        save_safetensors(stages["1"], target)
    assert str(target) in str(info.value)
    assert ".tmp" not in str(info.value)
    folder = tmp_path / "a-folder.safetensors"
    folder.mkdir()
    with pytest.raises(OSError) as info:
        save_safetensors(stages["1"], folder)
    assert str(folder) in str(info.value) and ".tmp" not in str(info.value)
    assert not list(tmp_path.glob("**/*.tmp"))
