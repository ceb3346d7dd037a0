"""Conformance suite: every estimator of the library against every check.

To cover a new estimator, add ONE line to ``ESTIMATORS`` below::

    ("MyEstimator", lambda: MyEstimator(small=True, random_state=0), "rgb"),

- the id names the test cases;
- the factory returns a small, fast, seeded instance (tiny networks, 1-2
  epochs): the checks fit it several times on 32x32 images;
- the input kind says what it is fitted on (see ``INPUT_KINDS``): ``"rgb"``
  uint8 cells ``(n, 32, 32, 3)``; ``"od"`` float32 optical density
  ``(n, 3, 32, 32)``; ``"rgb_labelled"`` the same cells with labels
  ``"all"``/``"hem"`` passed as ``y`` and subject IDs as ``groups`` (for
  classifiers such as ``LeukoNetClassifier`` or ``FeatureFusionClassifier``);
  ``"crop"`` uint8 smear crops ``(n, 32, 32, 3)``: one white cell (purple
  nucleus, lilac cytoplasm) near the centre, pink red cells, light
  background (for ``CellSegmenter``).

The checks read the estimator's tags: a transformer whose
``transformer_tags.preserves_dtype`` holds the input's dtype (image-to-image
transformers such as ``StainNormalizer``: uint8 in, uint8 out) must keep it,
every other ``transform`` emits float32; an estimator tagged
``requires_fit=False`` (stateless, such as ``CellSegmenter``) must transform
without fit instead of raising ``NotFittedError``.

Part (a) runs the data-independent checks of
:mod:`sklearn.utils.estimator_checks` as they are (scikit-learn's other checks
feed 2-D tables, which image estimators refuse by design). Part (b) re-states
the data-dependent conventions on images.
"""

import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_get_feature_names_out_error,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    check_valid_tag_types,
)

from sklearn_leuko import LeukoNetClassifier, make_stage
from sklearn_leuko.preprocessing import (
    STAIN_MATRICES,
    CellSegmenter,
    LogDCT,
    StainDeconvolution,
    StainNormalizer,
    make_preprocessing,
)

# --------------------------------------------------------------------- registry
ESTIMATORS = [
    ("StainDeconvolution", StainDeconvolution, "rgb"),
    (
        "StainDeconvolution-macenko",
        lambda: StainDeconvolution("macenko", n_pixels=5000, random_state=0),
        "rgb",
    ),
    ("LogDCT", LogDCT, "od"),
    (
        "LogDCT-fit-log1p",
        lambda: LogDCT(
            threshold="fit", log_rule="log1p", scale=10.0, subsample=4, random_state=0
        ),
        "od",
    ),
    ("ChannelUnion-od+log_dct", lambda: make_preprocessing("od+log_dct"), "rgb"),
    ("StainNormalizer-reinhard", lambda: StainNormalizer("reinhard"), "rgb"),
    ("StainNormalizer-macenko", lambda: StainNormalizer(random_state=0), "rgb"),
    (
        "StainNormalizer-vahadane",
        lambda: StainNormalizer("vahadane", random_state=0),
        "rgb",
    ),
    ("StainNormalizer-reinhard-crop", lambda: StainNormalizer("reinhard"), "crop"),
    ("CellSegmenter", CellSegmenter, "crop"),
    (
        "CellSegmenter-canvas-flag",
        lambda: CellSegmenter(image_size=40, cell_fraction=0.2, on_failure="flag"),
        "crop",
    ),
    (
        "LeukoNetClassifier",
        lambda: LeukoNetClassifier(
            preprocessing="od", widths=(4,) * 6, max_epochs=1, verbose=0, random_state=0
        ),
        "rgb_labelled",
    ),
    (
        "FeatureFusionClassifier-3C",
        lambda: make_stage(
            "3C", widths=(4,) * 6, max_epochs=1, verbose=0, random_state=0
        ),
        "rgb_labelled",
    ),
    (
        "LeukoNetClassifier-tta8",
        lambda: LeukoNetClassifier(
            preprocessing="od",
            widths=(4,) * 6,
            max_epochs=1,
            verbose=0,
            random_state=0,
            tta=8,
        ),
        "rgb_labelled",
    ),
    (
        "FeatureFusionClassifier-3C-tta4",
        lambda: make_stage(
            "3C", widths=(4,) * 6, max_epochs=1, verbose=0, random_state=0, tta=4
        ),
        "rgb_labelled",
    ),
]

