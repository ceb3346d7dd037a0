"""Known values of the torch OD / stain / DCT functions (sklearn_leuko.nn._functional)."""

import math

import numpy as np
import pytest
import scipy.fft
import torch

from sklearn_leuko.nn._functional import (
    dct2,
    dct_matrix,
    energy_threshold,
    idct2,
    log_dct,
    od_to_stains,
    rgb_to_od,
)


def _rgb(values):
    """(3,) RGB triple -> (1, 3, 1, 1) float tensor."""
    return torch.tensor(values, dtype=torch.float32).reshape(1, 3, 1, 1)


# ----------------------------------------------------------------- rgb_to_od
def test_rgb_to_od_sd_layer_rule_values():
    od = rgb_to_od(_rgb([255.0, 25.5, 2.55]))
    np.testing.assert_allclose(od.flatten().numpy(), [0.0, 1.0, 2.0], atol=1e-6)


def test_rgb_to_od_black_background_is_zero_and_finite():
    od = rgb_to_od(torch.zeros(2, 3, 4, 4))
    assert torch.isfinite(od).all()
    assert torch.count_nonzero(od) == 0


def test_rgb_to_od_interpolated_background_below_half_is_zero():
    od = rgb_to_od(_rgb([0.3, 0.6, 1.0]))
    assert od[0, 0, 0, 0] == 0
    np.testing.assert_allclose(od[0, 1:, 0, 0].numpy(), math.log10(255.0), rtol=1e-6)


@pytest.mark.parametrize("offset", [0.0, 1.0])
@pytest.mark.parametrize("log_base", [10.0, math.e])
def test_rgb_to_od_never_infinite_without_background_rule(offset, log_base):
    rgb = torch.tensor([0.0, 0.2, 1.0, 255.0]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    od = rgb_to_od(rgb, offset=offset, log_base=log_base, zero_as_background=False)
    assert torch.isfinite(od).all()
    # The floor at intensity 1 caps the OD at log_b(i0).
    assert od.max() <= math.log(255.0) / math.log(log_base) + 1e-6


def test_rgb_to_od_torchstain_convention():
    od = rgb_to_od(
        _rgb([239.0, 0.0, 100.0]),
        i0=240.0,
        offset=1.0,
        log_base=math.e,
        zero_as_background=False,
    )
    expected = [0.0, -math.log(1 / 240), -math.log(101 / 240)]
    np.testing.assert_allclose(od.flatten().numpy(), expected, rtol=1e-6, atol=1e-7)


def test_rgb_to_od_accepts_uint8_and_keeps_float64():
    rgb8 = torch.full((1, 3, 2, 2), 25, dtype=torch.uint8)
    assert rgb_to_od(rgb8).dtype == torch.float32
    assert rgb_to_od(rgb8.double()).dtype == torch.float64


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"i0": 0.0}, "i0"),
        ({"offset": -1.0}, "offset"),
        ({"log_base": 1.0}, "log_base"),
    ],
)
def test_rgb_to_od_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rgb_to_od(torch.ones(1, 3, 2, 2), **kwargs)


def test_functions_do_not_write_to_their_input():
    rgb = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(6)) * 255
    rgb[0, :, :2] = 0
    before = rgb.clone()
    od = rgb_to_od(rgb, offset=1.0)
    log_dct(od, scale=2.0)
    torch.testing.assert_close(rgb, before, rtol=0, atol=0)


def test_rgb_to_od_gradient_path_matches_in_place_path():
    rgb = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(7)) * 255
    rgb[0, 0, 0, 0] = 0
    plain = rgb_to_od(rgb)
    rgb.requires_grad_(True)
    tracked = rgb_to_od(rgb)
    torch.testing.assert_close(tracked.detach(), plain, rtol=0, atol=0)
    tracked.sum().backward()
    assert rgb.grad[0, 0, 0, 0] == 0  # background is constant 0
    assert (rgb.grad[0, 1:] < 0).all()  # brighter -> less OD


def test_rgb_to_od_wrong_ndim():
    with pytest.raises(ValueError, match="4-D"):
        rgb_to_od(torch.ones(3, 2, 2))


