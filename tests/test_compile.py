"""compile=True: inference through torch.compile, same answers, never saved."""

import io
import pickle

import joblib
import numpy as np
import pytest
import torch

from sklearn_leuko import LeukoNetClassifier, load_safetensors, save_safetensors
from sklearn_leuko._classifier import _compile


@pytest.fixture(scope="module")
def fitted(tiny_cells):
    data = tiny_cells
    clf = LeukoNetClassifier(
        preprocessing="od",
        widths=(4,) * 6,
        max_epochs=3,
        batch_size=10,
        validation_fraction=None,
        verbose=0,
        random_state=0,
    ).fit(data.images, data.target)
    return clf, data


def test_compiled_inference_gives_the_same_answers(fitted):
    clf, data = fitted
    X = data.images[:40]  # 4 full batches of 10: one shape to compile
    clf.set_params(compile=False)
    expected = (
        clf.predict_proba(X),
        clf.decision_function(X),
        clf.transform(X),
        clf.set_params(tta=2).predict_proba(X),
    )
    clf.set_params(compile=True, tta=False)
    got = (
        clf.predict_proba(X),
        clf.decision_function(X),
        clf.transform(X),
        clf.set_params(tta=2).predict_proba(X),
    )
    clf.set_params(tta=False)
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-5)
    assert not isinstance(clf.net_.module_, torch._dynamo.eval_frame.OptimizedModule)
    assert "_compiled_inference" in vars(clf)

    # Never saved: joblib, pickle and safetensors files hold the plain module.
    loaded = joblib.load(_dumped(clf))
    assert "_compiled_inference" not in vars(loaded) and loaded.compile is True
    assert b"OptimizedModule" not in pickle.dumps(clf)
    assert "_compiled_inference" in vars(clf)  # pickling left the model alone
    np.testing.assert_allclose(
        loaded.set_params(compile=False).predict_proba(X), expected[0], rtol=1e-6
    )


def test_safetensors_keeps_the_setting_not_the_compiled_module(fitted, tmp_path):
    clf, data = fitted
    clf.set_params(compile=True)
    clf.__dict__["_compiled_inference"] = ("stand-in",)
    save_safetensors(clf, tmp_path / "m.safetensors")
    loaded = load_safetensors(tmp_path / "m.safetensors")
    assert loaded.compile is True
    assert "_compiled_inference" not in vars(loaded)
    del clf.__dict__["_compiled_inference"]
    clf.set_params(compile=False)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_compile_must_be_a_bool(fitted, value):
    clf, data = fitted
    clf.set_params(compile=value)
    try:
        with pytest.raises(ValueError, match="compile must be True or False"):
            clf.predict_proba(data.images[:2])
    finally:
        clf.set_params(compile=False)


def test_a_compiler_failure_names_the_fix(fitted, monkeypatch):
    clf, data = fitted

    class InductorError(Exception):
        pass

    InductorError.__module__ = "torch._inductor.exc"

    def broken(fn):
        def call(*args, **kwargs):
            raise InductorError("no C++ compiler found")

        return call

    monkeypatch.setattr(_compile.torch, "compile", broken)
    clf.__dict__.pop("_compiled_inference", None)
    clf.set_params(compile=True)
    try:
        with pytest.raises(RuntimeError, match="C\\+\\+ compiler.*compile=False"):
            clf.predict_proba(data.images[:4])
        assert not callable(getattr(clf.net_.module_, "_orig_mod", None))
        assert isinstance(clf.net_.module_, torch.nn.Module)
    finally:
        clf.set_params(compile=False)
        clf.__dict__.pop("_compiled_inference", None)


def _dumped(estimator):
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    buffer.seek(0)
    return buffer
