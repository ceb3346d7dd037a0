"""StainDeconvolution, LogDCT, ChannelUnion, make_preprocessing and to_torch_module."""

import math
import pickle

import joblib
import numpy as np
import pytest
import scipy.fft
import skimage.color
import skimage.data
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from sklearn_leuko.preprocessing import (
    STAIN_MATRICES,
    ChannelUnion,
    LogDCT,
    StainDeconvolution,
    make_preprocessing,
    to_torch_module,
)

GIEMSA = STAIN_MATRICES["giemsa"]


def make_stained_cells(n=6, size=32, stains=GIEMSA[:2], seed=0):
    """uint8 (n, size, size, 3): a two-stain disc on a black background.

    Concentrations are independent uniforms, so the pixels span the plane of
    the two stain vectors (what Macenko needs), rendered by Beer-Lambert.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.zeros((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        radius = rng.uniform(0.3, 0.45) * size
        mask = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2
        concentrations = rng.uniform(0.0, 0.8, (size, size, len(stains)))
        rgb = 255.0 * 10.0 ** -(concentrations @ np.asarray(stains))
        images[i][mask] = np.clip(np.round(rgb[mask]), 1, 255)
    return images


def to_nchw(X):
    return torch.from_numpy(X).permute(0, 3, 1, 2).float()


# ----------------------------------------------------------------- stain matrices
def test_named_stain_matrices_match_skimage():
    np.testing.assert_allclose(
        STAIN_MATRICES["giemsa"], skimage.color.rgb_from_bex, atol=1e-8
    )
    np.testing.assert_allclose(
        STAIN_MATRICES["hed"], skimage.color.rgb_from_hed, atol=1e-8
    )
    assert not STAIN_MATRICES["giemsa"].flags.writeable


def test_every_variant_stores_stain_matrix():
    X = make_stained_cells(3)
    for matrix in ["giemsa", "hed", "identity", "macenko", 2 * np.eye(3)]:
        est = StainDeconvolution(stain_matrix=matrix, random_state=0).fit(X)
        assert est.stain_matrix_.shape == (3, 3)
    np.testing.assert_array_equal(est.stain_matrix_, 2 * np.eye(3))


def test_pure_stain_image_deconvolves_to_one_channel():
    # Eosin only, concentration 0.5: OD = 0.5 * eosin vector.
    rgb = np.round(255.0 * 10.0 ** -(0.5 * GIEMSA[1]))
    X = np.broadcast_to(rgb.astype(np.uint8), (1, 8, 8, 3)).copy()
    Xt = StainDeconvolution().fit_transform(X)
    np.testing.assert_allclose(Xt[0, 1], 0.5, atol=0.01)
    np.testing.assert_allclose(Xt[0, [0, 2]], 0.0, atol=0.01)


def test_identity_matrix_outputs_sd_layer_od():
    X = np.array([[[[255, 25, 0]]]], dtype=np.uint8)
    Xt = StainDeconvolution(stain_matrix="identity").fit_transform(X)
    np.testing.assert_allclose(
        Xt[0, :, 0, 0], [0.0, math.log10(255 / 25), 0.0], rtol=1e-6
    )


@pytest.mark.parametrize("log_base, factor", [(10.0, 6.0), (math.e, math.log(1e6))])
def test_agrees_with_skimage_separate_stains_up_to_scale(log_base, factor):
    # skimage: OD normalised by ln(1e6) and clipped at 0; ours: log_base OD, unclipped.
    assert factor == pytest.approx(math.log(1e6) / math.log(log_base))
    ihc = skimage.data.immunohistochemistry()[::2, ::2]
    ours = StainDeconvolution(log_base=log_base).fit_transform(ihc[None])[0]
    ours = np.moveaxis(ours, 0, -1)
    ref = skimage.color.separate_stains(ihc, skimage.color.bex_from_rgb)
    not_black = (ihc > 0).all(axis=-1)
    np.testing.assert_allclose(
        np.maximum(ours[not_black], 0) / factor, ref[not_black], atol=1e-5
    )


def test_black_background_is_finite_zero():
    X = make_stained_cells(2)
    Xt = StainDeconvolution().fit_transform(X)
    background = (X == 0).all(axis=-1)
    assert np.isfinite(Xt).all()
    assert np.abs(np.moveaxis(Xt, 1, -1)[background]).max() == 0


def test_float_rgb_input_matches_uint8():
    X = make_stained_cells(2)
    est = StainDeconvolution().fit(X)
    np.testing.assert_allclose(
        est.transform(X.astype(np.float64)), est.transform(X), atol=1e-6
    )


def test_chunking_does_not_change_the_result():
    X = make_stained_cells(5)
    full = StainDeconvolution(batch_size=64).fit_transform(X)
    chunked = StainDeconvolution(batch_size=2).fit_transform(X)
    # Equal up to float32 rounding (the 1x1 convolution's kernels vary with the batch).
    np.testing.assert_allclose(full, chunked, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------- Macenko
def test_macenko_recovers_the_stain_vectors():
    X = make_stained_cells(6, size=48)
    est = StainDeconvolution(
        stain_matrix="macenko", macenko_alpha=0.5, random_state=0
    ).fit(X)
    cosines = np.sum(est.stain_matrix_[:2] * GIEMSA[:2], axis=1) / np.linalg.norm(
        GIEMSA[:2], axis=1
    )
    assert (cosines > 0.99).all(), cosines
    np.testing.assert_allclose(np.linalg.norm(est.stain_matrix_, axis=1), 1.0)


def test_macenko_ignores_black_background_and_is_seeded():
    X = make_stained_cells(4)
    a = StainDeconvolution(stain_matrix="macenko", n_pixels=2000, random_state=1).fit(X)
    b = StainDeconvolution(stain_matrix="macenko", n_pixels=2000, random_state=1).fit(X)
    np.testing.assert_array_equal(a.stain_matrix_, b.stain_matrix_)
    # Padding with more black canvas must not move the estimate much.
    padded = np.zeros((4, 64, 64, 3), dtype=np.uint8)
    padded[:, 16:48, 16:48] = X
    c = StainDeconvolution(stain_matrix="macenko", n_pixels=8000, random_state=1).fit(
        padded
    )
    np.testing.assert_allclose(c.stain_matrix_[:2], a.stain_matrix_[:2], atol=0.03)


def test_macenko_errors_on_background_only_and_single_stain():
    with pytest.raises(ValueError, match="stained pixels"):
        StainDeconvolution(stain_matrix="macenko").fit(np.zeros((2, 8, 8, 3), np.uint8))
    one_stain = make_stained_cells(3, stains=GIEMSA[:1])
    with pytest.raises(ValueError, match="nearly identical"):
        StainDeconvolution(stain_matrix="macenko", random_state=0).fit(one_stain)


def known_stain_cells(n=6, size=48, edge=1.0, seed=0):
    """Cells made of two KNOWN stains, with a soft (anti-aliased) rim.

    A nucleus of the first stain only and a cytoplasm of the second only
    (concentrations x U(0.8, 1.2)), rendered by Beer-Lambert and multiplied
    by a coverage that falls from 1 to 0 over ``edge`` pixels at the cell's
    border: rim pixels mix the cell with the black background, as
    anti-aliasing and segmentation halos do in real images.
    """
    rng = np.random.default_rng(seed)
    stains = GIEMSA[:2] / np.linalg.norm(GIEMSA[:2], axis=1, keepdims=True)
    yy, xx = np.mgrid[:size, :size].astype(float)
    images = []
    for _ in range(n):
        cy, cx = size / 2 + rng.normal(0, 1.5, 2)
        radius = size * rng.uniform(0.32, 0.42)
        coverage = np.clip((radius - np.hypot(yy - cy, xx - cx)) / edge + 0.5, 0, 1)
        ny, nx = cy + rng.normal(0, 2), cx + rng.normal(0, 2)
        nucleus = np.hypot(yy - ny, xx - nx) < 0.55 * radius
        conc = np.where(nucleus[..., None], (0.8, 0.0), (0.0, 0.35))
        conc = conc * rng.uniform(0.8, 1.2, (size, size, 1))
        rgb = 255.0 * 10.0 ** -(conc @ stains) * coverage[..., None]
        images.append(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    return np.stack(images), stains


def _angle_errors(estimated, stains):
    """Angle in degrees between each estimated stain vector and its true one."""
    cos = np.sum(estimated[:2] * stains, axis=1) / np.linalg.norm(estimated[:2], axis=1)
    return np.degrees(np.arccos(np.clip(np.abs(cos), 0, 1)))


@pytest.mark.parametrize("edge", [1.0, 2.0])
def test_macenko_erosion_removes_the_rim_bias(edge):
    X, stains = known_stain_cells(edge=edge)
    default = StainDeconvolution("macenko", random_state=0).fit(X)
    assert default.macenko_erosion == 2
    assert (_angle_errors(default.stain_matrix_, stains) < 5).all()
    # the data do show the rim effect: without erosion one vector is far off
    raw = StainDeconvolution("macenko", macenko_erosion=0, random_state=0).fit(X)
    assert _angle_errors(raw.stain_matrix_, stains).max() > 10


def test_macenko_erosion_one_pixel_suffices_for_a_one_pixel_rim():
    X, stains = known_stain_cells(edge=1.0, seed=3)
    est = StainDeconvolution("macenko", macenko_erosion=1, random_state=0).fit(X)
    assert (_angle_errors(est.stain_matrix_, stains) < 5).all()


def test_macenko_erosion_larger_than_the_cells_is_explained():
    X, _ = known_stain_cells(n=2, size=16)
    with pytest.raises(ValueError, match=r"smaller macenko_erosion"):
        StainDeconvolution("macenko", macenko_erosion=8, random_state=0).fit(X)


def test_macenko_erosion_is_per_image_and_ignores_the_image_edge():
    # cells filling their images keep every pixel: the image edge is no rim, and
    # an all-black image next to them in the same chunk does not erode them
    X, _ = known_stain_cells(n=4, size=48)
    full = X[:, 16:32, 16:32]  # crops inside the cells: no black at all
    assert (full > 0).all()
    X = np.concatenate([np.zeros_like(full[:2]), full])
    est = StainDeconvolution("macenko", n_pixels=4000, random_state=0)
    a = est.set_params(macenko_erosion=0).fit(X).stain_matrix_
    b = est.set_params(macenko_erosion=3).fit(X).stain_matrix_
    c = est.set_params(macenko_erosion=3, batch_size=1).fit(X).stain_matrix_
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.zeros((2, 8, 8), np.uint8), ValueError, "4-D"),
        (np.zeros((8, 8, 3), np.uint8), ValueError, "single image"),
        (np.zeros((2, 8, 8, 1), np.uint8), ValueError, "3 colour channels"),
        (np.zeros((2, 8, 8, 4), np.uint8), ValueError, "alpha"),
        (np.full((2, 4, 4, 3), 300.0), ValueError, r"\[0, 255\]"),
        (np.full((2, 4, 4, 3), -1.0), ValueError, r"\[0, 255\]"),
        (np.full((2, 4, 4, 3), np.nan), ValueError, "NaN"),
        (np.zeros((0, 4, 4, 3), np.uint8), ValueError, "empty"),
        (np.zeros((2, 4, 4, 3), bool), TypeError, "dtype"),
    ],
)
def test_stain_bad_input(X, error, match):
    with pytest.raises(error, match=match):
        StainDeconvolution().fit(X)
    est = StainDeconvolution().fit(make_stained_cells(1, size=4))
    with pytest.raises(error, match=match):
        est.transform(X)


def test_stain_bad_input_in_a_later_chunk_is_caught():
    X = np.full((5, 4, 4, 3), 100.0)
    X[4, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        StainDeconvolution(batch_size=2).fit(X)


def test_error_message_quotes_the_full_shape():
    with pytest.raises(ValueError, match=r"\(7, 8, 8, 4\)"):
        StainDeconvolution().fit(np.zeros((7, 8, 8, 4), np.uint8))


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"stain_matrix": "bex"}, ValueError, "stain_matrix"),
        ({"stain_matrix": np.ones((3, 3))}, ValueError, "singular"),
        ({"stain_matrix": np.eye(2)}, ValueError, r"shape \(3, 3\)"),
        ({"log_base": 1.0}, ValueError, "log_base"),
        ({"i0": 0}, ValueError, "i0"),
    ],
)
def test_stain_bad_parameters(params, error, match):
    with pytest.raises(error, match=match):
        StainDeconvolution(**params).fit(make_stained_cells(1, size=4))


# ----------------------------------------------------------------- LogDCT
def _od(n=4, size=16, seed=0):
    return StainDeconvolution().fit_transform(
        make_stained_cells(n, size=size, seed=seed)
    )


def test_log_dct_agrees_with_scipy_reference():
    od = _od(2)
    Xt = LogDCT(energy=0.9).fit_transform(od)
    for i in range(2):
        for ch in range(3):
            c = scipy.fft.dctn(od[i, ch].astype(np.float64), type=2, norm="ortho")
            squared = np.sort(c.ravel() ** 2)[::-1]
            k = np.searchsorted(np.cumsum(squared), 0.9 * squared.sum())
            keep = np.abs(c) >= np.sqrt(squared[k]) * (1 - 1e-5)
            expected = np.where(
                keep, np.sign(c) * np.log10(np.maximum(np.abs(c), 1)), 0
            )
            np.testing.assert_allclose(Xt[i, ch], expected, atol=1e-4)


def test_log_dct_constant_image():
    Xt = LogDCT().fit_transform(np.full((2, 3, 8, 8), 0.5, np.float32))
    assert np.count_nonzero(Xt) == 6
    np.testing.assert_allclose(Xt[:, :, 0, 0], math.log10(4.0), rtol=1e-6)


def test_log_dct_nonzero_fraction_matches_output():
    od = _od(4)
    for params in [{}, {"log_rule": "log1p"}, {"scale": 50.0}, {"threshold": "fit"}]:
        est = LogDCT(**params).fit(od)
        Xt = est.transform(od)
        assert est.nonzero_fraction_ == pytest.approx(np.count_nonzero(Xt) / Xt.size)
    # On small OD values the paper rule zeroes kept values below 1; scaling recovers them.
    assert (
        LogDCT().fit(od).nonzero_fraction_
        < LogDCT(scale=50.0).fit(od).nonzero_fraction_
    )


def test_log_dct_fit_thresholds_are_median_of_per_image_thresholds():
    from sklearn_leuko.nn._functional import dct2, energy_threshold

    od = _od(5)
    est = LogDCT(threshold="fit", scale=2.0).fit(od)
    per_image = (
        energy_threshold(dct2(torch.from_numpy(od)) * 2.0, 0.95).double().numpy()
    )
    np.testing.assert_allclose(est.thresholds_, np.median(per_image, axis=0), rtol=1e-6)
    assert not hasattr(LogDCT().fit(od), "thresholds_")
    # The fitted thresholds are used as is on a new image.
    x = _od(1, seed=9)
    c = dct2(torch.from_numpy(x)).numpy() * 2.0
    keep = np.abs(c) >= est.thresholds_[None, :, None, None]
    np.testing.assert_array_equal(est.transform(x) != 0, keep & (np.abs(c) > 1))


def test_log_dct_subsample_bounds_fit_and_is_seeded():
    od = _od(6)
    a = LogDCT(threshold="fit", subsample=3, random_state=0).fit(od)
    b = LogDCT(threshold="fit", subsample=3, random_state=0).fit(od)
    np.testing.assert_array_equal(a.thresholds_, b.thresholds_)
    assert a.nonzero_fraction_ == b.nonzero_fraction_


def test_log_dct_threshold_changed_after_fit_needs_refit():
    est = LogDCT().fit(_od(2))
    est.set_params(threshold="fit")
    with pytest.raises(ValueError, match="call fit again"):
        est.transform(_od(2))


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros((2, 8, 8), np.float32), "4-D"),
        (np.full((2, 3, 4, 4), np.nan, np.float32), "NaN"),
        (np.zeros((0, 3, 4, 4), np.float32), "empty"),
    ],
)
def test_log_dct_bad_input(X, match):
    with pytest.raises(ValueError, match=match):
        LogDCT().fit(X)


def test_log_dct_channel_count_must_match_fit():
    est = LogDCT().fit(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="channels"):
        est.transform(np.zeros((2, 1, 4, 4), np.float32))


def test_log_dct_bad_parameters():
    with pytest.raises(ValueError, match="energy"):
        LogDCT(energy=1.5).fit(_od(1))
    with pytest.raises(ValueError, match="log_rule"):
        LogDCT(log_rule="ln").fit(_od(1))


# ----------------------------------------------------------------- ChannelUnion
class _Crop(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        self.fitted_ = True
        return self

    def transform(self, X):
        return np.zeros((len(X), 1, 2, 2), np.float32)


def test_channel_union_concatenates_in_order():
    X = make_stained_cells(3)
    union = ChannelUnion(
        [
            ("od", StainDeconvolution()),
            ("raw", StainDeconvolution(stain_matrix="identity")),
        ]
    )
    Xt = union.fit_transform(X)
    assert Xt.shape == (3, 6, 32, 32) and Xt.dtype == np.float32
    np.testing.assert_array_equal(Xt[:, :3], StainDeconvolution().fit_transform(X))
    np.testing.assert_array_equal(
        Xt[:, 3:], StainDeconvolution("identity").fit_transform(X)
    )
    np.testing.assert_array_equal(union.transform(X), Xt)


def test_channel_union_nested_params_and_drop():
    union = make_preprocessing("od+log_dct")
    assert union.get_params()["dct__dct__energy"] == 0.95
    union.set_params(dct__dct__energy=0.5, od="drop")
    assert union.named_transformers["dct"].named_steps["dct"].energy == 0.5
    X = make_stained_cells(2)
    assert union.fit_transform(X).shape == (2, 3, 32, 32)
    assert list(union.named_transformers_) == ["dct"]


def test_channel_union_fits_clones_and_parallel_matches_serial():
    X = make_stained_cells(3)
    od = StainDeconvolution()
    serial = ChannelUnion([("od", od), ("dct", make_preprocessing("log_dct"))]).fit(X)
    assert not hasattr(od, "stain_matrix_")
    parallel = ChannelUnion(
        [("od", StainDeconvolution()), ("dct", make_preprocessing("log_dct"))], n_jobs=2
    )
    # Threads keep the test fast (process workers would import torch anew).
    with joblib.parallel_config(backend="threading"):
        parallel.fit(X)
        np.testing.assert_array_equal(serial.transform(X), parallel.transform(X))


def test_channel_union_spatial_mismatch_is_a_clear_error():
    union = ChannelUnion([("od", StainDeconvolution()), ("crop", _Crop())])
    with pytest.raises(ValueError, match=r"od: \(2, 3, 8, 8\), crop: \(2, 1, 2, 2\)"):
        union.fit_transform(make_stained_cells(2, size=8))


@pytest.mark.parametrize(
    "transformer_list, error, match",
    [
        ([], TypeError, "non-empty list"),
        ([("a", "drop")], ValueError, "no branch left"),
        ([("a", StainDeconvolution()), ("a", LogDCT())], ValueError, "not unique"),
        ([("n_jobs", StainDeconvolution())], ValueError, "conflict"),
        ([("a", object())], TypeError, "fit and transform"),
    ],
)
def test_channel_union_bad_transformer_list(transformer_list, error, match):
    with pytest.raises(error, match=match):
        ChannelUnion(transformer_list).fit(make_stained_cells(1, size=4))


def test_channel_union_verbose_prints(capsys):
    ChannelUnion([("od", StainDeconvolution())], verbose=True).fit(
        make_stained_cells(1, size=4)
    )
    assert "(step 1 of 1) Processing od" in capsys.readouterr().out


# ----------------------------------------------------------------- torch twins
def _fitted_transformers():
    X = make_stained_cells(4)
    od = StainDeconvolution().fit_transform(X)
    return (
        X,
        od,
        {
            "od": make_preprocessing("od").fit(X),
            "log_dct": make_preprocessing("log_dct").fit(X),
            "od+log_dct": make_preprocessing("od+log_dct").fit(X),
            "macenko": StainDeconvolution("macenko", random_state=0).fit(X),
            "torchstain_od": StainDeconvolution(
                "hed", i0=240.0, offset=1.0, log_base=math.e, zero_as_background=False
            ).fit(X),
            "log1p_fit_union": ChannelUnion(
                [
                    ("od", StainDeconvolution()),
                    (
                        "dct",
                        Pipeline(
                            [
                                ("od", StainDeconvolution()),
                                (
                                    "dct",
                                    LogDCT(
                                        log_rule="log1p", threshold="fit", scale=20.0
                                    ),
                                ),
                            ]
                        ),
                    ),
                ]
            ).fit(X),
        },
    )


def test_torch_module_reproduces_transform():
    X, od, transformers = _fitted_transformers()
    for name, transformer in transformers.items():
        module = to_torch_module(transformer)
        assert isinstance(module, torch.nn.Module)
        with torch.no_grad():
            out = module(to_nchw(X)).numpy()
        np.testing.assert_allclose(
            out, transformer.transform(X), atol=1e-4, err_msg=name
        )
    dct = LogDCT(threshold="fit").fit(od)
    np.testing.assert_allclose(
        dct.to_module()(torch.from_numpy(od)).numpy(), dct.transform(od), atol=1e-4
    )


def test_torch_module_structure_and_buffers():
    _, _, transformers = _fitted_transformers()
    sequential = to_torch_module(transformers["log_dct"])
    assert isinstance(sequential, torch.nn.Sequential) and len(sequential) == 2
    concat = to_torch_module(transformers["od+log_dct"])
    assert concat.names == ["od", "dct"]
    module = transformers["macenko"].to_module()
    np.testing.assert_allclose(
        module.stain_matrix.numpy(), transformers["macenko"].stain_matrix_, rtol=1e-6
    )
    assert "inverse_stain_matrix" in module.state_dict()
    assert list(module.parameters()) == []
    fit_dct = (
        transformers["log1p_fit_union"].named_transformers_["dct"].named_steps["dct"]
    )
    assert fit_dct.to_module().thresholds.shape == (3,)


def test_torch_module_is_device_agnostic_in_float64():
    X, _, transformers = _fitted_transformers()
    module = to_torch_module(transformers["od+log_dct"]).double()
    out = module(to_nchw(X).double())
    assert out.dtype == torch.float64
    np.testing.assert_allclose(
        out.numpy(), transformers["od+log_dct"].transform(X), atol=1e-4
    )


def test_to_torch_module_errors():
    with pytest.raises(NotFittedError):
        to_torch_module(make_preprocessing("log_dct"))
    with pytest.raises(NotFittedError):
        to_torch_module(make_preprocessing("od+log_dct"))
    with pytest.raises(TypeError, match="to_torch_module cannot convert"):
        to_torch_module(Pipeline([("x", _Crop())]).fit(np.zeros((1, 2, 2, 3))))
    assert isinstance(to_torch_module("passthrough"), torch.nn.Identity)


def test_make_preprocessing_names():
    assert isinstance(make_preprocessing("od"), StainDeconvolution)
    assert [n for n, _ in make_preprocessing("log_dct").steps] == ["od", "dct"]
    union = make_preprocessing("od+log_dct")
    assert isinstance(union, ChannelUnion)
    assert make_preprocessing("od") is not make_preprocessing("od")
    with pytest.raises(ValueError, match="'od', 'log_dct', 'od\\+log_dct'"):
        make_preprocessing("dct")


def test_network_estimator_recipe():
    # What LeukoNetClassifier does: clone or build, fit on uint8, convert, run per batch.
    X = make_stained_cells(4)
    pre = clone(make_preprocessing("od+log_dct")).fit(X[:3])
    module = to_torch_module(pre)
    batches = [module(to_nchw(X[i : i + 2])) for i in range(0, 4, 2)]
    np.testing.assert_allclose(torch.cat(batches).numpy(), pre.transform(X), atol=1e-4)
    restored = pickle.loads(pickle.dumps(module))
    np.testing.assert_allclose(
        restored(to_nchw(X)).numpy(), pre.transform(X), atol=1e-4
    )


def test_tags():
    for est in [StainDeconvolution(), LogDCT(), make_preprocessing("od+log_dct")]:
        tags = est.__sklearn_tags__()
        assert tags.input_tags.two_d_array is False
        assert tags.transformer_tags.preserves_dtype == ["float32"]


def test_channel_names_follow_the_stages(rng):
    from sklearn_leuko.preprocessing import make_preprocessing

    X = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    union = make_preprocessing("od+log_dct").fit(X)
    names = union.get_feature_names_out().tolist()
    assert names == [
        "od__methylene_blue",
        "od__eosin",
        "od__residual",
        "dct__dct_methylene_blue",
        "dct__dct_eosin",
        "dct__dct_residual",
    ]
    assert len(names) == union.transform(X).shape[1]
    pipe = make_preprocessing("log_dct").fit(X)
    assert pipe.get_feature_names_out().tolist()[0] == "dct_methylene_blue"
    assert make_preprocessing("od", stain_matrix="hed").fit(
        X
    ).get_feature_names_out().tolist() == ["hematoxylin", "eosin", "dab"]