# ----------------------------------------------------------------- od_to_stains
def test_od_to_stains_applies_inverse_per_pixel():
    rng = np.random.default_rng(0)
    od = rng.uniform(0, 1, (2, 3, 4, 5))
    inverse = rng.normal(size=(3, 3))
    out = od_to_stains(torch.from_numpy(od), inverse).numpy()
    expected = np.moveaxis(np.moveaxis(od, 1, -1) @ inverse, -1, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_od_to_stains_same_for_channels_last_input():
    od = torch.rand(2, 5, 6, 3, generator=torch.Generator().manual_seed(9)).permute(
        0, 3, 1, 2
    )
    assert od.is_contiguous(memory_format=torch.channels_last)
    inverse = torch.randn(3, 3, generator=torch.Generator().manual_seed(10))
    torch.testing.assert_close(
        od_to_stains(od, inverse), od_to_stains(od.contiguous(), inverse)
    )


def test_od_to_stains_shape_mismatch():
    with pytest.raises(ValueError, match="inverse_stain_matrix"):
        od_to_stains(torch.ones(1, 3, 2, 2), np.eye(4))


# ----------------------------------------------------------------- DCT
def test_dct_matrix_matches_scipy_and_is_orthonormal():
    c = dct_matrix(7, dtype=torch.float64).numpy()
    np.testing.assert_allclose(
        c, scipy.fft.dct(np.eye(7), type=2, norm="ortho", axis=0), atol=1e-12
    )
    np.testing.assert_allclose(c @ c.T, np.eye(7), atol=1e-12)


def test_dct_matrix_is_cached_per_dtype():
    assert dct_matrix(5) is dct_matrix(5)
    assert dct_matrix(5, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(ValueError, match="positive integer"):
        dct_matrix(0)


def test_dct2_matches_scipy_dctn_non_square():
    x = np.random.default_rng(1).normal(size=(2, 3, 6, 9))
    expected = scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(dct2(torch.from_numpy(x)).numpy(), expected, atol=1e-12)


def test_idct2_inverts_dct2():
    x = torch.randn(
        2, 3, 8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(idct2(dct2(x)), x)


def test_dct2_of_constant_image_has_only_dc():
    coefficients = dct2(torch.full((1, 1, 6, 4), 2.0, dtype=torch.float64))
    assert coefficients[0, 0, 0, 0].item() == pytest.approx(2.0 * math.sqrt(24))
    coefficients[0, 0, 0, 0] = 0
    assert coefficients.abs().max() < 1e-12


# ----------------------------------------------------------------- energy threshold
@pytest.mark.parametrize("energy", [0.5, 0.95, 1.0])
def test_energy_threshold_keeps_smallest_set_holding_the_share(energy):
    c = torch.randn(
        3, 2, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    t = energy_threshold(c, energy)
    assert t.shape == (3, 2)
    squared = c.square()
    total = squared.sum(dim=(2, 3))
    kept = torch.where(c.abs() >= t[..., None, None], squared, 0).sum(dim=(2, 3))
    assert (kept >= energy * total * (1 - 1e-12)).all()
    # Dropping the smallest kept coefficient falls below the share.
    assert (kept - t.square() < energy * total).all()


def test_energy_threshold_mixes_settled_and_unsettled_channels():
    # A smooth channel settles with the first partial ranking, a noisy one
    # needs the full sort: both must match the sorted reference.
    gen = torch.Generator().manual_seed(5)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    smooth = torch.exp(-((yy - 32) ** 2 + (xx - 32) ** 2) / 200).double()
    noise = torch.randn(64, 64, generator=gen, dtype=torch.float64)
    c = dct2(torch.stack([smooth, noise, smooth * 3 + noise * 0.1])[None])
    for energy in (0.5, 0.95, 1.0):
        squared = np.sort(c.reshape(3, -1).square().numpy(), axis=1)[:, ::-1]
        cumulative = np.cumsum(squared, axis=1)
        k = [np.searchsorted(row, energy * row[-1]) for row in cumulative]
        expected = np.sqrt(squared[np.arange(3), np.minimum(k, squared.shape[1] - 1)])
        np.testing.assert_allclose(energy_threshold(c, energy)[0].numpy(), expected)


def test_energy_threshold_all_zero_channel():
    assert energy_threshold(torch.zeros(1, 2, 3, 3)).abs().max() == 0


def test_energy_threshold_bad_energy():
    with pytest.raises(ValueError, match="energy"):
        energy_threshold(torch.ones(1, 1, 2, 2), 1.5)


# ----------------------------------------------------------------- log_dct
def test_log_dct_constant_image_only_dc():
    out = log_dct(torch.full((1, 2, 8, 8), 2.0))
    assert torch.count_nonzero(out) == 2
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), math.log10(16.0), rtol=1e-6)


def test_log_dct_paper_rule_small_kept_values_do_not_flip_sign():
    # 2x2 constant -0.2: the only coefficient is DC = -0.2 * 2 = -0.4, kept.
    out = log_dct(torch.full((1, 1, 2, 2), -0.2))
    assert out[0, 0, 0, 0] == 0  # |c| = 0.4 < 1 -> log10(max(0.4, 1)) = 0, not +0.4
    out = log_dct(torch.full((1, 1, 2, 2), -0.2), log_rule="log1p")
    assert out[0, 0, 0, 0].item() == pytest.approx(-math.log10(1.4), rel=1e-6)


def test_log_dct_matches_scipy_numpy_reference():
    rng = np.random.default_rng(3)
    od = rng.gamma(2.0, 0.5, (2, 3, 12, 10))
    for log_rule in ("paper", "log1p"):
        out = log_dct(
            torch.from_numpy(od), energy=0.9, log_rule=log_rule, scale=3.0
        ).numpy()
        for i in range(2):
            for ch in range(3):
                c = scipy.fft.dctn(od[i, ch], type=2, norm="ortho") * 3.0
                order = np.sort(c.ravel() ** 2)[::-1]
                k = np.searchsorted(np.cumsum(order), 0.9 * order.sum())
                keep = np.abs(c) >= np.sqrt(order[k])
                magnitude = np.abs(c)
                logged = (
                    np.log10(np.maximum(magnitude, 1))
                    if log_rule == "paper"
                    else np.log10(1 + magnitude)
                )
                np.testing.assert_allclose(
                    out[i, ch], np.sign(c) * np.where(keep, logged, 0), atol=1e-10
                )


@pytest.mark.parametrize("log_rule", ["paper", "log1p"])
def test_log_dct_branches_agree(log_rule):
    # Smooth input keeps few coefficients (log of the kept ones only), noise
    # keeps many (dense in-place path); with autograd the out-of-place path runs.
    gen = torch.Generator().manual_seed(8)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    smooth = 3 * torch.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 60)
    noise = 3 * torch.rand(32, 32, generator=gen)
    for image, dense in [(smooth, False), (noise, True)]:
        od = image.expand(2, 3, 32, 32).clone()
        fast = log_dct(od, log_rule=log_rule, scale=4.0)
        assert (torch.count_nonzero(fast) * 20 >= fast.numel()) == dense
        tracked = log_dct(od.requires_grad_(), log_rule=log_rule, scale=4.0)
        torch.testing.assert_close(fast, tracked.detach(), rtol=1e-6, atol=1e-6)
        tracked.sum().backward()
        assert torch.isfinite(od.grad).all()


def test_log_dct_fixed_thresholds():
    od = (
        torch.rand(
            2, 2, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64
        )
        * 5
    )
    c = dct2(od)
    out = log_dct(od, thresholds=[0.0, 1e9])
    assert torch.count_nonzero(out[:, 1]) == 0
    expected = torch.sign(c[:, 0]) * torch.log10(c[:, 0].abs().clamp(min=1))
    torch.testing.assert_close(out[:, 0], expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"log_rule": "ln"}, "log_rule"),
        ({"scale": 0.0}, "scale"),
        ({"energy": 0.0}, "energy"),
        ({"thresholds": [1.0, 2.0]}, "thresholds"),
    ],
)
def test_log_dct_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        log_dct(torch.ones(1, 3, 4, 4), **kwargs)


def test_cached_dct_matrix_made_in_inference_mode_still_supports_autograd():
    from sklearn_leuko.nn._functional import _cached_dct_matrix

    _cached_dct_matrix.cache_clear()
    with torch.inference_mode():
        dct_matrix(19)  # first use, e.g. by a transformer's transform
    x = torch.rand(2, 19, 19, requires_grad=True)
    dct2(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "kwargs", [{}, {"i0": 240.0, "offset": 1.0, "log_base": math.e}]
)
def test_rgb_to_od_uint8_table_equals_float_path(kwargs):
    rgb = torch.arange(256, dtype=torch.uint8).repeat(2, 3, 4, 1)
    rgb = rgb.permute(0, 1, 3, 2).contiguous(memory_format=torch.channels_last)
    od = rgb_to_od(rgb, **kwargs)
    assert od.dtype == torch.float32 and od.shape == rgb.shape
    assert od.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(od, rgb_to_od(rgb.float(), **kwargs))
