"""Every public entry point, walked through bad input: the error must say what to change.

Each case asserts the exception type and a fragment of the message that names
the problem, so that a newcomer who reads the error knows what to fix. Never a
torch RuntimeError, an IndexError or a silent wrong result.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.linear_model import LinearRegression

from sklearn_leuko import (
    FeatureFusionClassifier,
    LeukoNetClassifier,
    load_safetensors,
    make_stage,
)
from sklearn_leuko import metrics as M
from sklearn_leuko.datasets import load_cnmc, make_cells
from sklearn_leuko.preprocessing import (
    ChannelUnion,
    LogDCT,
    StainDeconvolution,
    make_preprocessing,
)
from sklearn_leuko.utils import check_channels_first, check_net_input, check_rgb_images

TINY = dict(
    widths=(4, 4, 8, 8, 8, 8),
    max_epochs=1,
    batch_size=16,
    verbose=0,
    random_state=0,
    validation_fraction=None,
)


@pytest.fixture(scope="module")
def fitted(tiny_cells):
    """One fitted object per entry point (one tiny network, reused by the fusion)."""
    X, y = tiny_cells.images, tiny_cells.target
    stage1 = make_stage("1", **TINY).fit(X, y)
    od = StainDeconvolution().fit_transform(X[:8])
    return {
        "rgb": X[:8],
        "od": od,
        "stain": StainDeconvolution().fit(X[:8]),
        "logdct": LogDCT().fit(od),
        "union": make_preprocessing("od+log_dct").fit(X[:8]),
        "clf": stage1[-1],
        "fusion": FeatureFusionClassifier([("stage1", stage1)], cv="prefit").fit(X, y),
    }


def _labels(X):
    try:
        n = len(X)
    except TypeError:
        n = 0
    return np.resize(np.array(["all", "hem"]), n)


# Entry points that take raw RGB images: name -> (kind, call(fitted, X)).
IMAGE_ENTRY_POINTS = {
    "StainDeconvolution.fit": ("transformer", lambda f, X: StainDeconvolution().fit(X)),
    "StainDeconvolution.transform": (
        "transformer",
        lambda f, X: f["stain"].transform(X),
    ),
    "ChannelUnion.fit": (
        "transformer",
        lambda f, X: make_preprocessing("od+log_dct").fit(X),
    ),
    "ChannelUnion.transform": ("transformer", lambda f, X: f["union"].transform(X)),
    "LeukoNetClassifier.fit": (
        "net",
        lambda f, X: LeukoNetClassifier(preprocessing="od", **TINY).fit(X, _labels(X)),
    ),
    "LeukoNetClassifier.predict": ("net", lambda f, X: f["clf"].predict(X)),
    "LeukoNetClassifier.predict_proba": ("net", lambda f, X: f["clf"].predict_proba(X)),
    "LeukoNetClassifier.transform": ("net", lambda f, X: f["clf"].transform(X)),
    "make_stage('3').fit": (
        "net",
        lambda f, X: make_stage("3", **TINY).fit(X, _labels(X)),
    ),
    "FeatureFusionClassifier.predict": ("net", lambda f, X: f["fusion"].predict(X)),
    "FeatureFusionClassifier.transform": ("net", lambda f, X: f["fusion"].transform(X)),
}


def _rgb(f):
    return f["rgb"]


def _float_rgb(f, value=None, scale=1.0):
    X = f["rgb"].astype(np.float32) * scale
    if value is not None:
        X[:, 0, 0, 0] = value
    return X


# Bad RGB input: name -> (make(fitted), {kind or "*": (exception, message regex)}).
# Networks accept float input only as preprocessed channels-first arrays, so a
# float RGB batch is refused there for being float channels-last.
BAD_IMAGES = {
    "single image (3-D)": (
        lambda f: _rgb(f)[0],
        {"*": (ValueError, r"single image|4-D")},
    ),
    "2-D array": (lambda f: _rgb(f)[0, :, :, 0], {"*": (ValueError, r"4-D")}),
    "5-D array": (
        lambda f: _rgb(f).reshape(2, 4, 32, 32, 3),
        {"*": (ValueError, r"4-D")},
    ),
    "1 channel": (
        lambda f: _rgb(f)[..., :1],
        {"*": (ValueError, r"3 colour channels.*grey")},
    ),
    "4 channels (RGBA)": (
        lambda f: np.concatenate([_rgb(f), _rgb(f)[..., :1]], axis=-1),
        {"*": (ValueError, r"3 colour channels.*alpha")},
    ),
    "channels-first uint8": (
        lambda f: np.ascontiguousarray(np.moveaxis(_rgb(f), -1, 1)),
        {"*": (ValueError, r"channels-first.*np\.moveaxis")},
    ),
    "object dtype": (
        lambda f: _rgb(f).astype(object),
        {"*": (TypeError, r"dtype object")},
    ),
    "bool dtype": (lambda f: _rgb(f) > 100, {"*": (TypeError, r"dtype bool")}),
    "complex dtype": (
        lambda f: _rgb(f).astype(np.complex64),
        {"*": (TypeError, r"dtype complex64")},
    ),
    "strings": (lambda f: _rgb(f).astype(str), {"*": (TypeError, r"dtype <U3")}),
    "float above 255": (
        lambda f: _float_rgb(f, value=510.0),
        {
            "transformer": (ValueError, r"\[0, 510\].*\[0, 255\]"),
            "net": (ValueError, "uint8"),
        },
    ),
    "negative integers": (
        lambda f: _rgb(f).astype(np.int16) - 10,
        {"*": (ValueError, r"outside \[0, 255\]")},
    ),
    "NaN": (
        lambda f: _float_rgb(f, value=np.nan),
        {"transformer": (ValueError, "NaN or infinite"), "net": (ValueError, "uint8")},
    ),
    "inf": (
        lambda f: _float_rgb(f, value=np.inf),
        {"transformer": (ValueError, "NaN or infinite"), "net": (ValueError, "uint8")},
    ),
    "NaN in channels-first float": (
        lambda f: np.full((4, 3, 32, 32), np.nan, dtype=np.float32),
        {
            "transformer": (ValueError, "channels-first"),
            "net": (ValueError, "NaN or infinite"),
        },
    ),
    "empty array (0 images)": (lambda f: _rgb(f)[:0], {"*": (ValueError, "empty")}),
    "empty list": (lambda f: [], {"*": (ValueError, "empty")}),
    "images of mixed sizes": (
        lambda f: [_rgb(f)[0], _rgb(f)[1, :20, :20]],
        {"*": (ValueError, r"different sizes.*crop or pad")},
    ),
    "images of 0 pixels": (lambda f: _rgb(f)[:, :0], {"*": (ValueError, "pixels")}),
    "None": (lambda f: None, {"*": (TypeError, r"numpy array|array-like|None")}),
}

IMAGE_CASES = [
    pytest.param(entry, bad, id=f"{entry}-{bad}")
    for entry in IMAGE_ENTRY_POINTS
    for bad in BAD_IMAGES
]


@pytest.mark.parametrize("entry, bad", IMAGE_CASES)
def test_bad_images(fitted, entry, bad):
    kind, call = IMAGE_ENTRY_POINTS[entry]
    make, expected = BAD_IMAGES[bad]
    exception, match = expected.get(kind, expected.get("*"))
    X = make(fitted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exception, match=match):
            call(fitted, X)


# ------------------------------------------------- a fitted model, other input
PREDICT_ENTRY_POINTS = [
    "LeukoNetClassifier.predict",
    "LeukoNetClassifier.predict_proba",
    "LeukoNetClassifier.transform",
    "FeatureFusionClassifier.predict",
    "FeatureFusionClassifier.transform",
]


@pytest.mark.parametrize("entry", PREDICT_ENTRY_POINTS)
def test_fitted_model_given_another_image_size(fitted, entry):
    _, call = IMAGE_ENTRY_POINTS[entry]
    with pytest.raises(ValueError, match=r"\(16, 16, 3\).*fitted on .*\(32, 32, 3\)"):
        call(fitted, fitted["rgb"][:, :16, :16])


@pytest.mark.parametrize("entry", PREDICT_ENTRY_POINTS)
def test_fitted_model_given_preprocessed_input(fitted, entry):
    _, call = IMAGE_ENTRY_POINTS[entry]
    with pytest.raises(ValueError, match=r"fitted on uint8 RGB images"):
        call(fitted, fitted["od"])


def test_logdct_given_another_channel_count(fitted):
    with pytest.raises(ValueError, match=r"1 channels.*expected 3"):
        fitted["logdct"].transform(fitted["od"][:, :1])


def test_logdct_given_rgb_images(fitted):
    with pytest.raises(ValueError, match=r"channels-last RGB.*StainDeconvolution"):
        LogDCT().fit(fitted["rgb"])


def test_float_images_in_unit_range_warn(fitted):
    with pytest.warns(UserWarning, match=r"values in \[0, 1\].*\* 255"):
        StainDeconvolution().fit(fitted["rgb"] / 255.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda f: StainDeconvolution().transform(f["rgb"]),
        lambda f: LogDCT().transform(f["od"]),
        lambda f: ChannelUnion([("od", StainDeconvolution())]).transform(f["rgb"]),
        lambda f: LeukoNetClassifier().predict(f["rgb"]),
        lambda f: make_stage("3").predict(f["rgb"]),
    ],
    ids=[
        "StainDeconvolution",
        "LogDCT",
        "ChannelUnion",
        "LeukoNetClassifier",
        "fusion",
    ],
)
def test_unfitted_models_say_so(fitted, call):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        call(fitted)


# ---------------------------------------------------------- labels and groups
FIT_ENTRY_POINTS = {
    "LeukoNetClassifier.fit": lambda X, y, g: LeukoNetClassifier(
        preprocessing="od", **TINY
    ).fit(X, y, groups=g),
    "make_stage('1').fit": lambda X, y, g: make_stage("1", **TINY).fit(
        X, y, net__groups=g
    ),
    "make_stage('3').fit": lambda X, y, g: make_stage("3", **TINY).fit(X, y, groups=g),
}

BAD_TARGETS = {
    "one class only": (
        lambda X, y, g: (X[y == "all"], y[y == "all"], g[y == "all"]),
        r"only 1 class \(\['all'\]\)",
    ),
    "labels shorter than images": (
        lambda X, y, g: (X, y[:-1], g),
        r"59 labels but X has 60",
    ),
    "groups shorter than images": (
        lambda X, y, g: (X, y, g[:3]),
        r"groups has 3 subject IDs but X has 60",
    ),
    "no labels": (lambda X, y, g: (X, None, g), r"y is required"),
    "NaN labels": (
        lambda X, y, g: (X, np.where(y == "all", 1.0, np.nan), g),
        r"NaN labels",
    ),
    "2-D labels": (lambda X, y, g: (X, np.stack([y, y], axis=1), g), r"y must be 1-D"),
    "2-D groups": (
        lambda X, y, g: (X, y, np.stack([g, g], axis=1)),
        r"groups must be 1-D",
    ),
    "NaN groups": (
        lambda X, y, g: (X, y, np.full(len(y), np.nan)),
        r"NaN subject IDs",
    ),
    "empty": (lambda X, y, g: (X[:0], y[:0], g[:0]), r"empty"),
}


@pytest.mark.parametrize("bad", BAD_TARGETS)
@pytest.mark.parametrize("entry", FIT_ENTRY_POINTS)
def test_bad_labels_and_groups(tiny_cells, entry, bad):
    make, match = BAD_TARGETS[bad]
    X, y, g = make(tiny_cells.images, tiny_cells.target, tiny_cells.groups)
    with pytest.raises(ValueError, match=match):
        FIT_ENTRY_POINTS[entry](X, y, g)


# ------------------------------------------------------ unknown option strings
def _fit_clf(**params):
    def call(tiny_cells):
        clf = LeukoNetClassifier(**{**TINY, "preprocessing": "od", **params})
        return clf.fit(tiny_cells.images[:12], tiny_cells.target[:12])

    return call


def _fit_on(estimator, data="rgb"):
    def call(tiny_cells):
        X = tiny_cells.images[:12]
        if data == "od":
            X = StainDeconvolution().fit_transform(X)
        return estimator.fit(X, tiny_cells.target[:12])

    return call


def _just(fn):
    return lambda tiny_cells: fn()


OPTION_CASES = {
    "StainDeconvolution(stain_matrix='giemza')": (
        _fit_on(StainDeconvolution(stain_matrix="giemza")),
        ValueError,
        r"stain_matrix.*giemsa.*giemza",
    ),
    "StainDeconvolution(stain_matrix=2x2)": (
        _fit_on(StainDeconvolution(stain_matrix=np.eye(2))),
        ValueError,
        r"stain_matrix must have shape \(3, 3\)",
    ),
    "StainDeconvolution(log_base=1)": (
        _fit_on(StainDeconvolution(log_base=1)),
        ValueError,
        r"log_base.*other than 1",
    ),
    "LogDCT(log_rule='ln')": (
        _fit_on(LogDCT(log_rule="ln"), "od"),
        ValueError,
        r"log_rule.*'ln'",
    ),
    "LogDCT(threshold='global')": (
        _fit_on(LogDCT(threshold="global"), "od"),
        ValueError,
        r"threshold.*'global'",
    ),
    "LogDCT(energy=2)": (_fit_on(LogDCT(energy=2), "od"), ValueError, r"energy.*Got 2"),
    "ChannelUnion([('a', 'foo')])": (
        _fit_on(ChannelUnion([("a", "foo")])),
        TypeError,
        r"Branch 'a' of ChannelUnion.*'foo'",
    ),
    "make_preprocessing('dct')": (
        _just(lambda: make_preprocessing("dct")),
        ValueError,
        r"Unknown preprocessing name 'dct'.*'od', 'log_dct'",
    ),
    "LeukoNetClassifier(preprocessing='dct')": (
        _fit_clf(preprocessing="dct"),
        ValueError,
        r"'preprocessing' parameter of LeukoNetClassifier must be .*'od'.*Got 'dct'",
    ),
    "LeukoNetClassifier(architecture='resnet')": (
        _fit_clf(architecture="resnet"),
        ValueError,
        r"'architecture' parameter .*'basic'.*Got 'resnet'",
    ),
    "LeukoNetClassifier(activation='gelu')": (
        _fit_clf(activation="gelu"),
        ValueError,
        r"'activation' parameter .*'ptelu'.*Got 'gelu'",
    ),
    "LeukoNetClassifier(augment='some')": (
        _fit_clf(augment="some"),
        ValueError,
        r"'augment' parameter .*'normal'.*Got 'some'",
    ),
    "LeukoNetClassifier(optimizer='rmsprop')": (
        _fit_clf(optimizer="rmsprop"),
        ValueError,
        r"'optimizer' parameter .*'adam'.*Got 'rmsprop'",
    ),
    "LeukoNetClassifier(device='gpu')": (
        _fit_clf(device="gpu"),
        ValueError,
        r"device='gpu'.*'auto', 'cpu' or 'cuda'",
    ),
    # Devices torch knows but cannot use here: before, a raw RuntimeError in
    # the first batch (issue 14).
    "LeukoNetClassifier(device='mps')": (
        _fit_clf(device="mps"),
        ValueError,
        r"device='mps' cannot be used: MPS is not available.*device='cpu'",
    ),
    "LeukoNetClassifier(device='meta')": (
        _fit_clf(device="meta"),
        ValueError,
        r"device='meta' cannot be used: 'meta' tensors hold no data",
    ),
    "LeukoNetClassifier(device='cuda:99')": (
        _fit_clf(device="cuda:99"),
        ValueError,
        r"device='cuda:99' cannot be used: (CUDA is not available|this machine has \d+ "
        r"CUDA device)",
    ),
    "load_safetensors(device='mps')": (
        lambda tiny_cells: load_safetensors("m.safetensors", device="mps"),
        ValueError,
        r"device='mps' cannot be used",
    ),
    "LeukoNetClassifier(mixed_precision='yes')": (
        _fit_clf(mixed_precision="yes"),
        ValueError,
        r"'mixed_precision' parameter .*'auto'.*Got 'yes'",
    ),
    "LeukoNetClassifier(channels_last='yes')": (
        _fit_clf(channels_last="yes"),
        ValueError,
        r"'channels_last' parameter .*'auto'.*Got 'yes'",
    ),
    "LeukoNetClassifier(widths=(4, 4))": (
        _fit_clf(widths=(4, 4)),
        ValueError,
        r"widths must hold exactly 6",
    ),
    "LeukoNetClassifier(max_epochs=0)": (
        _fit_clf(max_epochs=0),
        ValueError,
        r"'max_epochs' parameter .*\[1, inf\).*Got 0",
    ),
    "LeukoNetClassifier(validation_fraction=1.5)": (
        _fit_clf(validation_fraction=1.5),
        ValueError,
        r"'validation_fraction' parameter .*\[0.0, 1.0\).*Got 1.5",
    ),
    "LeukoNetClassifier(batch_size=1)": (
        _fit_clf(batch_size=1),
        ValueError,
        r"batch_size=1: batch normalisation needs at least 2",
    ),
    "LeukoNetClassifier(max_epoch=3)": (
        _fit_clf(max_epoch=3),
        TypeError,
        r"unexpected parameter 'max_epoch'. Did you mean 'max_epochs'",
    ),
    "LeukoNetClassifier(optimizer__lr=0.1)": (
        _fit_clf(optimizer__lr=0.1),
        ValueError,
        r"'optimizer__lr' cannot be passed through to skorch: set lr= instead",
    ),
    "LeukoNetClassifier(optimizer__betaz=...)": (
        _fit_clf(optimizer__betaz=(0.9, 0.9)),
        TypeError,
        r"betaz",
    ),
    "make_stage('4')": (
        _just(lambda: make_stage("4")),
        ValueError,
        r"Unknown stage '4'.*'2C'",
    ),
    "make_stage(None)": (
        _just(lambda: make_stage(None)),
        ValueError,
        r"Unknown stage None",
    ),
    "make_stage('1', foo=1)": (
        _just(lambda: make_stage("1", foo=1)),
        ValueError,
        r"unknown parameter 'foo'.*Valid parameters",
    ),
    "make_stage('1', preprocessing='od')": (
        _just(lambda: make_stage("1", preprocessing="od")),
        ValueError,
        r"'preprocessing' is fixed by the stage",
    ),
    "make_stage('1', cv=3)": (
        _just(lambda: make_stage("1", cv=3)),
        ValueError,
        r"'cv' is a fusion parameter",
    ),
    "FeatureFusionClassifier(cv='outoffold')": (
        _fit_on(FeatureFusionClassifier([("s", StainDeconvolution())], cv="outoffold")),
        ValueError,
        r"'cv' parameter.*'outoffold'",
    ),
    "FeatureFusionClassifier(final_estimator=regressor)": (
        _fit_on(make_stage("3", final_estimator=LinearRegression(), **TINY)),
        TypeError,
        r"final_estimator must be a classifier, got LinearRegression",
    ),
    "FeatureFusionClassifier(estimators=[])": (
        _fit_on(FeatureFusionClassifier([])),
        ValueError,
        r"non-empty list of \(name, estimator\)",
    ),
    "FeatureFusionClassifier(estimators=[('s', 'od')])": (
        _fit_on(FeatureFusionClassifier([("s", "od")])),
        TypeError,
        r"'s' is a str, which has no 'transform'",
    ),
    "FeatureFusionClassifier(cv='prefit') unfitted": (
        _fit_on(FeatureFusionClassifier([("s", make_stage("1"))], cv="prefit")),
        Exception,  # NotFittedError is a ValueError and an AttributeError
        r"cv='prefit' but estimators\['s'\] is not fitted",
    ),
    "make_cells(n_subjects=0)": (
        _just(lambda: make_cells(n_subjects=0)),
        ValueError,
        r"n_subjects",
    ),
    "make_cells(image_size=4)": (
        _just(lambda: make_cells(image_size=4)),
        ValueError,
        r"image_size == 4, must be >= 16",
    ),
    "make_cells(image_size='32')": (
        _just(lambda: make_cells(image_size="32")),
        TypeError,
        r"image_size must be an instance of int",
    ),
    "make_cells(cancer_fraction=1.5)": (
        _just(lambda: make_cells(cancer_fraction=1.5)),
        ValueError,
        r"cancer_fraction",
    ),
    "make_cells(noise=-1)": (
        _just(lambda: make_cells(noise=-1.0)),
        ValueError,
        r"noise",
    ),
    "make_cells(n_subjects=2.5)": (
        _just(lambda: make_cells(n_subjects=2.5)),
        TypeError,
        r"n_subjects must be an instance of int",
    ),
    "load_cnmc(missing folder)": (
        _just(lambda: load_cnmc("/nonexistent/cnmc")),
        ValueError,
        r"root='/nonexistent/cnmc' is not a folder",
    ),
    "load_cnmc(subset='test')": (
        _just(lambda: load_cnmc(".", subset="test")),
        ValueError,
        r"subset must be one of .*'training'.*got 'test'",
    ),
    "load_cnmc(image_size=-3)": (
        _just(lambda: load_cnmc(".", image_size=-3)),
        ValueError,
        r"image_size must be None or a positive integer.*-3",
    ),
    "load_cnmc(folds='a')": (
        _just(lambda: load_cnmc(".", folds="a")),
        ValueError,
        r"folds must be an int or a list of ints",
    ),
}


@pytest.mark.parametrize("case", OPTION_CASES)
def test_bad_options(tiny_cells, case):
    call, exception, match = OPTION_CASES[case]
    with pytest.raises(exception, match=match):
        call(tiny_cells)


def test_load_cnmc_without_the_layout(tmp_path):
    with pytest.raises(ValueError, match=r"No C-NMC training layout found under"):
        load_cnmc(tmp_path)
    (tmp_path / "fold_0").mkdir()
    with pytest.raises(ValueError, match=r"fold_0 has neither an 'all/' nor a 'hem/'"):
        load_cnmc(tmp_path)


# -------------------------------------------------------------------- metrics
Y2 = ["all", "hem"]
CELL_METRICS = [
    M.cnmc_accuracy_score,
    M.f1_cancer_score,
    M.f1_normal_score,
    M.f1_weighted_score,
    M.cnmc_metrics,
]
BAD_METRIC_INPUT = {
    "unseen label in y_true": (
        (["all", "blast"], Y2),
        ValueError,
        r"y_true has labels \['blast'\]",
    ),
    "unseen label in y_pred": (
        (Y2, ["blast", "hem"]),
        ValueError,
        r"y_pred has labels \['blast'\]",
    ),
    "integer label 2": (
        ([2, 0], [1, 0]),
        ValueError,
        r"integer labels \[2\].*1 = 'all'",
    ),
    "length mismatch": (
        (Y2, ["all"]),
        ValueError,
        r"y_true has 2 labels but y_pred has 1",
    ),
    "empty": (([], []), ValueError, r"empty"),
    "2-D": ((np.zeros((2, 2)), [1, 0]), ValueError, r"must be 1-D"),
    "None": ((None, Y2), ValueError, r"y_true is required"),
    "complex": ((np.array([1j, 0]), [1, 0]), TypeError, r"dtype complex128"),
}


@pytest.mark.parametrize("bad", BAD_METRIC_INPUT)
@pytest.mark.parametrize("metric", CELL_METRICS, ids=lambda f: f.__name__)
def test_bad_metric_input(metric, bad):
    args, exception, match = BAD_METRIC_INPUT[bad]
    with pytest.raises(exception, match=match):
        metric(*args)


SUBJECT_METRICS = [
    M.subject_predictions,
    M.subject_accuracy,
    M.subject_level_report,
]
HALF = np.full((2, 2), 0.5)
BAD_SUBJECT_INPUT = {
    "unseen label": (
        dict(y_true=["all", "blast"], y_pred=Y2, groups=["a", "b"]),
        ValueError,
        r"y_true has labels \['blast'\]",
    ),
    "unseen class in classes": (
        dict(y_true=Y2, proba=HALF, groups=["a", "b"], classes=["all", "blast"]),
        ValueError,
        r"classes has labels \['blast'\]",
    ),
    "groups length": (
        dict(y_true=Y2, y_pred=Y2, groups=["a"]),
        ValueError,
        r"groups has 1 subject IDs but y_true has 2 cells",
    ),
    "y_pred length": (
        dict(y_true=Y2, y_pred=["all"], groups=["a", "b"]),
        ValueError,
        r"y_pred has 1 labels but y_true has 2 cells",
    ),
    "proba of 3 columns": (
        dict(y_true=Y2, proba=np.ones((2, 3)) / 3, groups=["a", "b"]),
        ValueError,
        r"proba must have shape .*got shape \(2, 3\)",
    ),
    "proba not in [0, 1]": (
        dict(y_true=Y2, proba=np.array([2.0, 0.5]), groups=["a", "b"]),
        ValueError,
        r"probabilities in \[0, 1\].*not decision_function",
    ),
    "NaN proba": (
        dict(y_true=Y2, proba=np.array([np.nan, 0.5]), groups=["a", "b"]),
        ValueError,
        r"finite probabilities",
    ),
    "string proba": (
        dict(y_true=Y2, proba=np.array(["a", "b"]), groups=["a", "b"]),
        TypeError,
        r"proba has dtype <U1",
    ),
    "neither y_pred nor proba": (
        dict(y_true=Y2, groups=["a", "b"]),
        ValueError,
        r"pass y_pred .* or proba",
    ),
    "unknown method": (
        dict(y_true=Y2, y_pred=Y2, groups=["a", "b"], method="median"),
        ValueError,
        r"method must be one of .*'median'",
    ),
    "NaN groups": (
        dict(y_true=Y2, y_pred=Y2, groups=[np.nan, 1.0]),
        ValueError,
        r"NaN subject IDs",
    ),
}


@pytest.mark.parametrize("bad", BAD_SUBJECT_INPUT)
@pytest.mark.parametrize("metric", SUBJECT_METRICS, ids=lambda f: f.__name__)
def test_bad_subject_metric_input(metric, bad):
    kwargs, exception, match = BAD_SUBJECT_INPUT[bad]
    with pytest.raises(exception, match=match):
        metric(**kwargs)


def test_misclassified_subjects_bad_threshold():
    with pytest.raises(
        ValueError, match=r"min_error must be a number in \[0, 1\], got 2"
    ):
        M.misclassified_subjects(Y2, Y2, groups=["a", "b"], min_error=2)


def test_scorer_given_an_unseen_label(fitted, tiny_cells):
    y = tiny_cells.target.astype(object)
    y[:3] = "blast"
    with pytest.raises(ValueError, match=r"labels \['blast'\]"):
        M.CNMC_SCORING["f1_weighted"](fitted["clf"], tiny_cells.images, y)


# ------------------------------------------------- random shapes and dtypes
DTYPES = st.sampled_from(
    [
        np.uint8,
        np.int8,
        np.int16,
        np.int64,
        np.uint16,
        np.float16,
        np.float32,
        np.float64,
        np.bool_,
        np.complex64,
        np.object_,
        "U3",
        "S2",
        "M8[s]",
    ]
)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5)
FILLS = st.sampled_from([0, 1, 7, 255, 300, -5, np.nan, np.inf])


def _make(shape, dtype, fill):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.full(shape, fill).astype(dtype)


def _only_value_or_type_errors(call, X):
    """Run ``call(X)``; any error must be a ValueError or TypeError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call(X)
        except (ValueError, TypeError):
            return None


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(shape=SHAPES, dtype=DTYPES, fill=FILLS)
def test_random_bad_arrays_in_checks_and_transformers(shape, dtype, fill):
    X = _make(shape, dtype, fill)
    checked = _only_value_or_type_errors(check_rgb_images, X)
    if checked is not None:
        assert checked.ndim == 4 and checked.shape[-1] == 3 and checked.shape[0] > 0
        assert checked.dtype == np.uint8 or checked.dtype.kind == "f"
        assert 0 not in checked.shape
    out = _only_value_or_type_errors(lambda a: StainDeconvolution().fit_transform(a), X)
    if out is not None:
        assert out.shape == (shape[0], 3, shape[1], shape[2])
        assert np.isfinite(out).all()
    net_input = _only_value_or_type_errors(check_net_input, X)
    if net_input is not None:
        assert net_input[1] in ("rgb", "channels_first")
    out = _only_value_or_type_errors(lambda a: LogDCT().fit_transform(a), X)
    if out is not None:
        assert out.shape == X.shape and np.isfinite(out).all()
    _only_value_or_type_errors(check_channels_first, X)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(shape=SHAPES, dtype=DTYPES, fill=FILLS)
def test_random_bad_arrays_to_a_fitted_network(fitted, shape, dtype, fill):
    X = _make(shape, dtype, fill)
    # None of these is a batch of 32x32 RGB images: every one must be refused
    # with a ValueError or TypeError, never reach torch.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((ValueError, TypeError)):
            fitted["clf"].predict_proba(X)
