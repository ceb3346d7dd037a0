"""LeukoNetClassifier: fitting, prediction, augmentation gating, inner split, pickling."""

import io
import pickle
import subprocess
import sys
import textwrap
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline
from torch.utils.data import Dataset

from sklearn_leuko import LeukoNetClassifier, make_stage
from sklearn_leuko._classifier import CellLevelSplitWarning, InnerSplitWarning
from sklearn_leuko._classifier._datapath import ImageBatchDataset
from sklearn_leuko.nn import cpu_has_native_bf16

TINY = dict(widths=(4, 4, 8, 8, 8, 8), max_epochs=2, batch_size=16, verbose=0)


def _data(tiny_cells):
    return tiny_cells.images, tiny_cells.target, tiny_cells.groups


def test_fit_predict_string_labels(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(preprocessing="od", random_state=0, **TINY)
    assert clf.fit(X, y, groups=g) is clf
    assert list(clf.classes_) == ["all", "hem"]
    pred = clf.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= {"all", "hem"}
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert 0.0 <= clf.score(X, y) <= 1.0
    assert clf.device_ == "cpu"


def test_transform_returns_bilinear_features(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od", bilinear_channels=3, random_state=0, **TINY
    )
    feats = clf.fit(X, y, groups=g).transform(X[:5])
    assert feats.shape == (5, 9) == (5, clf.n_features_out_)
    assert feats.dtype == np.float32
    # bilinear features are L2-normalised
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-4)


def test_same_seed_same_predictions(tiny_cells):
    X, y, g = _data(tiny_cells)
    params = dict(preprocessing="od", augment="all", random_state=3, **TINY)
    p1 = LeukoNetClassifier(**params).fit(X, y, groups=g).predict_proba(X)
    p2 = LeukoNetClassifier(**params).fit(X, y, groups=g).predict_proba(X)
    np.testing.assert_array_equal(p1, p2)


def test_augmentation_only_in_training(tiny_cells, monkeypatch):
    """Would fail if predict (or validation) ran the augmenter."""
    from sklearn_leuko.nn import ImageAugmenter

    X, y, g = _data(tiny_cells)
    calls = {"train": 0, "eval": 0}
    original = ImageAugmenter.forward

    def spy(self, x, mask=None):
        calls["train" if self.training else "eval"] += 1
        return original(self, x, mask)

    monkeypatch.setattr(ImageAugmenter, "forward", spy)
    clf = LeukoNetClassifier(preprocessing="od", augment="all", random_state=0, **TINY)
    clf.fit(X, y, groups=g)
    n_train_calls = calls["train"]
    assert n_train_calls > 0
    assert calls["eval"] == 0  # validation batches never reach the augmenter
    p1 = clf.predict_proba(X)
    p2 = clf.predict_proba(X)
    np.testing.assert_array_equal(p1, p2)  # predict is deterministic: no augmentation
    assert calls["train"] == n_train_calls and calls["eval"] == 0


def test_minority_augmentation_resamples_to_majority(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od", augment="minority", random_state=0, **TINY
    )
    y_enc = np.where(y == "all", 0, 1)
    clf.classes_ = np.array(["all", "hem"])
    rows = np.arange(len(y))
    indices, mask = clf._training_rows(
        y_enc, rows, "minority", np.random.RandomState(0)
    )
    counts = np.bincount(y_enc[indices])
    assert counts[0] == counts[1] == np.bincount(y_enc).max()
    assert mask[y_enc == 1].all() and not mask[y_enc == 0].any()


def test_inner_split_is_subject_level(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(validation_fraction=0.25)
    y_enc = np.where(y == "all", 0, 1)
    for seed in range(5):
        train, valid = clf._inner_split(y_enc, g, np.random.RandomState(seed))
        assert set(g[train]).isdisjoint(g[valid])
        assert len(valid) > 0


def test_no_groups_warns_cell_level_split(tiny_cells):
    X, y, _ = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od", random_state=0, **{**TINY, "max_epochs": 1}
    )
    with pytest.warns(CellLevelSplitWarning, match="cell level"):
        clf.fit(X, y)


