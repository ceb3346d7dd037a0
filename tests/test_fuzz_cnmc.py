"""Fuzzing the C-NMC loader: mutated folder trees load correctly or fail clearly.

Each example writes a tiny C-NMC tree (training folds and a preliminary test
with its CSV, 8x8 images), applies a few random mutations to file names, CSV
rows and image files, and loads it. The loader must either raise a
ValueError/TypeError whose message names a path under the tree, or return
data consistent with what is on disk: every BMP of the class folders and every
CSV row loaded once, labels and subjects matching the file names, each subject
in one fold, untouched images read back exactly.
"""

import csv
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sklearn_leuko.datasets import load_cnmc

tifffile = pytest.importorskip("tifffile")

NAME_RE = re.compile(r"UID_(H?\d+)_(\d+)_(\d+)_(all|hem)\.bmp", re.IGNORECASE)
SUBJECTS = {0: ["1", "H1"], 1: ["2", "H2"]}  # training fold -> subjects
TEST_SUBJECTS = ["5", "H5"]
CSV_NAME = "C-NMC_test_prelim_phase_data_labels.csv"


def _label(subject):
    return "hem" if subject.startswith("H") else "all"


def _image(seed):
    return np.random.default_rng(seed).integers(1, 256, (8, 8, 3)).astype(np.uint8)


def _write_tree(root):
    """The base tree; returns {file name: pixels} of what was written."""
    written, seed = {}, 0
    for fold, subjects in SUBJECTS.items():
        for subject in subjects:
            folder = root / "train" / f"fold_{fold}" / _label(subject)
            folder.mkdir(parents=True, exist_ok=True)
            for cell in (1, 2):
                name = f"UID_{subject}_1_{cell}_{_label(subject)}.bmp"
                written[name] = _image(seed := seed + 1)
                Image.fromarray(written[name]).save(folder / name, format="BMP")
    test_dir = root / "test" / "C-NMC_test_prelim_phase_data"
    test_dir.mkdir(parents=True)
    rows = [["Patient_ID", "new_names", "labels"]]
    for k, (subject, cell) in enumerate(
        [(s, c) for s in TEST_SUBJECTS for c in (1, 2)], start=1
    ):
        original = f"UID_{subject}_1_{cell}_{_label(subject)}.bmp"
        written[f"{k}.bmp"] = _image(seed := seed + 1)
        Image.fromarray(written[f"{k}.bmp"]).save(test_dir / f"{k}.bmp", format="BMP")
        rows.append([original, f"{k}.bmp", "1" if _label(subject) == "all" else "0"])
    _write_csv(root / "test" / CSV_NAME, rows)
    return written


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def _write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def _bmps(root):
    files = (root / "train").glob("fold_*/*/*.bmp")
    return sorted(f for f in files if f.is_file() and not f.is_symlink()) or [None]


# ---------------------------------------------------------------- mutations
def _rename(pick, root, changed):
    f = pick(_bmps(root))
    if f is None:
        return
    new = pick(
        [
            f.stem + ".BMP",
            f.name.replace("_all", "_hem").replace("_hem", "_all"),
            re.sub(r"UID_H?", "UID_H", f.name),  # a healthy subject
            re.sub(r"UID_(H?)", r"UID_\g<1>0", f.name),  # leading zero
            f.name.replace("UID_", "ID_"),
            re.sub(r"_1_(\d)_", r"_7_\1_", f.name),  # another image number
        ]
    )
    f.rename(f.with_name(new))


def _move(pick, root, changed):
    f = pick(_bmps(root))
    if f is None:
        return
    fold = pick(["fold_0", "fold_1"])
    label = pick(["all", "hem"])
    target = root / "train" / fold / label
    target.mkdir(exist_ok=True)
    if target / f.name != f:
        pick([shutil.move, shutil.copy])(f, target / f.name)


def _add_file(pick, root, changed):
    f = pick(_bmps(root))
    folder = root / "train" / "fold_0" / "all" if f is None else f.parent
    folder.mkdir(parents=True, exist_ok=True)
    kind = pick(["png", "txt", "hidden", "thumbs", "dangling", "subdir", "csv"])
    if kind == "png":
        Image.fromarray(_image(99)).save(folder / "UID_1_9_1_all.png")
    elif kind == "txt":
        (folder / "notes.txt").write_text("notes")
    elif kind == "hidden":
        (folder / "._UID_1_9_1_all.bmp").write_bytes(b"resource fork")
    elif kind == "thumbs":
        (folder / "Thumbs.db").write_bytes(b"x")
    elif kind == "dangling":
        link = folder / "UID_1_9_1_all.bmp"
        if not link.is_symlink() and not link.exists():
            link.symlink_to(root / "nowhere.bmp")
    elif kind == "subdir":
        (folder / "extra").mkdir(exist_ok=True)
    else:
        shutil.copy(root / "test" / CSV_NAME, root / "test" / "copy.csv")


