"""load_images (CSV, class folders, C-NMC tree) and load_cnmc on the real cells."""

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sklearn_leuko.datasets import load_cnmc, load_images
from sklearn_leuko.datasets._images import _shift_of

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(
    not REAL.is_dir(),
    reason=f"real cells not found at {REAL} (a fresh clone has no ../shared/data/real)",
)


def _cell(size=45, colour=(70, 30, 80), offset=0):
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[10 + offset : 30 + offset, 12:34] = colour
    return rgb


def _write_csv(folder, rows, header="path,label,subject"):
    path = folder / "labels.csv"
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


@pytest.fixture
def table(tmp_path):
    for i in range(4):
        Image.fromarray(_cell(offset=i)).save(tmp_path / f"c{i}.png")
    rows = ["c0.png,all,1", "c1.png,all,1", "c2.png,hem,H1", "c3.png,hem,H2"]
    return tmp_path, rows


def test_csv_order_labels_subjects_geometry(table):
    folder, rows = table
    data = load_images(_write_csv(folder, rows[::-1]))
    assert data.filenames.tolist() == ["c3.png", "c2.png", "c1.png", "c0.png"]
    assert data.target.tolist() == ["hem", "hem", "all", "all"]
    assert data.groups.tolist() == ["H2", "H1", "1", "1"]
    assert data.images.shape == (4, 45, 45, 3) and data.images.dtype == np.uint8
    assert data.geometry == {"source_size": 45, "crop_size": 45, "image_size": 45}
    assert "4 images" in data.source and "labels.csv" in data.source


def test_crop_then_resize(table):
    folder, rows = table
    whole = load_images(_write_csv(folder, rows), image_size=15)
    assert whole.images.shape == (4, 15, 15, 3)
    assert whole.geometry == {"source_size": 45, "crop_size": 45, "image_size": 15}
    # the whole cell scaled down: the cell's box 22 px wide becomes about 7 px
    cols = np.nonzero(whole.images[0].any(axis=(0, 2)))[0]
    assert 6 <= cols.size <= 9
    cropped = load_images(_write_csv(folder, rows), crop_size=25)
    assert cropped.geometry["crop_size"] == 25 and cropped.images.shape[1] == 25
    # centroid centring: every cell, wherever it sits, lands in the middle
    np.testing.assert_array_equal(cropped.images[0], cropped.images[3])


def test_custom_column_names(tmp_path):
    Image.fromarray(_cell()).save(tmp_path / "a.png")
    csv_path = _write_csv(tmp_path, ["a.png,x,all"], header="file,patient,cls")
    data = load_images(
        csv_path, path_column="file", label_column="cls", subject_column="patient"
    )
    assert data.target.tolist() == ["all"] and data.groups.tolist() == ["x"]


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ("missing.png,all,1", "does not exist"),
        ("c1.png,,1", "label of 'c1.png' is empty"),
        ("c3.png,all,H1", "subject 'H1' is labelled 'all' here but 'hem'"),
        ("c0.png,all,1", "listed twice"),
        ("../outside.png,all,1", "leads out of the CSV's folder"),
        (",all,1", "path is empty"),
        ("c1.png,all", "has 2 fields"),
    ],
)
def test_bad_rows_name_file_and_line(table, bad_row, message):
    folder, rows = table
    (folder.parent / "outside.png").write_bytes(b"")
    csv_path = _write_csv(folder, [rows[0], rows[2], bad_row])
    with pytest.raises(ValueError, match=message) as info:
        load_images(csv_path)
    assert f"{csv_path}, line 4" in str(info.value)


def test_absolute_path_elsewhere_is_refused(table):
    folder, rows = table
    outside = folder.parent / "abs.png"
    Image.fromarray(_cell()).save(outside)
    with pytest.raises(ValueError, match="line 2.*leads out"):
        load_images(_write_csv(folder, [f"{outside},all,1"]))


def test_missing_column_and_empty_csv(table):
    folder, _ = table
    with pytest.raises(ValueError, match=r"no column\(s\) \['label'\]"):
        load_images(_write_csv(folder, ["c0.png,1"], header="path,subject"))
    with pytest.raises(ValueError, match="lists no images"):
        load_images(_write_csv(folder, []))