def test_best_epoch_weights_are_restored(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od", random_state=0, **{**TINY, "max_epochs": 4}
    )
    clf.fit(X, y, groups=g)
    history = clf.history_
    accs = history[:, "valid_acc"]
    assert clf.best_epoch_ == int(np.argmax(accs)) + 1
    # The restored weights reproduce the best epoch's validation accuracy.
    train_rows, valid_rows = clf._inner_split(
        clf._label_encoder.transform(y), g, _replay_rng(0)
    )
    acc = np.mean(clf.predict(X[valid_rows]) == y[valid_rows])
    assert acc == pytest.approx(max(accs))


def _replay_rng(random_state):
    """The RandomState as fit left it right before the inner split."""
    rng = np.random.RandomState(random_state)
    rng.randint(np.iinfo(np.int32).max)
    return rng


def test_pipeline_form_with_transformer(tiny_cells):
    from sklearn_leuko.preprocessing import StainDeconvolution

    X, y, g = _data(tiny_cells)
    pipe = Pipeline(
        [
            ("od", StainDeconvolution()),
            ("net", LeukoNetClassifier(random_state=0, **TINY)),
        ]
    )
    pipe.fit(X, y, net__groups=g)
    assert pipe.predict(X).shape == (len(X),)
    assert pipe.named_steps["net"].input_kind_ == "channels_first"


def test_augmenting_preprocessed_input_is_refused(tiny_cells):
    from sklearn_leuko.preprocessing import StainDeconvolution

    X, y, g = _data(tiny_cells)
    od = StainDeconvolution().fit_transform(X)
    clf = LeukoNetClassifier(augment="all", **TINY)
    with pytest.raises(ValueError, match="augmentation acts on images"):
        clf.fit(od, y, groups=g)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"activation": "tanh"}, "tanh"),
        ({"augment": "sometimes"}, "augment"),
        ({"architecture": "resnet"}, "architecture"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"preprocessing": "fourier"}, "fourier"),
        ({"resume": True}, "checkpoint_dir"),
    ],
)
def test_bad_parameters_give_clear_errors(tiny_cells, params, match):
    X, y, g = _data(tiny_cells)
    with pytest.raises(ValueError, match=match):
        LeukoNetClassifier(**{**TINY, **params}).fit(X, y, groups=g)