# Checks of sklearn.utils.estimator_checks that need no data (sklearn 1.9.1).
DATA_FREE_CHECKS = [
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_valid_tag_types,
    check_no_attributes_set_in_init,
    check_mixin_order,
    check_parameters_default_constructible,
    check_get_params_invariance,
    check_set_params,
    check_do_not_raise_errors_in_init_or_set_params,
    check_get_feature_names_out_error,
]


# --------------------------------------------------------------------- data
def tiny_rgb_cells(n=6, size=32, seed=0):
    """uint8 (n, size, size, 3): a Giemsa-like two-stain disc on black."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.zeros((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        radius = rng.uniform(0.3, 0.45) * size
        mask = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2
        concentrations = rng.uniform(0.0, 0.8, (size, size, 2))
        rgb = 255.0 * 10.0 ** -(concentrations @ STAIN_MATRICES["giemsa"][:2])
        images[i][mask] = np.clip(np.round(rgb[mask]), 1, 255)
    return images


def tiny_crops(n=4, size=32, seed=0):
    """uint8 (n, size, size, 3): a white cell among red cells, light background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    crops = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        rgb = np.full((size, size, 3), (235.0, 215.0, 200.0))
        for cy, cx in ((4, 5), (size - 5, size - 4)):
            rgb[(yy - cy) ** 2 + (xx - cx) ** 2 < 16] = (215, 130, 140)
        cy, cx = size / 2 + rng.uniform(-3, 3, 2)
        radius = rng.uniform(0.22, 0.3) * size
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        rgb[d2 < radius**2] = (180, 160, 210)  # cytoplasm
        rgb[d2 < (0.65 * radius) ** 2] = (90, 50, 150)  # nucleus
        rgb += rng.normal(0, 3, rgb.shape)
        crops[i] = np.clip(np.round(rgb), 0, 255)
    return crops


def _rgb():
    return tiny_rgb_cells(), None, {}


def _crop():
    return tiny_crops(), None, {}


def _od():
    return StainDeconvolution().fit_transform(tiny_rgb_cells()), None, {}


def _rgb_labelled():
    X = tiny_rgb_cells(n=12)
    y = np.array(["all", "hem"] * 6)
    groups = np.repeat(["1", "2", "H3", "H4"], 3)
    return X, y, {"groups": groups}


INPUT_KINDS = {
    "rgb": _rgb,
    "od": _od,
    "rgb_labelled": _rgb_labelled,
    "crop": _crop,
}

_IDS = [entry[0] for entry in ESTIMATORS]


@pytest.fixture(params=ESTIMATORS, ids=_IDS)
def case(request):
    """(estimator, X, y, fit_params) for one registry entry."""
    _, factory, kind = request.param
    X, y, fit_params = INPUT_KINDS[kind]()
    return factory(), X, y, fit_params


def _fit(est, X, y, fit_params):
    return est.fit(X, y, **fit_params)


def _outputs(est, X):
    """Every output method the estimator has, by name."""
    methods = ["transform", "predict", "predict_proba", "decision_function"]
    return {m: getattr(est, m)(X) for m in methods if hasattr(est, m)}


def _assert_same_outputs(a, b):
    assert a.keys() == b.keys()
    for method in a:
        if np.asarray(a[method]).dtype.kind in "fc":
            np.testing.assert_allclose(
                a[method], b[method], rtol=1e-6, atol=1e-6, err_msg=method
            )
        else:
            np.testing.assert_array_equal(a[method], b[method], err_msg=method)


# --------------------------------------------------------------------- (a)
@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("entry", ESTIMATORS, ids=_IDS)
def test_sklearn_data_free_checks(entry, check):
    name, factory, _ = entry
    estimator = factory()
    if check is check_get_feature_names_out_error and not hasattr(
        estimator, "get_feature_names_out"
    ):
        pytest.skip("no get_feature_names_out")
    check(type(estimator).__name__, estimator)


# --------------------------------------------------------------------- (b)
def test_fit_returns_self(case):
    est, X, y, fit_params = case
    assert _fit(est, X, y, fit_params) is est