def _reencode(pick, root, changed):
    f = pick(_bmps(root) + sorted((root / "test").glob("*/*.bmp")))
    if f is None:
        return
    rgb = _image(7)
    kind = pick(["L", "P", "RGBA", "1", "16bit", "float", "truncated", "empty"])
    changed.add(f.name)
    if kind in ("L", "P", "1"):
        Image.fromarray(rgb).convert(kind).save(f, format="BMP")
    elif kind == "RGBA":
        Image.fromarray(rgb).convert("RGBA").save(f, format="PNG")  # PNG named .bmp
    elif kind == "16bit":
        tifffile.imwrite(f, rgb[..., 0].astype(np.uint16) * 257)
    elif kind == "float":
        tifffile.imwrite(f, rgb / np.float32(255), photometric="rgb")
    elif kind == "truncated":
        f.write_bytes(f.read_bytes()[:40])
    else:
        f.write_bytes(b"")


def _csv(pick, root, changed):
    path = root / "test" / CSV_NAME
    rows = _read_csv(path)
    full = [k for k, row in enumerate(rows) if len(row) >= 3 and k > 0]
    if not full:
        return
    i = pick(full)
    kind = pick(["dup", "drop", "flip", "other_image", "extra", "blank", "image"])
    if kind == "dup":
        rows.append(list(rows[i]))
    elif kind == "drop":
        del rows[i]
    elif kind == "flip":
        rows[i][2] = "0" if rows[i][2] == "1" else "1"
    elif kind == "other_image":
        rows[i][1] = rows[pick(full)][1]
    elif kind == "extra":
        rows[i].append("x")
    elif kind == "blank":
        rows.insert(i, [])
    else:
        (root / "test" / "C-NMC_test_prelim_phase_data" / rows[i][1]).unlink(
            missing_ok=True
        )
    _write_csv(path, rows)


def _duplicate_fold(pick, root, changed):
    shutil.copytree(
        root / "train" / "fold_1", root / "train" / "fold_01", dirs_exist_ok=True
    )


MUTATIONS = [_rename, _move, _add_file, _reencode, _csv, _duplicate_fold]


# ------------------------------------------------------------------- oracle
def _check_consistent(root, data, subset, written, changed, image_size):
    n = len(data.paths)
    assert len(data.target) == len(data.groups) == len(data.folds) == n
    training = [i for i in range(n) if data.folds[i] >= 0]
    test = [i for i in range(n) if data.folds[i] == -1]
    for i in range(n):
        match = NAME_RE.fullmatch(data.filenames[i])
        assert match is not None
        subject, label = match.group(1), match.group(4)
        assert (data.groups[i], data.target[i]) == (subject, label)
        assert label == _label(subject)
    fold_of = {}
    for i in training:
        path = Path(data.paths[i])
        assert path.parent.name == data.target[i]
        assert int(path.parent.parent.name.split("_")[1]) == data.folds[i]
        assert fold_of.setdefault(data.groups[i], data.folds[i]) == data.folds[i]
    if subset in ("training", "auto"):  # every BMP on disk, once
        on_disk = [
            str(p)
            for p in (root / "train").glob("fold_*/*/*")
            if p.suffix.lower() == ".bmp" and not p.name.startswith(".")
        ]
        assert sorted(on_disk) == sorted(data.paths[training])
    if subset in ("preliminary_test", "auto"):  # every CSV row and image, once
        rows = [r for r in _read_csv(root / "test" / CSV_NAME)[1:] if r]
        folder = root / "test" / "C-NMC_test_prelim_phase_data"
        assert len(rows) == len(test) == len(list(folder.iterdir()))
        by_name = {r[1]: r for r in rows}
        for i in test:
            row = by_name[Path(data.paths[i]).name]
            assert row[0] == data.filenames[i]
            assert row[2] == ("1" if data.target[i] == "all" else "0")
    assert data.images.dtype == np.uint8
    if image_size is None:
        for i in range(n):
            name = Path(data.paths[i]).name
            if name in written and name not in changed:
                np.testing.assert_array_equal(data.images[i], written[name])
    else:
        assert data.images.shape[1:] == (image_size, image_size, 3)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    data=st.data(),
    n_mutations=st.integers(0, 3),
    subset=st.sampled_from(["training", "preliminary_test", "auto"]),
    image_size=st.sampled_from([None, 6, 11]),
)
def test_mutated_trees_load_correctly_or_fail_naming_a_file(
    data, n_mutations, subset, image_size
):
    def pick(options):
        return data.draw(st.sampled_from(list(options)))

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        written, changed = _write_tree(root), set()
        for _ in range(n_mutations):
            pick(MUTATIONS)(pick, root, changed)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                loaded = load_cnmc(root, subset=subset, image_size=image_size)
        except (ValueError, TypeError) as exc:
            assert str(root) in str(exc), str(exc)
        else:
            _check_consistent(root, loaded, subset, written, changed, image_size)
        assert time.perf_counter() - start < 5.0