def test_bad_input_gives_clear_errors(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(preprocessing="od", **TINY)
    with pytest.raises(ValueError, match="only 1 class"):
        clf.fit(X, np.full(len(X), "all"), groups=g)
    with pytest.raises(ValueError, match="labels but X has"):
        clf.fit(X, y[:-1], groups=g)
    with pytest.raises(ValueError, match="subject IDs but X has"):
        clf.fit(X, y, groups=g[:-1])
    with pytest.raises(ValueError, match="4-D"):
        clf.fit(X[0], y[:1])
    clf.fit(X, y, groups=g)
    with pytest.raises(ValueError, match="fitted on uint8 RGB images of shape"):
        clf.predict(np.zeros((2, 16, 16, 3), dtype=np.uint8))


def test_grid_search_and_clone(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od", random_state=0, **{**TINY, "max_epochs": 1}
    )
    clone_ = clone(clf)
    assert clone_.get_params() == clf.get_params()
    grid = GridSearchCV(
        clf,
        {"activation": ["relu", "ptelu"], "augment": ["off", "all"]},
        cv=GroupKFold(2),
        error_score="raise",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CellLevelSplitWarning)
        grid.fit(X, y, groups=g)
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_params_["activation"] in ("relu", "ptelu")


def test_pickle_roundtrip_in_fresh_process(tiny_cells, tmp_path):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(preprocessing="od+log_dct", random_state=0, **TINY).fit(
        X, y, groups=g
    )
    expected = clf.predict_proba(X)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(clf)).predict_proba(X), expected
    )
    model = tmp_path / "model.joblib"
    data = tmp_path / "X.npy"
    joblib.dump(clf, model)
    np.save(data, X)
    code = textwrap.dedent(
        f"""
        import joblib, numpy as np
        clf = joblib.load({str(model)!r})
        np.save({str(tmp_path / "proba.npy")!r}, clf.predict_proba(np.load({str(data)!r})))
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), expected)


def test_loading_from_other_version_warns(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od", random_state=0, **{**TINY, "max_epochs": 1}
    )
    clf.fit(X, y, groups=g)
    state = clf.__getstate__()
    state["_sklearn_leuko_version"] = "0.0.1"
    other = LeukoNetClassifier.__new__(LeukoNetClassifier)
    with pytest.warns(UserWarning, match="saved with sklearn-leuko 0.0.1"):
        other.__setstate__(state)


def test_vgg11_architecture(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od",
        architecture="vgg11",
        widths=(4, 4, 8, 8, 8, 8, 8, 8),
        random_state=0,
        **{k: v for k, v in TINY.items() if k != "widths"},
    )
    assert clf.fit(X, y, groups=g).transform(X[:2]).shape == (2, 8)


def test_no_validation_keeps_last_epoch(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od", validation_fraction=None, random_state=0, **TINY
    )
    clf.fit(X, y, groups=g)
    assert clf.best_epoch_ is None
    assert "valid_acc" not in clf.history_[-1]


def test_user_callbacks_are_cloned_and_run(tiny_cells):
    from skorch.callbacks import Callback

    class CountEpochs(Callback):
        def __init__(self, seen=None):
            self.seen = seen

        def initialize(self):
            self.seen_ = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.seen_ += 1

    X, y, g = _data(tiny_cells)
    user_cb = CountEpochs()
    clf = LeukoNetClassifier(
        preprocessing="od", callbacks=[("count", user_cb)], random_state=0, **TINY
    ).fit(X, y, groups=g)
    assert (
        clf.net_.callbacks_[[n for n, _ in clf.net_.callbacks_].index("count")][1].seen_
        == 2
    )
    assert not hasattr(user_cb, "seen_")  # the parameter itself is untouched


def test_ctrl_c_is_passed_on_not_swallowed(tiny_cells):
    """skorch ends training on KeyboardInterrupt; the classifier must re-raise it
    so a cut-short model is never taken for a trained one."""
    from skorch.callbacks import Callback

    class PressCtrlC(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            if training:
                raise KeyboardInterrupt

    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od", callbacks=[PressCtrlC()], random_state=0, **TINY
    )
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y, groups=g)
    assert not hasattr(clf, "net_")


def test_patience_stops_early_without_raising(tiny_cells):
    X, y, g = _data(tiny_cells)
    # lr so small that the validation accuracy cannot improve after epoch 1
    clf = LeukoNetClassifier(
        preprocessing="od",
        lr=1e-12,
        patience=2,
        random_state=0,
        **{**TINY, "max_epochs": 8},
    )
    clf.fit(X, y, groups=g)
    assert len(clf.history_) == 3
    assert clf.best_epoch_ == 1


def test_last_training_batch_of_one_sample_does_not_break_batch_norm(tiny_cells):
    X, y, g = _data(tiny_cells)
    rows = np.r_[0:9, 50:58]  # 17 cells, both classes: batches of 16 + 1
    clf = LeukoNetClassifier(
        preprocessing="od",
        validation_fraction=None,
        random_state=0,
        **{**TINY, "batch_size": 16, "max_epochs": 1},
    )
    clf.fit(X[rows], y[rows])
    assert clf.history_[-1, "train_batch_count"] == 1


def test_real_sigint_stops_at_the_next_batch_boundary(
    tiny_cells, python_sigint_handler
):
    """A SIGINT during training sets a flag; the fit stops after that batch
    with KeyboardInterrupt (never lost, never raised inside library code)."""
    import os
    import signal

    from skorch.callbacks import Callback

    class SendSigint(Callback):
        batches = 0

        def on_batch_begin(self, net, training=False, **kwargs):
            if training:
                type(self).batches += 1
                if type(self).batches == 2:
                    os.kill(os.getpid(), signal.SIGINT)

    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od",
        callbacks=[SendSigint()],
        random_state=0,
        **{**TINY, "batch_size": 8, "max_epochs": 5},
    )
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y, groups=g)
    assert SendSigint.batches == 2  # stopped right after the interrupted batch
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_deferred_interrupt_raises_if_not_consumed(python_sigint_handler):
    import os
    import signal

    from sklearn_leuko._classifier._interrupt import deferred_interrupt

    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)  # only sets the flag
            reached = True
    assert reached
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_skorch_style_pass_through_parameters(tiny_cells):
    import torch

    X, y, g = _data(tiny_cells)
    weight = torch.tensor([1.0, 3.0])
    clf = LeukoNetClassifier(
        preprocessing="od",
        random_state=0,
        optimizer__betas=(0.8, 0.9),
        criterion__weight=weight,
        iterator_train__num_workers=0,
        **TINY,
    )
    params = clf.get_params()
    assert params["optimizer__betas"] == (0.8, 0.9)
    assert params["criterion__weight"] is weight
    assert "optimizer__betas" in repr(clf)
    copy = clone(clf)
    assert copy.get_params()["optimizer__betas"] == (0.8, 0.9)
    copy.set_params(optimizer__betas=(0.7, 0.95), max_epochs=1)
    assert copy.optimizer__betas == (0.7, 0.95) and copy.max_epochs == 1
    clf.fit(X, y, groups=g)
    assert clf.net_.optimizer_.param_groups[0]["betas"] == (0.8, 0.9)
    torch.testing.assert_close(clf.net_.criterion_.weight, weight)


def test_pass_through_in_a_grid_search(tiny_cells):
    X, y, g = _data(tiny_cells)
    pipe = Pipeline(
        [
            (
                "net",
                LeukoNetClassifier(
                    preprocessing="od", random_state=0, **{**TINY, "max_epochs": 1}
                ),
            )
        ]
    )
    grid = GridSearchCV(
        pipe,
        {"net__optimizer__betas": [(0.9, 0.999), (0.5, 0.9)]},
        cv=GroupKFold(2),
        error_score="raise",
    )
    grid.fit(X, y, groups=g, net__groups=g)
    assert [p["net__optimizer__betas"] for p in grid.cv_results_["params"]] == [
        (0.9, 0.999),
        (0.5, 0.9),
    ]
    betas = grid.best_estimator_[-1].net_.optimizer_.param_groups[0]["betas"]
    assert betas == grid.best_params_["net__optimizer__betas"]


def test_fitted_model_holds_no_training_images(tiny_cells):
    """The pickle holds weights and settings, never the images (issue 14)."""
    X, y, g = _data(tiny_cells)
    rng = np.random.default_rng(0)
    # random pixels: their bytes cannot occur in a pickle by chance
    X = rng.integers(0, 256, X.shape, dtype=np.uint8)
    clf = LeukoNetClassifier(preprocessing="od", random_state=0, **TINY)
    clf.fit(X, y, groups=g)
    blob = pickle.dumps(clf)
    for i in range(len(X)):
        assert X[i, 10, :].tobytes() not in blob
    assert clf.net_.train_split is None
    assert len(blob) < X.nbytes  # 60 cells of 32x32 RGB are larger than the net


def test_fitted_model_keeps_no_optimizer_state_and_one_module(tiny_cells):
    """No partial_fit is offered, so Adam's two tensors per weight are dropped
    after fit (resuming uses the checkpoint's copy); skorch's module and
    module_ are one object, so the weights are pickled once."""
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(preprocessing="od", random_state=0, **TINY)
    clf.fit(X, y, groups=g)
    assert len(clf.net_.optimizer_.state) == 0
    assert clf.net_.module is clf.net_.module_
    for _, callback in clf.net_.callbacks_:
        held = [
            v for v in vars(callback).values() if isinstance(v, (np.ndarray, Dataset))
        ]
        assert not held, callback
    n_weights = sum(t.numel() for t in clf.net_.module_.state_dict().values())
    assert len(pickle.dumps(clf)) < 2 * 4 * n_weights + 200_000


def test_fitted_fusion_holds_no_training_images(tiny_cells):
    X, y, g = _data(tiny_cells)
    X = np.random.default_rng(1).integers(0, 256, X.shape, dtype=np.uint8)
    stage = make_stage("3C", random_state=0, **TINY).fit(X, y, groups=g)
    buffer = io.BytesIO()
    joblib.dump(stage, buffer)
    blob = buffer.getvalue()
    for i in range(len(X)):
        assert X[i, 10, :].tobytes() not in blob


def test_build_module_and_build_net_rebuild_the_fitted_net(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(preprocessing="od", random_state=0, **TINY)
    clf.fit(X, y, groups=g)
    module = clf.build_module()
    assert type(module) is type(clf.net_.module_)
    assert module.state_dict().keys() == clf.net_.module_.state_dict().keys()
    module.load_state_dict(clf.net_.module_.state_dict())
    net = clf.build_net(module)
    assert type(net) is type(clf.net_)
    net.initialize()
    data = ImageBatchDataset(X)
    np.testing.assert_array_equal(net.predict_proba(data), clf.net_.predict_proba(data))
    assert clf.module_spec_ == {
        "in_channels": 3,
        "rgb_input": True,
        # mixed_precision="auto": bfloat16 autocast where the CPU has it natively
        "autocast_dtype": "bfloat16" if cpu_has_native_bf16() else None,
        "channels_last": True,
    }


def test_get_feature_names_out_matches_transform(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(preprocessing="od", random_state=0, **TINY)
    clf.fit(X, y, groups=g)
    names = clf.get_feature_names_out()
    assert len(names) == clf.transform(X[:2]).shape[1] == clf.n_features_out_
    assert names[0] == "leukonetclassifier0"


def test_normal_augmentation_augments_hem_cells(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(preprocessing="od", augment="normal", random_state=0)
    clf.classes_ = np.array(["all", "hem"])
    y_enc = (y == "hem").astype(np.int64)
    rows = np.arange(len(y))
    indices, mask = clf._training_rows(y_enc, rows, "normal", np.random.RandomState(0))
    n_all = int((y == "all").sum())
    assert int((y_enc[indices] == 1).sum()) == n_all  # hem resampled to the all count
    assert mask[y_enc == 1].all() and not mask[y_enc == 0].any()
    clf.classes_ = np.array(["a", "b"])
    with pytest.raises(ValueError, match="augment='normal' augments the normal"):
        clf._normal_class_index()


# ------------------------------------------------------------- SD-Layer (issue 13)
@pytest.mark.parametrize(
    "preprocessing, channels", [("od", 3), ("log_dct", 3), ("od+log_dct", 6)]
)
def test_learnable_sd_layer_is_the_stages_front(tiny_cells, preprocessing, channels):
    from sklearn_leuko.nn import LearnableStainInput, SDLayer

    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing=preprocessing, random_state=0, **{**TINY, "max_epochs": 3}
    ).fit(X, y, groups=g)
    fronts = [
        m for m in clf.net_.module_.modules() if isinstance(m, LearnableStainInput)
    ]
    # one shared SD-Layer, also for Stage-2C's two halves
    assert len(fronts) == 1
    assert len([m for m in clf.net_.module_.modules() if isinstance(m, SDLayer)]) == 1
    assert clf.module_spec_["in_channels"] == channels
    assert fronts[0].sd_layer.weight.requires_grad
    # the stain matrix was trained (through the log-DCT for Stage-2, too)
    assert not np.allclose(clf.stain_matrix_, clf.initial_stain_matrix_)
    from skimage.color import rgb_from_bex

    np.testing.assert_allclose(clf.initial_stain_matrix_, rgb_from_bex, atol=1e-6)


def test_fixed_stain_layer_is_the_transformers_math(tiny_cells):
    from sklearn_leuko.nn import LearnableStainInput, StainDeconvolutionModule

    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od", stain_layer="fixed", random_state=0, **TINY
    ).fit(X, y, groups=g)
    modules = list(clf.net_.module_.modules())
    assert any(isinstance(m, StainDeconvolutionModule) for m in modules)
    assert not any(isinstance(m, LearnableStainInput) for m in modules)
    np.testing.assert_array_equal(clf.stain_matrix_, clf.initial_stain_matrix_)


def test_gradient_reaches_the_stain_matrix_through_the_dct():
    import torch
    from skimage.color import rgb_from_bex

    from sklearn_leuko.nn import LearnableStainInput, LogDCTModule

    front = LearnableStainInput(rgb_from_bex, dct=LogDCTModule(), keep_stains=False)
    rgb = torch.rand(2, 3, 16, 16) * 255
    # scale the concentrations so that kept coefficients exceed 1
    out = front(rgb * 1.0)
    (out * torch.randn_like(out)).sum().backward()
    assert front.sd_layer.weight.grad is not None
    assert torch.count_nonzero(front.sd_layer.weight.grad) > 0


def test_stain_layer_is_searchable_and_reachable_in_fusion_stages():
    from sklearn_leuko import make_stage

    stage = make_stage("3C", stain_layer="fixed", stain_matrix="macenko")
    params = stage.get_params()
    assert params["stage1__net__stain_layer"] == "fixed"
    assert params["stage2c__net__stain_matrix"] == "macenko"
    stage.set_params(stage2c__net__stain_layer="learnable")
    assert stage.get_params()["stage2c__net__stain_layer"] == "learnable"


def test_macenko_initialises_the_sd_layer(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od", stain_matrix="macenko", random_state=0, **TINY
    ).fit(X, y, groups=g)
    from skimage.color import rgb_from_bex

    assert not np.allclose(clf.initial_stain_matrix_, rgb_from_bex, atol=1e-3)
    # same seed, same Macenko sample, same fit
    again = LeukoNetClassifier(
        preprocessing="od", stain_matrix="macenko", random_state=0, **TINY
    ).fit(X, y, groups=g)
    np.testing.assert_array_equal(
        again.initial_stain_matrix_, clf.initial_stain_matrix_
    )


def test_one_by_one_feature_map_warns(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(preprocessing="od", random_state=0, **TINY)
    with pytest.warns(UserWarning, match="last feature map is 1x1 for 32x32"):
        clf.fit(X, y, groups=g)
    big = np.zeros((8, 65, 65, 3), dtype=np.uint8)
    big[:, 20:45, 20:45] = X[:8, :25, :25]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LeukoNetClassifier(
            preprocessing="od", random_state=0, validation_fraction=None, **TINY
        ).fit(big, y[:8])


def test_old_pickles_keep_the_fixed_deconvolution(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(
        preprocessing="od", stain_layer="fixed", random_state=0, **TINY
    ).fit(X, y, groups=g)
    state = clf.__getstate__()
    del state["stain_layer"], state["stain_matrix"]  # as written by version 0.1
    old = LeukoNetClassifier.__new__(LeukoNetClassifier)
    old.__setstate__(state)
    assert old.stain_layer == "fixed"
    np.testing.assert_array_equal(old.predict_proba(X), clf.predict_proba(X))


def test_inner_split_holds_every_class_on_both_sides(tiny_cells):
    """tiny_cells has 4 'hem' subjects for 5 folds: the first fold often had no
    'hem' subject, and the best epoch was chosen on 'all' cells alone."""
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(validation_fraction=0.2)
    clf.classes_ = np.array(["all", "hem"])
    y_enc = np.where(y == "all", 0, 1)
    for seed in range(20):
        train, valid = clf._inner_split(y_enc, g, np.random.RandomState(seed))
        assert set(y_enc[valid]) == set(y_enc[train]) == {0, 1}, seed
        assert set(g[train]).isdisjoint(g[valid])


def test_no_split_with_every_class_trains_on_everything_and_warns(tiny_cells):
    X, y, g = _data(tiny_cells)
    hem_subjects = np.unique(g[y == "hem"])
    keep = (y == "all") | (g == hem_subjects[0])  # a single 'hem' subject
    clf = LeukoNetClassifier(preprocessing="od", random_state=0, **TINY)
    with pytest.warns(InnerSplitWarning, match=r"'hem': 1.*keeps the last epoch"):
        clf.fit(X[keep], y[keep], groups=g[keep])
    assert clf.best_epoch_ is None
    assert "valid_acc" not in clf.history_[-1]