def test_no_subject_is_an_error_unless_per_image(table):
    folder, _ = table
    csv_path = _write_csv(folder, ["c0.png,all,", "c1.png,hem,"])
    with pytest.raises(ValueError, match="no_subject='per_image'"):
        load_images(csv_path)
    with pytest.warns(UserWarning, match="its own subject"):
        data = load_images(csv_path, no_subject="per_image")
    assert data.groups.tolist() == ["image:c0.png", "image:c1.png"]


def test_unreadable_image_names_the_row(table):
    folder, rows = table
    (folder / "c1.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"line 3: Cannot read image file"):
        load_images(_write_csv(folder, rows))


def test_different_sizes_need_resize(tmp_path):
    Image.fromarray(_cell(45)).save(tmp_path / "a.png")
    Image.fromarray(_cell(50)).save(tmp_path / "b.png")
    csv_path = _write_csv(tmp_path, ["a.png,all,1", "b.png,all,1"])
    with pytest.raises(ValueError, match="line 3.*image_size"):
        load_images(csv_path)
    data = load_images(csv_path, image_size=20)
    assert data.images.shape == (2, 20, 20, 3)
    assert data.geometry["source_size"] == 50


def test_class_folders(tmp_path):
    for label in ("all", "hem"):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.fromarray(_cell()).save(tmp_path / label / f"{label}{i}.png")
    (tmp_path / "hem" / "notes.txt").write_text("x")
    with pytest.warns(UserWarning, match="skipped 1 file"):
        with pytest.raises(ValueError, match="no subject"):
            load_images(tmp_path)
    with pytest.warns(UserWarning):
        data = load_images(tmp_path, no_subject="per_image")
    assert data.target.tolist() == ["all", "all", "hem", "hem"]
    Image.fromarray(_cell()).save(tmp_path / "stray.png")
    with pytest.raises(ValueError, match="outside any class folder"):
        load_images(tmp_path, no_subject="per_image")


def test_source_that_does_not_exist(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_images(tmp_path / "nope.csv")


# ------------------------------------------------------------------ real cells
def _labels(name):
    with open(REAL / name / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@needs_real
def test_real_cnmc_csv_loads_with_subjects():
    rows = _labels("cnmc2019")
    data = load_images(REAL / "cnmc2019" / "labels.csv", image_size=72)
    assert data.images.shape == (len(rows), 72, 72, 3)
    assert data.filenames.tolist() == [Path(r["path"]).name for r in rows]
    assert data.groups.tolist() == [r["subject"] for r in rows]
    assert data.geometry == {"source_size": 450, "crop_size": 450, "image_size": 72}
    assert set(data.groups[data.target == "hem"]) >= {"H3"}
    assert len(set(data.groups)) == 29


@needs_real
@pytest.mark.parametrize("name", ["bccd", "pbc_barcelona"])
def test_real_sets_without_subjects(name):
    csv_path = REAL / name / "labels.csv"
    with pytest.raises(ValueError, match="have no subject"):
        load_images(csv_path, image_size=32)
    with pytest.warns(UserWarning, match="its own subject"):
        data = load_images(csv_path, image_size=32, no_subject="per_image")
    assert data.images.shape == (len(_labels(name)), 32, 32, 3)
    assert len(set(data.groups)) == len(data.groups)


@needs_real
def test_real_cells_centroid_centring():
    rows = _labels("cnmc2019")[:12]
    csv_dir = REAL / "cnmc2019"
    raw = np.stack([np.asarray(Image.open(csv_dir / r["path"])) for r in rows])
    assert raw.shape[1:] == (450, 450, 3)
    data = load_images(csv_dir / "labels.csv", crop_size=350)
    assert data.geometry["crop_size"] == 350
    for image, original in zip(data.images[:12], raw, strict=True):
        # the crop keeps the whole cell (C-NMC cells are about 220 px across)
        assert image.any(axis=-1).sum() == original.any(axis=-1).sum()
        ys, xs = np.nonzero(image.any(axis=-1))
        assert abs(ys.mean() - 174.5) <= 1 and abs(xs.mean() - 174.5) <= 1
        assert _shift_of(image, 350, "centroid") == (0, 0)


@needs_real
def test_real_cnmc_tree_with_lower_case_h(tmp_path):
    rows = _labels("cnmc2019")
    picked = [r for r in rows if r["subject"] in ("H3", "H10", "11", "2")]
    assert any(Path(r["path"]).name.startswith("UID_h3_") for r in picked)
    for i, r in enumerate(picked):
        folder = tmp_path / f"fold_{i % 1}" / r["label"]
        folder.mkdir(parents=True, exist_ok=True)
        name = Path(r["path"]).with_suffix(".bmp").name
        Image.open(REAL / "cnmc2019" / r["path"]).convert("RGB").save(folder / name)
    data = load_cnmc(tmp_path)
    assert sorted(set(data.groups)) == ["11", "2", "H10", "H3"]
    assert (data.target[data.groups == "H3"] == "hem").all()
    assert "UID_h3_1_1_hem.bmp" in data.filenames.tolist()
    by_name = dict(zip(data.filenames, data.images, strict=True))
    png = np.asarray(Image.open(REAL / "cnmc2019" / "images/UID_h3_1_1_hem.png"))
    np.testing.assert_array_equal(by_name["UID_h3_1_1_hem.bmp"], png[..., :3])
    tree = load_images(tmp_path, image_size=72)
    assert tree.geometry["source_size"] == 450
    assert sorted(set(tree.groups)) == ["11", "2", "H10", "H3"]


@pytest.mark.parametrize("suffix", [".joblib", ".safetensors"])
def test_geometry_is_kept_in_both_model_formats(tmp_path, suffix):
    from sklearn_leuko import load_model, make_stage, save_model
    from sklearn_leuko.datasets import make_cells, model_geometry, record_geometry

    cells = make_cells(n_subjects=4, cells_per_subject=2, image_size=24, random_state=0)
    model = make_stage(
        "1",
        widths=(4, 4, 4, 4, 4, 4),
        max_epochs=1,
        validation_fraction=None,
        verbose=0,
        random_state=0,
    )
    with pytest.warns(UserWarning):  # 24 px: bilinear pooling degenerates
        model.fit(cells.images, cells.target)
    assert model_geometry(model) is None
    with pytest.raises(ValueError, match="disagrees with the network's input"):
        record_geometry(model, {"source_size": 450, "crop_size": 450, "image_size": 72})
    record_geometry(model, cells.geometry)
    path = tmp_path / f"model{suffix}"
    save_model(model, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert model_geometry(load_model(path)) == cells.geometry


def test_fit_to_geometry_crop_share_and_resize():
    from sklearn_leuko.datasets import fit_to_geometry

    paper = {"source_size": 450, "crop_size": 350, "image_size": 70}
    big = np.zeros((90, 90, 3), np.uint8)
    big[40:50, 40:50] = 200
    out = fit_to_geometry([big], paper)  # 70 of 90 px cut, resized to 70
    assert out.shape == (1, 70, 70, 3) and (out[0] > 0).sum() // 3 == 100
    whole = fit_to_geometry([big], {**paper, "crop_size": 450})
    assert (whole[0] > 0).sum() // 3 < 100  # 90 -> 70 px: the square shrinks
    with pytest.raises(ValueError, match="geometry must be a dict"):
        fit_to_geometry([big], {"image_size": 70})


def test_python_predict_brings_images_to_the_recorded_geometry(tiny_cells):
    """The scale contract in Python: a 32 px model predicts 96 px cells whole."""
    from sklearn_leuko import make_stage
    from sklearn_leuko.datasets import fit_to_geometry, make_cells, record_geometry

    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    model = make_stage(
        "1", max_epochs=1, widths=(4, 4, 8, 8, 8, 8), verbose=0, random_state=0
    ).fit(X, y, net__groups=g)
    large = make_cells(n_subjects=2, cells_per_subject=3, image_size=96, random_state=1)
    with pytest.raises(ValueError, match="record_geometry"):
        model.predict_proba(large.images)
    record_geometry(model, tiny_cells.geometry)
    expected = model.predict_proba(
        fit_to_geometry(list(large.images), tiny_cells.geometry)
    )
    np.testing.assert_array_equal(model.predict_proba(large.images), expected)
    assert model.predict_proba(X[:4]).shape == (4, 2)  # training size unchanged
