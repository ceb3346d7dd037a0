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
    cropped = load_cnmc(training_root, image_size=24)
    np.testing.assert_array_equal(cropped.images, full.images[:, 4:28, 4:28])
    padded = load_cnmc(training_root, image_size=40)
    np.testing.assert_array_equal(padded.images[:, 4:36, 4:36], full.images)
    assert padded.images[:, :4].max() == 0 and padded.images[:, :, -4:].max() == 0


def _first_bmp(root, label="all"):
    return sorted((root / "fold_0" / label).glob("*.bmp"))[0]


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
        (dict(target="blast"), "C-NMC labels"),
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
