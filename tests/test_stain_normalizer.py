"""StainNormalizer: background handling, no NaN, clear errors, torch twin."""

import numpy as np
import pytest
import torch
from skimage.color import rgb2lab

from sklearn_leuko.nn._stain_normalize import (
    macenko_stains,
    masked_quantile,
    rgb_to_lab,
    rgb_to_od_nat,
)
from sklearn_leuko.preprocessing import StainNormalizer

METHODS = ["reinhard", "macenko", "vahadane"]


def _cells(n, background, seed, size=24):
    """Two-stain cells (OD mixtures) on a given background colour."""
    rng = np.random.default_rng(seed)
    stains = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]])
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    images[:] = background
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    for i in range(n):
        conc = rng.uniform(0.2, 1.5, (disk.sum(), 2))
        od = conc @ stains
        images[i][disk] = np.clip(255 * np.exp(-od), 1, 255).astype(np.uint8)
    return images, disk


@pytest.mark.parametrize("method", METHODS)
def test_background_is_kept_and_no_nan(method):
    reference, _ = _cells(3, 0, seed=0)
    X, disk = _cells(2, 0, seed=1)
    X[1][~disk] = 235  # a bright smear background
    out = StainNormalizer(method, random_state=0).fit(reference).transform(X)
    assert out.dtype == np.uint8 and out.shape == X.shape
    np.testing.assert_array_equal(out[0][~disk], 0)
    np.testing.assert_array_equal(out[1][~disk], 235)
    assert not np.array_equal(out[:, disk], X[:, disk])


@pytest.mark.parametrize("method", METHODS)
def test_reference_maps_to_itself(method):
    reference, disk = _cells(2, 0, seed=0)
    out = StainNormalizer(method, random_state=0).fit(reference).transform(reference)
    error = np.abs(out[:, disk].astype(float) - reference[:, disk]).mean()
    assert error < 6


def test_statistics_ignore_the_background():
    # The same cells on black or on a light background normalise alike.
    reference, _ = _cells(3, 0, seed=0)
    black, disk = _cells(1, 0, seed=5)
    light = black.copy()
    light[0][~disk] = 240
    # erosion=0: the rim next to black would be left out, not next to light.
    norm = StainNormalizer("macenko", erosion=0).fit(reference)
    a, b = norm.transform(black), norm.transform(light)
    np.testing.assert_allclose(a[0][disk].astype(int), b[0][disk].astype(int), atol=1)


@pytest.mark.parametrize("method", METHODS)
def test_module_matches_transform_and_batching(method):
    reference, _ = _cells(2, 0, seed=0)
    X, _ = _cells(5, 0, seed=3)
    norm = StainNormalizer(method, batch_size=2, random_state=0).fit(reference)
    out = norm.transform(X)
    module = norm.to_module()
    with torch.no_grad():
        twin = module(torch.from_numpy(X).permute(0, 3, 1, 2).float())
    np.testing.assert_array_equal(twin.permute(0, 2, 3, 1).numpy(), out)
    alone = norm.transform(X[3:4])
    np.testing.assert_allclose(alone[0].astype(int), out[3].astype(int), atol=1)


@pytest.mark.parametrize("kind", ["black", "overexposed"])
def test_too_little_stain_is_a_clear_error(kind):
    reference, _ = _cells(2, 0, seed=0)
    X, _ = _cells(3, 0, seed=1)
    X[1] = 0 if kind == "black" else 252
    norm = StainNormalizer("macenko").fit(reference)
    with pytest.raises(ValueError, match=r"indices \[1\].*on_empty='passthrough'"):
        norm.transform(X)
    norm.set_params(on_empty="passthrough")
    with pytest.warns(UserWarning, match="returned unchanged"):
        out = norm.transform(X)
    np.testing.assert_array_equal(out[1], X[1])
    np.testing.assert_array_equal(norm.too_faint_, [1])


def test_fit_refuses_a_reference_without_stain():
    with pytest.raises(ValueError, match="stained cell pixels"):
        StainNormalizer("reinhard").fit(np.zeros((2, 16, 16, 3), dtype=np.uint8))


def test_extreme_input_never_gives_nan():
    reference, _ = _cells(2, 0, seed=0)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (3, 20, 20, 3)).astype(np.uint8)
    X[0, :10] = 255
    X[2, ::2] = 1
    for method in METHODS:
        norm = StainNormalizer(method, random_state=0).fit(reference)
        with torch.no_grad():
            out = norm.to_module()(torch.from_numpy(X).permute(0, 3, 1, 2).float())
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 255


def test_od_is_finite_and_non_negative():
    rgb = torch.tensor([0.0, 1.0, 128.0, 255.0])[None, :, None, None].expand(1, 4, 1, 3)
    od = rgb_to_od_nat(rgb.permute(0, 3, 1, 2), 240.0, 1.0)
    assert torch.isfinite(od).all() and (od >= 0).all()


def test_masked_quantile_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 50))
    mask = rng.random((3, 50)) < 0.6
    got = masked_quantile(torch.from_numpy(values), torch.from_numpy(mask), 0.99)
    expected = [np.percentile(v[m], 99) for v, m in zip(values, mask, strict=True)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


def test_lab_matches_skimage():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (1, 8, 8, 3)).astype(np.uint8)
    got = rgb_to_lab(torch.from_numpy(rgb).permute(0, 3, 1, 2).double())
    np.testing.assert_allclose(got.permute(0, 2, 3, 1).numpy(), rgb2lab(rgb), atol=0.05)


def test_macenko_vectors_match_a_numpy_reference():
    X, disk = _cells(1, 0, seed=2)
    pixels = X[0][disk].astype(float)
    od = -np.log(np.clip(pixels, 1, 255) / 255)
    od = od[(od >= 0.15).all(axis=1)]
    # the torchstain / Macenko reference code, in NumPy
    _, vectors = np.linalg.eigh(np.cov(od.T))
    plane = vectors[:, [1, 2]]
    phi = np.arctan2(od @ plane[:, 1], od @ plane[:, 0])
    ends = [plane @ [np.cos(a), np.sin(a)] for a in np.percentile(phi, [1, 99])]
    ends = [v if v.sum() > 0 else -v for v in ends]
    expected = sorted(ends, key=lambda v: -v[0])
    got = macenko_stains(
        torch.from_numpy(od.T[None]), torch.ones(1, len(od), dtype=bool), alpha=1.0
    )[0]
    np.testing.assert_allclose(got.numpy(), np.abs(expected), atol=1e-6)
