"""Tests of the C-NMC layout reader and writer (round trips through BMP files)."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sklearn_leuko.datasets import load_cnmc, make_cells, read_images, write_cnmc


@pytest.fixture(scope="module")
def cells():
    return make_cells(n_subjects=6, cells_per_subject=4, image_size=32, random_state=0)


@pytest.fixture
def training_root(tmp_path, cells):
    write_cnmc(cells, tmp_path, n_folds=3, random_state=0)
    return tmp_path


def _by_name(data):
    return {name: i for i, name in enumerate(data.filenames)}


def _assert_same_cells(loaded, cells):
    index = _by_name(loaded)
    assert sorted(index) == sorted(cells.filenames)
    order = np.array([index[name] for name in cells.filenames])
    np.testing.assert_array_equal(loaded.images[order], cells.images)
    np.testing.assert_array_equal(loaded.target[order], cells.target)
    np.testing.assert_array_equal(loaded.groups[order], cells.groups)


def test_training_round_trip(training_root, cells):
    loaded = load_cnmc(training_root)
    assert loaded.images.dtype == np.uint8
    assert loaded.images.shape == cells.images.shape
    _assert_same_cells(loaded, cells)
    assert set(loaded.folds) == {0, 1, 2}


def test_folds_are_subject_level_and_match_the_writer(tmp_path, cells):
    written = write_cnmc(cells, tmp_path, n_folds=2, random_state=1)
    loaded = load_cnmc(tmp_path)
    for subject in np.unique(loaded.groups):
        assert len(set(loaded.folds[loaded.groups == subject])) == 1
    for fold in (0, 1):
        assert set(loaded.target[loaded.folds == fold]) == {"all", "hem"}
    index = _by_name(loaded)
    order = [index[name] for name in cells.filenames]
    np.testing.assert_array_equal(loaded.folds[order], written.folds)
    assert all(Path(p).is_file() for p in written.paths)


@pytest.mark.parametrize(
    "prefix", ["C-NMC_training_data", "C-NMC_Leukemia/training_data"]
)
def test_layout_found_under_mirror_prefixes(tmp_path, cells, prefix):
    write_cnmc(cells, tmp_path / prefix, random_state=0)
    loaded = load_cnmc(tmp_path)
    assert len(loaded.target) == len(cells.target)
    assert all(prefix in p for p in loaded.paths)


def test_select_folds(training_root):
    loaded = load_cnmc(training_root, folds=[0, 2])
    assert set(loaded.folds) == {0, 2}
    single = load_cnmc(training_root, folds=1)
    assert set(single.folds) == {1}
    with pytest.raises(ValueError, match=r"fold\(s\) \[5\]"):
        load_cnmc(training_root, folds=5)


def test_preliminary_test_round_trip(tmp_path, cells):
    written = write_cnmc(cells, tmp_path, subset="preliminary_test", random_state=0)
    names = sorted(Path(p).name for p in written.paths)
    assert names == sorted(f"{i}.bmp" for i in range(1, 25))
    with open(tmp_path / "C-NMC_test_prelim_phase_data_labels.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["Patient_ID", "new_names", "labels"]
    assert {r[2] for r in rows[1:]} == {"0", "1"}
    assert all(r[2] == ("1" if r[0].endswith("_all.bmp") else "0") for r in rows[1:])

    loaded = load_cnmc(tmp_path, subset="preliminary_test")
    _assert_same_cells(loaded, cells)
    assert (loaded.folds == -1).all()
    # numbered order: 1.bmp, 2.bmp, ...
    assert [Path(p).name for p in loaded.paths[:3]] == ["1.bmp", "2.bmp", "3.bmp"]


def test_auto_loads_training_and_test(tmp_path, cells):
    test_cells = make_cells(
        n_subjects=3, cells_per_subject=2, image_size=32, random_state=5
    )
    write_cnmc(cells, tmp_path / "training", random_state=0)
    write_cnmc(
        test_cells, tmp_path / "validation", subset="preliminary_test", random_state=0
    )
    # make_cells numbers subjects from 1 in both sets: the same IDs in training
    # and test are reported, not silently merged
    with pytest.warns(UserWarning, match=r"3 subject ID\(s\) appear both"):
        both = load_cnmc(tmp_path, subset="auto")
    assert len(both.target) == len(cells.target) + len(test_cells.target)
    assert (both.folds == -1).sum() == len(test_cells.target)
    only_train = load_cnmc(tmp_path, subset="auto", folds=[0, 1, 2])
    assert (only_train.folds >= 0).all()
    only_test = load_cnmc(tmp_path, subset="auto", folds=-1)
    assert (only_test.folds == -1).all()
    assert len(only_test.target) == len(test_cells.target)


def test_lazy_mode_reads_later(training_root):
    lazy = load_cnmc(training_root, lazy=True)
    assert "images" not in lazy
    eager = load_cnmc(training_root)
    np.testing.assert_array_equal(lazy.paths, eager.paths)
    np.testing.assert_array_equal(read_images(lazy.paths), eager.images)


def test_image_size_crops_and_pads(training_root):
    full = load_cnmc(training_root)
    cropped = load_cnmc(training_root, image_size=24, center="image")
    np.testing.assert_array_equal(cropped.images, full.images[:, 4:28, 4:28])
    # the synthetic cells are centred: their centroid is the image centre
    centroid = load_cnmc(training_root, image_size=24)  # default "centroid"
    np.testing.assert_array_equal(centroid.images, cropped.images)
    padded = load_cnmc(training_root, image_size=40, center="image")
    np.testing.assert_array_equal(padded.images[:, 4:36, 4:36], full.images)
    assert padded.images[:, :4].max() == 0 and padded.images[:, :, -4:].max() == 0


def _first_bmp(root, label="all"):
    return sorted(root.glob(f"fold_*/{label}/*.bmp"))[0]


def test_corrupt_file_is_named(training_root):
    bad = _first_bmp(training_root)
    bad.write_bytes(b"BM this is not a bitmap")
    with pytest.raises(ValueError, match=f"Cannot read image file .*{bad.name}"):
        load_cnmc(training_root)
    lazy = load_cnmc(training_root, lazy=True)  # names only: no read yet
    with pytest.raises(ValueError, match=bad.name):
        read_images(lazy.paths)


def test_empty_folder_is_named(training_root):
    folder = training_root / "fold_1" / "hem"
    for f in folder.glob("*.bmp"):
        f.unlink()
    with pytest.raises(ValueError, match=r"fold_1/hem holds no \.bmp"):
        load_cnmc(training_root)


def test_no_layout(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(ValueError, match="No C-NMC training layout"):
        load_cnmc(tmp_path)
    with pytest.raises(ValueError, match="No C-NMC layout"):
        load_cnmc(tmp_path, subset="auto")
    with pytest.raises(ValueError, match="not a folder"):
        load_cnmc(tmp_path / "missing")


def test_bad_file_name_is_named(training_root):
    f = _first_bmp(training_root)
    f.rename(f.with_name("cell_7.bmp"))
    with pytest.raises(ValueError, match="'cell_7.bmp'.*C-NMC convention"):
        load_cnmc(training_root)


def test_hidden_and_other_files_are_ignored(training_root, cells):
    folder = training_root / "fold_0" / "all"
    (folder / "._UID_1_1_1_all.bmp").write_bytes(b"resource fork")
    (folder / "Thumbs.db").write_bytes(b"x")
    assert len(load_cnmc(training_root, lazy=True).paths) == len(cells.target)


def test_label_folder_disagreeing_with_name(training_root):
    f = _first_bmp(training_root, "all")
    (training_root / "fold_0" / "hem").mkdir(exist_ok=True)
    shutil.move(f, training_root / "fold_0" / "hem" / f.name)
    with pytest.raises(ValueError, match=f"{f.name} is in the 'hem/' folder"):
        load_cnmc(training_root)


def test_different_sizes_need_image_size(training_root):
    f = _first_bmp(training_root)
    Image.fromarray(np.zeros((30, 30, 3), dtype=np.uint8)).save(f, format="BMP")
    with pytest.raises(ValueError, match="30x30.*image_size") as info:
        load_cnmc(training_root)
    assert f.name in str(info.value)
    assert load_cnmc(training_root, image_size=32).images.shape[1:] == (32, 32, 3)


def test_missing_csv(tmp_path, cells):
    write_cnmc(cells, tmp_path, subset="preliminary_test", random_state=0)
    (tmp_path / "C-NMC_test_prelim_phase_data_labels.csv").unlink()
    with pytest.raises(ValueError, match="no labels CSV"):
        load_cnmc(tmp_path, subset="preliminary_test")


def test_csv_label_disagreeing_with_original_name(tmp_path, cells):
    write_cnmc(cells, tmp_path, subset="preliminary_test", random_state=0)
    path = tmp_path / "C-NMC_test_prelim_phase_data_labels.csv"
    rows = list(csv.reader(open(path)))
    rows[1][2] = "0" if rows[1][2] == "1" else "1"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(ValueError, match="line 2: label"):
        load_cnmc(tmp_path, subset="preliminary_test")


def test_write_refuses_to_overwrite(training_root, cells):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_cnmc(cells, training_root, random_state=0)
    write_cnmc(cells, training_root, random_state=0, overwrite=True)


def test_write_without_filenames_builds_cnmc_names(tmp_path, cells):
    bunch = {"images": cells.images, "target": cells.target, "groups": cells.groups}
    write_cnmc(bunch, tmp_path, n_folds=2, random_state=0)
    loaded = load_cnmc(tmp_path)
    assert sorted(loaded.groups) == sorted(cells.groups)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(groups="patient_a"), "subject IDs"),
        (dict(target="blast"), r"bunch.target has labels \[.blast.\]"),
        (dict(images=np.zeros((24, 32, 32), dtype=np.uint8)), "bunch.images"),
    ],
)
def test_write_validates_the_bunch(tmp_path, cells, change, match):
    bunch = {"images": cells.images, "target": cells.target, "groups": cells.groups}
    for key, value in change.items():
        bunch[key] = (
            np.full(len(cells.target), value) if isinstance(value, str) else value
        )
    with pytest.raises(ValueError, match=match):
        write_cnmc(bunch, tmp_path)


def test_bad_arguments(training_root):
    with pytest.raises(ValueError, match="subset"):
        load_cnmc(training_root, subset="test")
    with pytest.raises(ValueError, match="image_size"):
        load_cnmc(training_root, image_size=0)
    with pytest.raises(ValueError, match="paths is empty"):
        read_images([])


# ------------------------------------------ nothing skipped, merged or relabelled
def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def _write_rows(path, rows):
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


@pytest.fixture
def test_root(tmp_path, cells):
    write_cnmc(cells, tmp_path, subset="preliminary_test", random_state=0)
    return tmp_path


TEST_CSV = "C-NMC_test_prelim_phase_data_labels.csv"


def test_csv_naming_one_image_twice_is_refused(test_root):
    path = test_root / TEST_CSV
    rows = _rows(path)
    rows[2][1] = rows[1][1]  # line 3 names the image of line 2; its own is unnamed
    _write_rows(path, rows)
    with pytest.raises(ValueError, match=rf"names the image '{rows[1][1]}' twice"):
        load_cnmc(test_root, subset="preliminary_test")


def test_csv_duplicated_row_is_refused(test_root):
    path = test_root / TEST_CSV
    rows = _rows(path)
    _write_rows(path, [*rows, rows[1]])
    with pytest.raises(ValueError, match=r"twice \(lines 2 and 26\)"):
        load_cnmc(test_root, subset="preliminary_test")


def test_csv_listing_one_cell_under_two_names_is_refused(test_root):
    path = test_root / TEST_CSV
    rows = _rows(path)
    rows[2][0], rows[2][2] = rows[1][0], rows[1][2]
    _write_rows(path, rows)
    with pytest.raises(ValueError, match=r"is listed twice: .*line 2 and .*line 3"):
        load_cnmc(test_root, subset="preliminary_test")


def test_image_missing_from_the_csv_is_refused(test_root):
    path = test_root / TEST_CSV
    rows = _rows(path)
    _write_rows(path, rows[:-1])
    with pytest.raises(
        ValueError, match=rf"1 image\(s\) in .* not listed.*{rows[-1][1]}"
    ):
        load_cnmc(test_root, subset="preliminary_test")


def test_csv_row_without_its_image_is_refused(test_root):
    (test_root / "C-NMC_test_prelim_phase_data" / "7.bmp").unlink()
    with pytest.raises(
        ValueError, match=r"1 image\(s\) listed in .* do not exist.*7\.bmp"
    ):
        load_cnmc(test_root, subset="preliminary_test")


def test_second_labels_csv_is_refused(test_root):
    shutil.copy(test_root / TEST_CSV, test_root / "a_copy.csv")
    with pytest.raises(
        ValueError, match=r"Found 2 .*label files.*labels\.csv.*a_copy\.csv"
    ):
        load_cnmc(test_root, subset="preliminary_test")


def test_csv_row_with_extra_fields_is_refused(test_root):
    path = test_root / TEST_CSV
    rows = _rows(path)
    rows[3].append("extra")
    _write_rows(path, rows)
    with pytest.raises(ValueError, match=r"line 4 has 4 fields but the header has 3"):
        load_cnmc(test_root, subset="preliminary_test")


def test_two_folders_of_one_fold_are_refused(training_root):
    shutil.copytree(training_root / "fold_1", training_root / "fold_01")
    with pytest.raises(ValueError, match=r"fold_01 and .*fold_1 are both fold 1"):
        load_cnmc(training_root, lazy=True)


def test_folder_named_like_a_fold_is_refused(training_root):
    (training_root / "fold-3" / "all").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"fold-3 looks like a fold"):
        load_cnmc(training_root, lazy=True)


def test_subject_in_two_folds_is_refused(training_root):
    f = _first_bmp(training_root, "all")
    fold = int(f.parent.parent.name[-1])
    subject = f.name.split("_")[1]
    other = (fold + 1) % 3
    shutil.copy(
        f, training_root / f"fold_{other}" / "all" / f"UID_{subject}_99_1_all.bmp"
    )
    first, second = sorted((fold, other))
    with pytest.raises(
        ValueError,
        match=rf"Subject '{subject}' appears in fold {first} .* and in fold {second}",
    ):
        load_cnmc(training_root, lazy=True)
    # even when only one of the two folds is loaded
    with pytest.raises(ValueError, match="appears in fold"):
        load_cnmc(training_root, lazy=True, folds=fold)


@pytest.mark.parametrize(
    "label, name",
    [("all", "UID_H1_99_1_all.bmp"), ("hem", "UID_1_99_1_hem.bmp")],
)
def test_subject_contradicting_its_class_is_refused(training_root, label, name):
    f = _first_bmp(training_root, label)
    shutil.copy(f, f.parent / name)
    with pytest.raises(
        ValueError, match=rf"'{name}' .* is labelled '{label}' but its subject"
    ):
        load_cnmc(training_root, lazy=True)


def test_same_cell_twice_is_refused(training_root):
    f = _first_bmp(training_root)
    shutil.copy(f, f.with_suffix(".BMP"))
    with pytest.raises(ValueError, match=r"is listed twice"):
        load_cnmc(training_root, lazy=True)


def test_subject_written_two_ways_is_refused(training_root):
    f = _first_bmp(training_root)
    _, subject, *rest = f.name.split("_")
    rest[0] = "99"
    f.rename(f.with_name("_".join(["UID", "0" + subject, *rest])))
    with pytest.raises(
        ValueError, match=rf"'{subject}' .* and '0{subject}' .* same number"
    ):
        load_cnmc(training_root, lazy=True)


def test_upper_case_suffix_is_the_cnmc_convention(training_root, cells):
    f = _first_bmp(training_root)
    f.rename(f.with_name(f.stem + ".BMP"))
    loaded = load_cnmc(training_root)
    assert f.stem + ".BMP" in set(loaded.filenames)
    assert len(loaded.target) == len(cells.target)


def test_png_in_a_class_folder_is_refused(training_root):
    folder = training_root / "fold_0" / "all"
    for name in ("UID_1_50_1_all.png", "UID_1_51_1_all.png"):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / name)
    with pytest.raises(
        ValueError,
        match=r"holds 2 image file\(s\) that are not BMP \(UID_1_50_1_all\.png",
    ):
        load_cnmc(training_root, lazy=True)


def test_dangling_symlink_in_a_class_folder_is_refused(training_root):
    link = training_root / "fold_0" / "all" / "UID_1_50_1_all.bmp"
    link.symlink_to(training_root / "nowhere.bmp")
    with pytest.raises(
        ValueError, match=r"UID_1_50_1_all\.bmp is a broken symbolic link"
    ):
        load_cnmc(training_root, lazy=True)


def test_other_files_are_skipped_with_a_count(training_root, cells):
    (training_root / "fold_0" / "all" / "notes.txt").write_text("x")
    (training_root / "fold_1" / "README").write_text("x")
    with pytest.warns(UserWarning, match=r"skipped 2 file\(s\) .* not images"):
        loaded = load_cnmc(training_root, lazy=True)
    assert len(loaded.paths) == len(cells.target)


@pytest.mark.parametrize(
    "where", ["fold_0/all/extra/UID_1_50_1_all.bmp", "fold_0/UID_1_50_1_all.bmp"]
)
def test_images_outside_the_class_folders_are_refused(training_root, where):
    target = training_root / where
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(_first_bmp(training_root), target)
    with pytest.raises(ValueError, match=r"Unexpected (folder|image)"):
        load_cnmc(training_root, lazy=True)


def test_write_refuses_subjects_contradicting_their_label(tmp_path, cells):
    target = cells.target.copy()
    target[cells.groups == "H1"] = "all"
    bunch = {"images": cells.images, "target": target, "groups": cells.groups}
    with pytest.raises(ValueError, match=r"disagree for subject\(s\) \['H1'\]"):
        write_cnmc(bunch, tmp_path)


# ------------------------------------------------------- bit depth and alpha
def _cell(size=8):
    rng = np.random.default_rng(0)
    return rng.integers(1, 256, size=(size, size, 3)).astype(np.uint8)


def test_16_bit_rgb_is_scaled(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    image16 = _cell().astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "a.tif", image16, photometric="rgb")
    out = read_images([tmp_path / "a.tif"])[0]
    assert np.abs(out.astype(int) - image16 / 257).max() <= 1
    assert len(np.unique(out)) > 2


def test_float_rgb_in_unit_range_is_scaled(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    image = _cell()
    tifffile.imwrite(
        tmp_path / "a.tif", (image / 255).astype(np.float32), photometric="rgb"
    )
    np.testing.assert_array_equal(read_images([tmp_path / "a.tif"])[0], image)
    tifffile.imwrite(tmp_path / "b.tif", image.astype(np.float32), photometric="rgb")
    with pytest.raises(
        ValueError, match=r"b\.tif is a float image with values in .*\[0, 1\]"
    ):
        read_images([tmp_path / "b.tif"])


def test_alpha_is_composited_on_black(tmp_path):
    rgba = np.dstack([_cell(), np.zeros((8, 8), np.uint8)])
    rgba[:4, :, 3] = 255
    rgba[4:6, :, 3] = 128
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = read_images([tmp_path / "a.png"])[0]
    np.testing.assert_array_equal(out[:4], rgba[:4, :, :3])
    np.testing.assert_array_equal(out[6:], 0)  # transparent: background
    np.testing.assert_array_equal(out[4:6], np.rint(rgba[4:6, :, :3] * (128 / 255)))


def test_palette_bmp_is_read_as_rgb(tmp_path):
    image = Image.fromarray(_cell()).convert("P")
    image.save(tmp_path / "a.bmp")
    np.testing.assert_array_equal(
        read_images([tmp_path / "a.bmp"])[0], np.asarray(image.convert("RGB"))
    )


@pytest.mark.parametrize(
    "name, make",
    [
        ("grey.bmp", lambda: Image.fromarray(_cell()[..., 0])),
        (
            "grey16.png",
            lambda: Image.fromarray(_cell()[..., 0].astype(np.uint16) * 257),
        ),
        ("greyf.tif", lambda: Image.fromarray(_cell()[..., 0] / np.float32(255))),
    ],
)
def test_grey_scale_is_refused(tmp_path, name, make):
    make().save(tmp_path / name)
    with pytest.raises(ValueError, match=rf"{name} is a grey-scale image"):
        read_images([tmp_path / name])


def test_grey_bmp_in_the_layout_is_refused_by_name(training_root):
    f = _first_bmp(training_root)
    Image.fromarray(np.full((32, 32), 90, np.uint8)).save(f, format="BMP")
    with pytest.raises(ValueError, match=rf"{f.name} is a grey-scale image"):
        load_cnmc(training_root)


# ------------------------------------------------------------------- centring
def test_centroid_keeps_an_off_centre_cell_whole(tmp_path):
    image = np.zeros((40, 40, 3), np.uint8)
    image[2:14, 24:36] = (200, 120, 180)  # a 12x12 cell in the top-right corner
    Image.fromarray(image).save(tmp_path / "a.bmp")
    centred = read_images([tmp_path / "a.bmp"], image_size=16)[0]
    assert (centred.any(axis=-1)).sum() == 144  # the whole cell
    ys, xs = np.nonzero(centred.any(axis=-1))
    assert (ys.mean(), xs.mean()) == (7.5, 7.5)
    cut = read_images([tmp_path / "a.bmp"], image_size=16, center="image")[0]
    assert (cut.any(axis=-1)).sum() < 144
    black = np.zeros((40, 40, 3), np.uint8)
    Image.fromarray(black).save(tmp_path / "black.bmp")
    assert read_images([tmp_path / "black.bmp"], image_size=16).shape == (1, 16, 16, 3)


def test_centroid_padding_moves_the_cell_to_the_middle(tmp_path):
    image = np.zeros((10, 10, 3), np.uint8)
    image[0:2, 0:2] = 255
    Image.fromarray(image).save(tmp_path / "a.bmp")
    out = read_images([tmp_path / "a.bmp"], image_size=21)[0]
    ys, xs = np.nonzero(out.any(axis=-1))
    assert abs(ys.mean() - 10) <= 0.5 and abs(xs.mean() - 10) <= 0.5


def test_center_is_validated(training_root):
    with pytest.raises(ValueError, match=r"center must be 'centroid' .* got 'middle'"):
        load_cnmc(training_root, image_size=24, center="middle")
    with pytest.raises(TypeError, match=r"single path"):
        read_images(str(_first_bmp(training_root)))


def test_lower_case_h_subject_is_healthy(training_root):
    # The real fold_2 spells one healthy subject "h3": UID_h3_1_1_hem.bmp.
    hem = _first_bmp(training_root, "hem")
    lower = hem.with_name("UID_h999_1_1_hem.bmp")
    hem.rename(lower)
    data = load_cnmc(training_root, lazy=True)
    row = data.filenames.tolist().index(lower.name)
    assert data.groups[row] == "H999"
    assert data.target[row] == "hem"


def test_lower_and_upper_case_h_are_one_subject(training_root):
    hem = _first_bmp(training_root, "hem")
    shutil.copy(hem, hem.with_name("UID_" + hem.name[4:].replace("H", "h", 1)))
    with pytest.raises(ValueError, match="listed twice"):
        load_cnmc(training_root, lazy=True)