def test_not_fitted_error_before_fit(case):
    est, X, y, fit_params = case
    methods = [
        m
        for m in ("transform", "predict", "predict_proba", "to_module")
        if hasattr(est, m)
    ]
    assert methods
    if not get_tags(est).requires_fit:
        # stateless: the same output without fit as after it
        expected = _outputs(_fit(clone(est), X, y, fit_params), X)
        _assert_same_outputs(_outputs(est, X), expected)
        return
    for method in methods:
        args = () if method == "to_module" else (X,)
        with pytest.raises(NotFittedError):
            getattr(est, method)(*args)


def test_pickle_round_trip_gives_same_output(case):
    est, X, y, fit_params = case
    _fit(est, X, y, fit_params)
    restored = pickle.loads(pickle.dumps(est))
    _assert_same_outputs(_outputs(est, X), _outputs(restored, X))


def test_fit_is_idempotent(case):
    est, X, y, fit_params = case
    first = _outputs(_fit(est, X, y, fit_params), X)
    second = _outputs(_fit(est, X, y, fit_params), X)
    _assert_same_outputs(first, second)


def test_fit_transform_equals_fit_then_transform(case):
    est, X, y, fit_params = case
    if not hasattr(est, "fit_transform"):
        pytest.skip("no fit_transform")
    via_fit_transform = est.fit_transform(X, y, **fit_params)
    via_transform = clone(est).fit(X, y, **fit_params).transform(X)
    np.testing.assert_allclose(via_fit_transform, via_transform, rtol=1e-6, atol=1e-6)


def test_transform_is_float32_and_keeps_n_samples(case):
    est, X, y, fit_params = case
    _fit(est, X, y, fit_params)
    preserved = get_tags(est).transformer_tags
    preserved = preserved.preserves_dtype if preserved is not None else []
    for method, out in _outputs(est, X).items():
        assert out.shape[0] == X.shape[0], method
        if method != "transform":
            continue
        # the input's dtype where the tags say it is kept, float32 otherwise
        expected = X.dtype if X.dtype.name in preserved else np.float32
        assert out.dtype == expected, (out.dtype, preserved)
        if out.dtype == np.uint8:  # image to image: RGB images (n, H, W, 3)
            assert out.ndim == 4 and out.shape[-1] == 3
        else:
            assert np.isfinite(out).all()


def test_input_is_not_mutated(case):
    est, X, y, fit_params = case
    X_copy = X.copy()
    y_copy = None if y is None else y.copy()
    _fit(est, X, y, fit_params)
    _outputs(est, X)
    np.testing.assert_array_equal(X, X_copy)
    if y is not None:
        np.testing.assert_array_equal(y, y_copy)


def test_read_only_input_is_accepted(case):
    est, X, y, fit_params = case
    expected = _outputs(_fit(clone(est), X, y, fit_params), X)
    X = X.copy()
    X.setflags(write=False)
    _assert_same_outputs(_outputs(_fit(est, X, y, fit_params), X), expected)


def test_clone_keeps_params_and_drops_fitted_state(case):
    est, X, y, fit_params = case
    _fit(est, X, y, fit_params)
    cloned = clone(est)
    # repr, not joblib.hash: clone deep-copies values that the original may share
    # between nested estimators (e.g. one widths tuple), which changes pickle bytes.
    assert {k: repr(v) for k, v in cloned.get_params().items()} == {
        k: repr(v) for k, v in est.get_params().items()
    }
    assert set(cloned.get_params()) == set(est.get_params())
    assert not [k for k in vars(cloned) if k.endswith("_") and not k.startswith("_")]
    if get_tags(est).requires_fit:
        with pytest.raises(NotFittedError):
            _outputs(cloned, X)


def test_fit_does_not_change_params(case):
    est, X, y, fit_params = case
    before = joblib.hash(est.get_params(deep=False))
    _fit(est, X, y, fit_params)
    assert joblib.hash(est.get_params(deep=False)) == before


def test_fit_sets_only_trailing_underscore_attributes(case):
    est, X, y, fit_params = case
    public_before = {k for k in vars(est) if not k.startswith("_")}
    _fit(est, X, y, fit_params)
    new = {k for k in vars(est) if not k.startswith("_")} - public_before
    if get_tags(est).requires_fit:
        assert new, "fit should set at least one fitted attribute"
    assert all(k.endswith("_") for k in new), sorted(new)
