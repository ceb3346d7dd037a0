"""load_images(segment=...): smear crops cut to the C-NMC form as they are read."""

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from sklearn_leuko.datasets import load_images
from sklearn_leuko.preprocessing import CellSegmenter

PBC = Path(__file__).resolve().parents[1].parent / "shared/data/real/pbc_barcelona"
BACKGROUND = (235, 215, 200)
NUCLEUS = (90, 50, 150)


def _crop(height=80, width=90, nucleus=(34, 52), radius=12, cell=True):
    """A smear-like crop: light background, two pink red cells, a purple nucleus."""
    rgb = np.full((height, width, 3), BACKGROUND, np.uint8)
    yy, xx = np.mgrid[:height, :width]
    for cy, cx in ((12, 12), (height - 12, width - 14)):
        rgb[(yy - cy) ** 2 + (xx - cx) ** 2 < 100] = (215, 130, 140)
    if cell:
        cy, cx = nucleus
        rgb[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = NUCLEUS
    return rgb


def _write(folder, crops):
    """``labels.csv`` listing ``crops`` (name -> array), written as PNGs."""
    rows = ["path,label,subject"]
    for i, (name, rgb) in enumerate(crops.items()):
        Image.fromarray(rgb).save(folder / name)
        rows.append(f"{name},{'all' if i % 2 else 'hem'},S{i}")
    path = folder / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _centroid(image):
    return np.array(ndimage.center_of_mass(image.max(axis=-1) > 0))


def test_segment_true_gives_cells_on_black_centred(tmp_path):
    crops = {"a.png": _crop(), "b.png": _crop(96, 80, nucleus=(60, 30), radius=14)}
    data = load_images(_write(tmp_path, crops), image_size=48, segment=True)
    assert data.images.shape == (2, 48, 48, 3)
    assert data.images.dtype == np.uint8
    assert data.segment_status.tolist() == ["ok", "ok"]
    for image in data.images:
        # the light background and the red cells are black now ...
        assert image[0, 0].tolist() == [0, 0, 0]
        assert image[-1, -1].tolist() == [0, 0, 0]
        assert not np.all(image == BACKGROUND, axis=-1).any()
        # ... the nucleus is kept, its centroid at the centre
        assert np.all(image[24, 24] == NUCLEUS)
        assert np.abs(_centroid(image) - 23.5).max() < 1.5
    assert data.geometry == {"source_size": 96, "crop_size": 96, "image_size": 48}
    assert "segmented by CellSegmenter()" in data.DESCR


def test_without_segment_the_background_stays(tmp_path):
    data = load_images(_write(tmp_path, {"a.png": _crop(90, 90)}), no_subject="error")
    assert "segment_status" not in data
    assert data.images[0, 0, 0].tolist() == list(BACKGROUND)


def test_segmenter_instance_sets_the_canvas_and_is_not_changed(tmp_path):
    segmenter = CellSegmenter(image_size=64)
    data = load_images(_write(tmp_path, {"a.png": _crop()}), segment=segmenter)
    assert data.images.shape == (1, 64, 64, 3)
    assert np.abs(_centroid(data.images[0]) - 31.5).max() < 1.5
    assert not hasattr(segmenter, "status_")  # a clone ran
    # then crop_size cuts around the centred cell, image_size resizes
    data = load_images(
        tmp_path / "labels.csv", segment=segmenter, crop_size=40, image_size=20
    )
    assert data.images.shape == (1, 20, 20, 3)
    assert data.geometry == {"source_size": 64, "crop_size": 40, "image_size": 20}
    assert np.all(data.images[0, 10, 10] == NUCLEUS)


def test_crops_of_other_sizes_need_a_common_canvas(tmp_path):
    crops = {"a.png": _crop(80, 80), "b.png": _crop(96, 96, nucleus=(50, 50))}
    csv_path = _write(tmp_path, crops)
    with pytest.raises(ValueError, match="b.png.*image_size"):
        load_images(csv_path, segment=True)
    assert load_images(csv_path, segment=True, image_size=32).images.shape == (
        2,
        32,
        32,
        3,
    )


def test_raise_names_every_failed_file(tmp_path):
    crops = {
        "good.png": _crop(),
        "empty1.png": _crop(cell=False),
        "empty2.png": _crop(cell=False),
    }
    with pytest.raises(ValueError) as info:
        load_images(_write(tmp_path, crops), segment=True)
    message = str(info.value)
    assert "2 of 3 images" in message
    assert "empty1.png" in message and "empty2.png" in message
    assert "good.png" not in message
    assert "line 3" in message and "no_cell" in message
    assert "on_failure='flag'" in message


def test_flag_warns_and_returns_the_status(tmp_path):
    crops = {"good.png": _crop(), "empty.png": _crop(cell=False)}
    with pytest.warns(UserWarning, match=r"1 of 2 images.*empty\.png"):
        data = load_images(
            _write(tmp_path, crops),
            segment=CellSegmenter(on_failure="flag"),
            image_size=40,
        )
    assert data.segment_status.tolist() == ["ok", "no_cell"]
    assert not data.images[1].any()  # no cell: all black
    assert data.images[0].any()
    assert "(1 ok)" in data.DESCR


@pytest.mark.filterwarnings("ignore:.*have no subject:UserWarning")
def test_flag_on_class_folders_names_the_file(tmp_path):
    (tmp_path / "hem").mkdir()
    Image.fromarray(_crop(cell=False)).save(tmp_path / "hem" / "x.png")
    with pytest.warns(UserWarning, match=r"hem[/\\]x\.png \(no_cell\)"):
        data = load_images(
            tmp_path, segment=CellSegmenter(on_failure="flag"), no_subject="per_image"
        )
    assert data.segment_status.tolist() == ["no_cell"]


def test_no_warning_when_all_are_segmented(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_images(
            _write(tmp_path, {"a.png": _crop()}),
            segment=CellSegmenter(on_failure="flag"),
        )
    assert data.segment_status.tolist() == ["ok"]


@pytest.mark.parametrize(
    "segment, error, match",
    [
        ("yes", TypeError, "segment must be None, True or a CellSegmenter"),
        (CellSegmenter, TypeError, "got ABCMeta|got type"),
        (CellSegmenter(on_failure="skip"), ValueError, "on_failure"),
    ],
)
def test_bad_segment_is_refused(tmp_path, segment, error, match):
    with pytest.raises(error, match=match):
        load_images(_write(tmp_path, {"a.png": _crop()}), segment=segment)


def test_too_small_crop_names_the_row(tmp_path):
    with pytest.raises(ValueError, match=r"labels\.csv, line 2: .*16x16"):
        load_images(_write(tmp_path, {"a.png": _crop(12, 12)}), segment=True)


@pytest.mark.filterwarnings("ignore:.*have no subject:UserWarning")
@pytest.mark.skipif(
    not PBC.is_dir(),
    reason=f"PBC images not found at {PBC} (a fresh clone has no ../shared/data/real)",
)
def test_real_pbc_crops_are_segmented(tmp_path):
    rows = ["path,label,subject"]
    for kind in ("lymphocyte", "neutrophil"):
        for source in sorted((PBC / "images" / kind).glob("*.jpg"))[:2]:
            shutil.copy(source, tmp_path / source.name)  # tmp only, never the repo
            rows.append(f"{source.name},{kind},")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load_images(
        tmp_path / "labels.csv",
        image_size=72,
        segment=CellSegmenter(on_failure="flag"),
        no_subject="per_image",
    )
    assert data.images.shape == (4, 72, 72, 3)
    assert data.segment_status.tolist() == ["ok"] * 4
    for image in data.images:
        foreground = image.max(axis=-1) > 0
        # the white cell alone: the light background and red cells are gone
        assert 0.03 < foreground.mean() < 0.6
        assert not foreground[0].any() and not foreground[-1].any()
        assert np.abs(_centroid(image) - 35.5).max() < 72 * 0.15
