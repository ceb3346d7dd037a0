"""Tests of the kornia-based ImageAugmenter."""

import pytest
import torch

from sklearn_leuko.nn import ImageAugmenter

NO_GEOMETRY = {"rotation": 0, "shear": 0, "blur_sigma": None}


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.rand(8, 3, 16, 16) * 255


def test_eval_mode_returns_input_unchanged(images):
    aug = ImageAugmenter().eval()
    assert aug(images) is images
    assert aug(images, torch.ones(8, dtype=torch.bool)) is images


def test_train_mode_changes_every_image(images):
    aug = ImageAugmenter(blur_sigma=None)
    out = aug(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    changed = (out - images).flatten(1).abs().amax(dim=1) > 1e-3
    assert changed.all()


def test_mask_leaves_unmasked_samples_bit_identical(images):
    mask = torch.tensor([True, False, True, False, False, True, False, False])
    out = ImageAugmenter()(images, mask)
    assert torch.equal(out[~mask], images[~mask])
    assert not torch.equal(out[mask], images[mask])
    assert images.data_ptr() != out.data_ptr()


def test_all_false_mask_returns_input(images):
    assert ImageAugmenter()(images, torch.zeros(8, dtype=torch.bool)) is images


def test_seeded_reproducibility(images):
    aug = ImageAugmenter()
    torch.manual_seed(123)
    a = aug(images)
    torch.manual_seed(123)
    b = aug(images)
    torch.manual_seed(124)
    c = aug(images)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    "kwargs", [{"rotation": 180.0, "shear": 0, "blur_sigma": None}, {}]
)
def test_black_stays_black(kwargs):
    black = torch.zeros(6, 3, 16, 16)
    assert torch.equal(ImageAugmenter(**kwargs)(black), black)


def test_rotation_pads_corners_with_zeros():
    white = torch.full((16, 3, 16, 16), 255.0)
    out = ImageAugmenter(
        rotation=45, shear=0, hflip=False, vflip=False, blur_sigma=None
    )(white)
    # any rotation of more than a few degrees moves the corners off the image
    corners = out[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners < 255).any()
    assert out.min() >= 0


def test_hflip_only(images):
    torch.manual_seed(0)
    x = images.repeat(4, 1, 1, 1)  # 32 samples: both outcomes appear
    out = ImageAugmenter(hflip=True, vflip=False, **NO_GEOMETRY)(x)
    same = (out == x).flatten(1).all(1)
    hflipped = (out == x.flip(-1)).flatten(1).all(1)
    assert (same | hflipped).all()
    assert same.any() and hflipped.any()
    assert not (out == x.flip(-2)).flatten(1).all(1).any()


def test_vflip_only(images):
    torch.manual_seed(0)
    x = images.repeat(4, 1, 1, 1)
    out = ImageAugmenter(hflip=False, vflip=True, **NO_GEOMETRY)(x)
    same = (out == x).flatten(1).all(1)
    vflipped = (out == x.flip(-2)).flatten(1).all(1)
    assert (same | vflipped).all()
    assert same.any() and vflipped.any()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rotation": None, "shear": None, "blur_sigma": None},
        {"rotation": 0, "shear": 0, "blur_sigma": (0.0, 0.0)},
        {"blur_p": 0.0, "rotation": 0, "shear": 0},
    ],
)
def test_everything_disabled_is_identity(images, kwargs):
    aug = ImageAugmenter(hflip=False, vflip=False, **kwargs)
    assert len(aug.transforms) == 0
    assert aug(images) is images


def test_p_zero_and_partial(images):
    assert ImageAugmenter(p=0.0)(images) is images
    torch.manual_seed(0)
    x = images.repeat(4, 1, 1, 1)
    out = ImageAugmenter(p=0.5, blur_sigma=None)(x)
    untouched = (out == x).flatten(1).all(1)
    assert untouched.any() and not untouched.all()


def test_blur_smooths_and_zero_sigma_is_safe(images):
    blur = ImageAugmenter(
        hflip=False, vflip=False, rotation=0, shear=0, blur_sigma=(1.0, 1.0), blur_p=1.0
    )
    out = blur(images)
    # a Gaussian blur lowers the total variation of noise images
    tv = lambda t: t.diff(dim=-1).abs().mean()  # noqa: E731
    assert tv(out) < 0.7 * tv(images)
    tiny = ImageAugmenter(
        hflip=False,
        vflip=False,
        rotation=0,
        shear=0,
        blur_sigma=(0.0, 0.0001),
        blur_p=1.0,
    )
    torch.testing.assert_close(tiny(images), images)


def test_blur_kernel_size_is_odd_and_covers_three_sigma():
    aug = ImageAugmenter(blur_sigma=(0.0, 1.2))
    assert aug.transforms[-1].kernel_size == 9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rotation": -5}, "rotation"),
        ({"shear": -1.0}, "shear"),
        ({"blur_sigma": (0.5, 0.1)}, "low <= high"),
        ({"blur_sigma": (-0.1, 0.5)}, r"blur_sigma\[0\]"),
        ({"blur_sigma": (0.1, 0.2, 0.3)}, "pair"),
        ({"blur_p": 1.5}, "blur_p"),
        ({"p": -0.1}, "p must be"),
    ],
)
def test_validation_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageAugmenter(**kwargs)


def test_type_errors(images):
    with pytest.raises(TypeError, match="hflip"):
        ImageAugmenter(hflip="yes")
    with pytest.raises(TypeError, match="blur_sigma"):
        ImageAugmenter(blur_sigma=0.5)
    with pytest.raises(TypeError, match="x.float"):
        ImageAugmenter()(images.to(torch.uint8))
    with pytest.raises(ValueError, match="mask"):
        ImageAugmenter()(images, torch.ones(3, dtype=torch.bool))


def test_shear_is_in_degrees_and_bounded():
    """A point 20 px above the centre moves by at most about tan(20 deg) * 20 px
    along x (plus the follow-up y shear): a shear read as radians would fling it
    out of the image."""
    x = torch.zeros(16, 1, 65, 65)
    x[:, :, 11:14, 31:34] = 1.0  # a blob 20 px above the centre (32, 32)
    torch.manual_seed(0)
    aug = ImageAugmenter(
        rotation=0, shear=20, hflip=False, vflip=False, blur_sigma=None
    )
    out = aug(x)
    rows = torch.arange(65.0).view(1, 1, 65, 1)
    cols = torch.arange(65.0).view(1, 1, 1, 65)
    mass = out.sum(dim=(1, 2, 3))
    assert (mass > 8).all()  # the blob stays in the image
    dy = (out * rows).sum(dim=(1, 2, 3)) / mass - 12
    dx = (out * cols).sum(dim=(1, 2, 3)) / mass - 32
    shift = torch.sqrt(dx**2 + dy**2)
    assert shift.max() < 12 and shift.max() > 1
