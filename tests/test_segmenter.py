"""CellSegmenter: the white cell alone, centred on black; clear failures."""

import numpy as np
import pytest

from sklearn_leuko.preprocessing import CellSegmenter

BACKGROUND = (235, 215, 200)
RED_CELL = (215, 160, 160)
NUCLEUS = (90, 50, 150)
CYTOPLASM = (200, 185, 225)


def _crop(size=80, centre=(40, 44), others=()):
    image = np.full((size, size, 3), BACKGROUND, dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    image[(yy - 12) ** 2 + (xx - 12) ** 2 < 100] = RED_CELL
    for cy, cx in (centre, *others):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 196] = CYTOPLASM
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 81] = NUCLEUS
    return image


def test_cell_is_alone_centred_on_black():
    out = CellSegmenter(image_size=64).fit_transform(_crop()[None])
    assert out.shape == (1, 64, 64, 3) and out.dtype == np.uint8
    cell = out[0].max(axis=-1) > 0
    cy, cx = np.argwhere(cell).mean(axis=0)
    assert abs(cy - 32) <= 1 and abs(cx - 32) <= 1
    # nucleus and cytoplasm kept, the red cell and the background gone
    colours = {tuple(c) for c in out[0][cell]}
    assert tuple(NUCLEUS) in colours and tuple(CYTOPLASM) in colours
    assert tuple(RED_CELL) not in colours and tuple(BACKGROUND) not in colours


def test_list_of_sizes_and_cell_fraction():
    crops = [_crop(80), _crop(100, centre=(50, 50))]
    out = CellSegmenter(image_size=60, cell_fraction=0.2).fit_transform(crops)
    assert out.shape == (2, 60, 60, 3)
    share = (out.max(axis=-1) > 0).mean(axis=(1, 2))
    np.testing.assert_allclose(share, 0.2, atol=0.04)


def test_sizes_differ_without_image_size():
    with pytest.raises(ValueError, match="set image_size"):
        CellSegmenter().fit_transform([_crop(80), _crop(100, centre=(50, 50))])


@pytest.mark.parametrize(
    "crop, status",
    [
        (np.full((64, 64, 3), BACKGROUND, dtype=np.uint8), "no_cell"),
        (np.full((64, 64, 3), 255, dtype=np.uint8), "no_cell"),
        (_crop(100, centre=(30, 30), others=[(75, 75)]), "several_cells"),
    ],
    ids=["empty", "overexposed", "two-cells"],
)
def test_failures_raise_or_flag(crop, status):
    X = [_crop(crop.shape[0], centre=(crop.shape[0] // 2,) * 2), crop]
    with pytest.raises(ValueError, match=r"indices \[1\].*on_failure='flag'"):
        CellSegmenter(image_size=64).fit_transform(X)
    seg = CellSegmenter(image_size=64, on_failure="flag")
    with pytest.warns(UserWarning, match="status_"):
        seg.fit_transform(X)
    assert seg.status_.tolist() == ["ok", status]
    np.testing.assert_array_equal(seg.failed_, [1])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="uint8 RGB"):
        CellSegmenter().fit_transform(np.zeros((1, 32, 32), dtype=np.uint8)[None])
    with pytest.raises(ValueError, match=r"X\[None\]"):
        CellSegmenter().fit_transform(_crop())
