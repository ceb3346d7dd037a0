"""The C-NMC 2019 folder layout: :func:`load_cnmc`, :func:`read_images`, :func:`write_cnmc`.

Training data (ISBI 2019 challenge "C-NMC", TCIA collection C_NMC_2019)::

    [prefix/]fold_0/all/UID_11_10_1_all.bmp
    [prefix/]fold_0/hem/UID_H10_43_1_hem.bmp
    [prefix/]fold_1/...   [prefix/]fold_2/...

with a prefix such as ``C-NMC_training_data/`` or
``C-NMC_Leukemia/training_data/``. Preliminary test data: images named
``1.bmp``, ``2.bmp``, ... and a CSV with the header
``Patient_ID,new_names,labels`` (``UID_57_29_1_all.bmp,1.bmp,1``; labels
all = 1, hem = 0).

This module is long because every rule that keeps a cell from being skipped,
merged or relabelled without a word (file names, folds, CSV rows, image
modes) is checked here, next to the code that reads the files.
"""

import csv
import numbers
import re
import warnings
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch, check_random_state

__all__ = ["load_cnmc", "read_images", "write_cnmc"]

_NAME_PATTERN = r"UID_(H?\d+)_(\d+)_(\d+)_(all|hem)\.bmp"
# The suffix's case does not matter ("UID_2_1_1_all.BMP" is a C-NMC name).
_NAME_RE = re.compile(r"UID_(H?\d+)_(\d+)_(\d+)_(all|hem)\.(?i:bmp)")
_FOLD_RE = re.compile(r"fold_(\d+)", re.IGNORECASE)
_FOLDISH_RE = re.compile(r"fold\W*\d", re.IGNORECASE)
_NUMBERED_RE = re.compile(r"(\d+)\.bmp", re.IGNORECASE)
_CSV_HEADER = ("Patient_ID", "new_names", "labels")
_CSV_LABELS = {"1": "all", "0": "hem"}
_LABELS = ("all", "hem")
_SEARCH_DEPTH = 3
_TEST_DIR = "C-NMC_test_prelim_phase_data"
_TEST_CSV = "C-NMC_test_prelim_phase_data_labels.csv"
_SUBSETS = ("training", "preliminary_test", "auto")
_CENTERS = ("centroid", "image")
# Files that are images in some other format: never skipped, always refused.
_IMAGE_SUFFIXES = frozenset(
    ".bmp .dib .png .jpg .jpeg .tif .tiff .gif .webp .ppm .pgm .pbm .jp2".split()
)
# Files the operating system drops into folders; not data, ignored silently.
_OS_FILES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db"})
_EXAMPLES = 3


def _examples(items):
    items = [str(i) for i in items]
    more = f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else ""
    return ", ".join(items[:_EXAMPLES]) + more


def _is_os_file(path):
    # hidden files such as macOS "._UID_..." resource forks are not images
    return path.name.startswith(".") or path.name.lower() in _OS_FILES


def _parse_name(name, where):
    """Subject, image, cell and label of a C-NMC file name; error names the file."""
    match = _NAME_RE.fullmatch(name)
    if match is None:
        raise ValueError(
            f"File name {name!r} ({where}) does not follow the C-NMC convention "
            f"{_NAME_PATTERN!r}, e.g. 'UID_11_10_1_all.bmp' or "
            "'UID_H10_43_1_hem.bmp'; rename it or move it out of the data folder."
        )
    subject, image, cell, label = match.groups()
    expected = _class_of(subject)
    if label != expected:
        kind = "a healthy subject" if expected == "hem" else "an ALL patient"
        raise ValueError(
            f"File {name!r} ({where}) is labelled '{label}' but its subject "
            f"{subject!r} is {kind} (C-NMC: 'H' + number = healthy, all cells "
            f"'hem'; a plain number = ALL patient, all cells 'all'); fix the "
            "name or remove the file."
        )
    return subject, int(image), int(cell), label


def _class_of(subject):
    """The only label C-NMC allows for a subject: healthy "H<k>" -> "hem"."""
    return "hem" if subject.startswith("H") else "all"


def _subject_key(subject):
    # ALL patients ("7") before healthy subjects ("H3"), numeric order within
    return (subject.startswith("H"), int(subject.lstrip("H")))


def _dirs_below(root, depth):
    """``root`` and its sub-directories down to ``depth`` levels, shallow first."""
    level, found = [root], [root]
    for _ in range(depth):
        level = sorted(
            child
            for parent in level
            for child in parent.iterdir()
            if child.is_dir() and not child.name.startswith(".")
        )
        found.extend(level)
    return found


def _find_training(root):
    """The folder that holds ``fold_<k>`` folders (shallowest), or None."""
    hits = {}
    for d in _dirs_below(root, _SEARCH_DEPTH):
        if _FOLD_RE.fullmatch(d.name):
            depth = len(d.relative_to(root).parts)
            hits.setdefault(depth, set()).add(d.parent)
    if not hits:
        return None
    parents = sorted(hits[min(hits)])
    if len(parents) > 1:
        raise ValueError(
            f"Several C-NMC training folders found under {root}: "
            f"{[str(p) for p in parents]}; pass one of them as root."
        )
    return parents[0]


def _find_test_csv(root):
    """Labels CSV of the preliminary test (header Patient_ID,new_names,labels)."""
    found = []
    for d in _dirs_below(root, _SEARCH_DEPTH):
        for f in sorted(d.iterdir()):
            if f.suffix.lower() != ".csv" or _is_os_file(f) or not f.is_file():
                continue
            try:
                with open(f, newline="", encoding="utf-8-sig") as fh:
                    header = next(csv.reader(fh), [])
            except (OSError, UnicodeDecodeError, csv.Error):
                continue
            if all(col in [h.strip() for h in header] for col in _CSV_HEADER):
                found.append(f)
    if len(found) > 1:
        raise ValueError(
            f"Found {len(found)} preliminary test label files (header "
            f"{','.join(_CSV_HEADER)}) under {root}: {_examples(found)}; keep one "
            "of them (or pass a root that holds only one)."
        )
    return found[0] if found else None


def _find_numbered_dir(root):
    for d in _dirs_below(root, _SEARCH_DEPTH):
        if any(_NUMBERED_RE.fullmatch(f.name) for f in d.iterdir() if f.is_file()):
            return d
    return None


def _check_entry(entry):
    """Raise for entries that cannot be read: a broken link, a special file."""
    if entry.is_symlink() and not entry.exists():
        raise ValueError(
            f"{entry} is a broken symbolic link (its target "
            f"{str(entry.readlink())!r} does not exist); restore the target or "
            "remove the link."
        )


def _scan_class_folder(label_dir, skipped):
    """The ``.bmp`` files of a class folder; anything else is refused or counted."""
    bmps, others = [], []
    for entry in sorted(label_dir.iterdir()):
        if _is_os_file(entry):
            continue
        _check_entry(entry)
        if entry.is_dir():
            raise ValueError(
                f"Unexpected folder {entry} inside the class folder {label_dir}: "
                "C-NMC class folders hold the .bmp images only; move its content "
                "out of the data folder."
            )
        suffix = entry.suffix.lower()
        if suffix == ".bmp":
            if not entry.is_file():
                raise ValueError(f"{entry} is not a regular file; remove it.")
            bmps.append(entry)
        elif suffix in _IMAGE_SUFFIXES:
            others.append(entry.name)
        else:
            skipped.append(entry)
    if others:
        raise ValueError(
            f"{label_dir} holds {len(others)} image file(s) that are not BMP "
            f"({_examples(others)}); C-NMC images are .bmp files named "
            "UID_<subject>_<image>_<cell>_<label>.bmp: convert them to BMP or move "
            "them out of the data folder."
        )
    return bmps


def _fold_dirs(base):
    fold_dirs = {}
    for d in sorted(base.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        match = _FOLD_RE.fullmatch(d.name)
        if match is None:
            if _FOLDISH_RE.match(d.name):
                raise ValueError(
                    f"Folder {d} looks like a fold but is not named fold_<k> (e.g. "
                    "fold_0); rename it or move it out of the data folder."
                )
            continue
        k = int(match.group(1))
        if k in fold_dirs:
            raise ValueError(
                f"Folders {fold_dirs[k]} and {d} are both fold {k}; keep one of them "
                "(rename or remove the other)."
            )
        fold_dirs[k] = d
    return fold_dirs


def _scan_fold(fold_dir, skipped):
    """``[(label, bmp files)]`` of one fold folder; stray entries refused."""
    label_dirs = {}
    for entry in sorted(fold_dir.iterdir()):
        if _is_os_file(entry):
            continue
        _check_entry(entry)
        if entry.is_dir() and entry.name in _LABELS:
            label_dirs[entry.name] = entry
        elif entry.is_dir() or entry.suffix.lower() in _IMAGE_SUFFIXES:
            raise ValueError(
                f"Unexpected {'folder' if entry.is_dir() else 'image'} {entry}: a "
                f"C-NMC fold folder holds only 'all/' and 'hem/' (lower case); move "
                "it into one of them or out of the data folder."
            )
        else:
            skipped.append(entry)
    if not label_dirs:
        raise ValueError(
            f"{fold_dir} has neither an 'all/' nor a 'hem/' folder; the C-NMC "
            "layout is fold_<k>/{all,hem}/*.bmp."
        )
    found = []
    for label, label_dir in sorted(label_dirs.items()):
        files = _scan_class_folder(label_dir, skipped)
        if not files:
            raise ValueError(
                f"Folder {label_dir} holds no .bmp images; remove the empty "
                "folder or restore its images."
            )
        found.append((label, files))
    return found


class _CellRegistry:
    """Refuses a cell listed twice, a subject spelled two ways or in two folds."""

    def __init__(self):
        self.cells, self.spelling, self.fold = {}, {}, {}

    def add(self, subject, image, cell, fold, where):
        key = _subject_key(subject)
        spelled = self.spelling.setdefault(key, (subject, where))
        if spelled[0] != subject:
            raise ValueError(
                f"Subject {subject!r} ({where}) and {spelled[0]!r} ({spelled[1]}) "
                "are the same number written two ways; use one spelling (C-NMC "
                "writes no leading zeros)."
            )
        first = self.cells.setdefault((key, image, cell), where)
        if first != where:
            raise ValueError(
                f"Cell {image}_{cell} of subject {subject!r} is listed twice: "
                f"{first} and {where}; remove the duplicate."
            )
        seen_fold, seen_where = self.fold.setdefault(key, (fold, where))
        if seen_fold != fold:
            raise ValueError(
                f"Subject {subject!r} appears in fold {seen_fold} ({seen_where}) and "
                f"in fold {fold} ({where}); C-NMC keeps each subject in one fold "
                "(subject-level folds), so a subject in two would leak between "
                "training and validation. Move the files so that each subject is in "
                "one fold."
            )


def _list_training(base, folds, root, registry, skipped):
    fold_dirs = _fold_dirs(base)
    if folds is not None:
        missing = sorted(set(folds) - set(fold_dirs))
        if missing:
            raise ValueError(
                f"folds={sorted(folds)} asks for fold(s) {missing} but {base} only "
                f"holds folds {sorted(fold_dirs)}."
            )
    records = []
    # Every fold is checked (a subject in two folds is an error even when only
    # one of them is loaded); only the requested ones are returned.
    for fold, fold_dir in sorted(fold_dirs.items()):
        for label, files in _scan_fold(fold_dir, skipped):
            for f in files:
                subject, image, cell, name_label = _parse_name(f.name, str(f))
                if name_label != label:
                    raise ValueError(
                        f"File {f} is in the '{label}/' folder but its name says "
                        f"'{name_label}'; move it to the '{name_label}/' folder or fix "
                        "its name."
                    )
                registry.add(subject, image, cell, fold, str(f))
                if folds is not None and fold not in folds:
                    continue
                key = (fold, _LABELS.index(label), _subject_key(subject), image, cell)
                records.append((key, f, f.name, label, subject, fold))
    if not records and folds is None:
        raise ValueError(f"No C-NMC training images found under {root}.")
    records.sort(key=lambda r: r[0])
    return [r[1:] for r in records]


def _read_test_csv(csv_path):
    """Rows of the labels CSV as ``(line, {column: value})``; malformed rows refused."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            rows = []
            for fields in reader:
                if not any(f.strip() for f in fields):
                    continue  # blank line
                if len(fields) != len(header):
                    raise ValueError(
                        f"{csv_path}, line {reader.line_num} has {len(fields)} "
                        f"fields but the header has {len(header)} ({','.join(header)}); "
                        "fix that row."
                    )
                rows.append(
                    (
                        reader.line_num,
                        {h: f.strip() for h, f in zip(header, fields, strict=True)},
                    )
                )
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"Cannot read the labels file {csv_path}: {exc}.") from exc
    repeated = sorted({h for h in header if header.count(h) > 1 and h})
    if repeated:
        raise ValueError(
            f"The labels file {csv_path} has the column(s) {repeated} twice in its "
            "header; keep one of each."
        )
    if not rows:
        raise ValueError(f"The labels file {csv_path} lists no images.")
    return rows


def _test_image_dir(csv_path, first):
    candidates = [d for d in _dirs_below(csv_path.parent, 2) if (d / first).is_file()]
    if not candidates:
        raise ValueError(
            f"The labels file {csv_path} lists {first!r} but no folder next to it "
            "holds that image; keep the CSV beside the folder of numbered images."
        )
    if len(candidates) > 1:
        raise ValueError(
            f"The labels file {csv_path} lists {first!r}, which several folders "
            f"next to it hold ({_examples(candidates)}); keep one folder of numbered "
            "test images beside the CSV."
        )
    return candidates[0]


def _list_test(csv_path, registry, skipped):
    rows = _read_test_csv(csv_path)
    image_dir = _test_image_dir(csv_path, rows[0][1]["new_names"])
    records, named, missing = [], {}, []
    for line, row in rows:
        original, new_name, code = row["Patient_ID"], row["new_names"], row["labels"]
        where = f"{csv_path}, line {line}"
        subject, image, cell, name_label = _parse_name(original, where)
        if code not in _CSV_LABELS:
            raise ValueError(
                f"Label {code!r} for {new_name!r} ({where}) is not 1 (all) or 0 (hem)."
            )
        if _CSV_LABELS[code] != name_label:
            raise ValueError(
                f"{where}: label {code} ({_CSV_LABELS[code]}) disagrees with the "
                f"original file name {original!r}; fix the labels file."
            )
        if not new_name or Path(new_name).name != new_name or new_name in (".", ".."):
            raise ValueError(
                f"{where}: new_names entry {new_name!r} is not a plain file name; "
                "the CSV must name files of the test image folder."
            )
        if new_name in named:
            raise ValueError(
                f"{csv_path} names the image {new_name!r} twice (lines "
                f"{named[new_name]} and {line}); each image has one row: remove the "
                "duplicate row."
            )
        named[new_name] = line
        registry.add(subject, image, cell, -1, where)
        path = image_dir / new_name
        if path.is_symlink() and not path.exists():
            _check_entry(path)
        if not path.is_file():
            missing.append(new_name)
            continue
        number = _NUMBERED_RE.fullmatch(new_name)
        key = int(number.group(1)) if number else line
        records.append((key, path, original, name_label, subject, -1))
    if missing:
        raise ValueError(
            f"{len(missing)} image(s) listed in {csv_path} do not exist in "
            f"{image_dir}: {_examples(missing)}; restore them or remove their rows."
        )
    unlisted = []
    for entry in sorted(image_dir.iterdir()):
        if _is_os_file(entry) or entry.is_dir() or entry.name in named:
            continue
        _check_entry(entry)
        if entry.suffix.lower() in _IMAGE_SUFFIXES:
            unlisted.append(entry.name)
        elif entry != csv_path:
            skipped.append(entry)
    if unlisted:
        raise ValueError(
            f"{len(unlisted)} image(s) in {image_dir} are not listed in {csv_path}: "
            f"{_examples(unlisted)}; their labels are unknown: add their rows to the "
            "CSV or move them out of the folder."
        )
    records.sort(key=lambda r: r[0])
    return [r[1:] for r in records]


def _check_image_size(image_size):
    if image_size is None:
        return None
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, numbers.Integral)
        or image_size < 1
    ):
        raise ValueError(
            f"image_size must be None or a positive integer (e.g. 350), got "
            f"{image_size!r}."
        )
    return int(image_size)


def _check_center(center):
    if not isinstance(center, str) or center not in _CENTERS:
        raise ValueError(
            f"center must be 'centroid' (the cell's centroid goes to the middle of "
            f"the canvas) or 'image' (plain centre crop/pad), got {center!r}."
        )
    return center


# ------------------------------------------------------------- reading images
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L"})


def _refuse_grey(path, what):
    raise ValueError(
        f"Image file {path} is a grey-scale image ({what}); LeukoNet reads the "
        "colours of the stains (C-NMC cells are 24-bit RGB BMPs), and a grey "
        "image copied into three channels would be deconvolved into meaningless "
        "stain concentrations. Pass the RGB original."
    )


def _decode_with_pillow(path):
    """Pixel array of ``path`` (modes mapped to RGB/RGBA) or None if not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("P", "PA"):
                has_alpha = mode == "PA" or "transparency" in img.info
                img = img.convert("RGBA" if has_alpha else "RGB")
            elif mode in ("RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
                img = img.convert("RGB")
            array = np.asarray(img)
    except UnidentifiedImageError:
        return None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ValueError(
            f"Cannot read image file {path}: {exc}. The file is corrupt or not a "
            "BMP image; replace or remove it."
        ) from exc
    if mode in _GREY_MODES or mode.startswith("I;16"):
        _refuse_grey(path, f"Pillow mode {mode!r}")
    if mode == "RGBa":  # premultiplied alpha: already composited on black
        return array[..., :3]
    if mode not in ("P", "PA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "RGB", "RGBA"):
        raise ValueError(
            f"Image file {path} has the unsupported Pillow mode {mode!r}; pass 8-bit "
            "RGB images."
        )
    return array


def _decode_tiff(path):
    # Pillow reads no RGB float TIFF; tifffile (a scikit-image dependency) does.
    try:
        import tifffile
    except ImportError:  # pragma: no cover - tifffile comes with scikit-image
        return None
    try:
        array = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types on bad files
        raise ValueError(
            f"Cannot read image file {path}: {exc}. The file is corrupt; replace or "
            "remove it."
        ) from exc
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # planar configuration
    if array.ndim > 3:
        raise ValueError(
            f"Image file {path} holds several images (array of shape {array.shape}); "
            "pass one RGB image per file."
        )
    return array


def _to_rgb_uint8(array, path):
    """RGB uint8 of a decoded image: bit depth scaled, alpha composited on black.

    uint8 is kept; uint16 is scaled by 255 / 65535; floats must lie in [0, 1]
    and are scaled by 255 (both rounded). An alpha channel is composited
    onto black, C-NMC's background: ``rgb * alpha``.
    """
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 2)):
        _refuse_grey(path, f"array of shape {array.shape}")
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(
            f"Image file {path} decodes to an array of shape {array.shape}; "
            "expected an RGB image (height, width, 3)."
        )
    if array.dtype == np.uint8 and array.shape[-1] == 3:
        return np.ascontiguousarray(array)
    if array.dtype == np.uint8:
        unit = array.astype(np.float64) / 255
    elif array.dtype == np.uint16:
        unit = array.astype(np.float64) / 65535
    elif array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ValueError(
                f"Image file {path} holds NaN or infinite values; repair or remove it."
            )
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(
                f"Image file {path} is a float image with values in "
                f"[{array.min():.3g}, {array.max():.3g}]; float images must lie in "
                "[0, 1] (they are scaled by 255). Save it as 8-bit RGB instead."
            )
        unit = array.astype(np.float64)
    else:
        raise ValueError(
            f"Image file {path} has {array.dtype} pixels; supported are 8-bit and "
            "16-bit unsigned integers and floats in [0, 1]. Save it as 8-bit RGB."
        )
    rgb = unit[..., :3]
    if unit.shape[-1] == 4:
        rgb = rgb * unit[..., 3:]
    return np.rint(rgb * 255).astype(np.uint8)


def _read_one(path):
    path = Path(path)
    array = _decode_with_pillow(path)
    if array is None and path.suffix.lower() in (".tif", ".tiff"):
        array = _decode_tiff(path)
    if array is None:
        raise ValueError(
            f"Cannot read image file {path}: not an image format Pillow knows. The "
            "file is corrupt or not a BMP image; replace or remove it."
        )
    return _to_rgb_uint8(array, path)


def _shift_of(image, size, center):
    """Offsets ``(dy, dx)`` with ``out[y, x] = image[y - dy, x - dx]``."""
    h, w = image.shape[:2]
    if center == "centroid":
        ys, xs = np.nonzero(image.any(axis=-1))
        if ys.size:
            # The centroid of the cell (non-black pixels) to the canvas centre.
            return (
                int(np.floor((size - 1) / 2 - ys.mean() + 0.5)),
                int(np.floor((size - 1) / 2 - xs.mean() + 0.5)),
            )
    # image centre (also for an all-black image, which has no centroid)
    dy = (size - h) // 2 if size >= h else -((h - size) // 2)
    dx = (size - w) // 2 if size >= w else -((w - size) // 2)
    return dy, dx


def _center_fit(image, size, center="image"):
    """Crop or zero-pad ``image`` to ``size`` x ``size`` around its centre."""
    out = np.zeros((size, size, 3), dtype=np.uint8)
    h, w = image.shape[:2]
    dy, dx = _shift_of(image, size, center)
    y0, y1 = max(dy, 0), min(size, h + dy)
    x0, x1 = max(dx, 0), min(size, w + dx)
    if y0 < y1 and x0 < x1:
        out[y0:y1, x0:x1] = image[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    return out


def read_images(paths, image_size=None, *, center="centroid"):
    """Read RGB images from files into one uint8 array.

    Every image is converted to 8-bit RGB exactly or refused with a
    ``ValueError`` that names the file and the reason:

    - 8-bit RGB (24-bit BMP, PNG, TIFF, ...) and palette images are read as
      they are; 16-bit RGB is scaled by 255 / 65535;
    - float RGB (TIFF) must lie in [0, 1] and is scaled by 255;
    - an alpha channel is composited onto black, the C-NMC background
      (``rgb * alpha``): transparent pixels become background;
    - grey-scale images (8-bit, 16-bit or float) are refused: the network
      reads the colours of the stains, which a grey image does not carry.

    Parameters
    ----------
    paths : sequence of str or path-like
        Image files (BMP in C-NMC; anything Pillow reads works, float TIFF
        through tifffile).
    image_size : int, default=None
        Crop (or zero-pad, black) every image to ``image_size`` x
        ``image_size``, e.g. 350 for the 450 x 450 C-NMC images. When None,
        all images must have the same size.
    center : {"centroid", "image"}, default="centroid"
        What goes to the middle of the canvas when ``image_size`` is given.
        ``"centroid"``: the centroid of the cell, i.e. of the non-black pixels
        (C-NMC places each cell with its centroid at the centre, so a cell
        off the image centre is moved back rather than cut); an all-black
        image falls back to ``"image"``. ``"image"``: the centre of the image
        (a plain centre crop or pad). Unused when ``image_size`` is None.

    Returns
    -------
    images : ndarray of shape (n_images, height, width, 3), uint8

    Raises
    ------
    ValueError
        If a file cannot be read or converted (the message names it) or,
        without ``image_size``, if two images differ in size.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_leuko.datasets import load_cnmc, make_cells, read_images
    >>> from sklearn_leuko.datasets import write_cnmc
    >>> cells = make_cells(n_subjects=6, cells_per_subject=2, image_size=32,
    ...                    random_state=0)
    >>> with tempfile.TemporaryDirectory() as root:
    ...     _ = write_cnmc(cells, root, n_folds=2, random_state=0)
    ...     data = load_cnmc(root, lazy=True)
    ...     read_images(data.paths[:3], image_size=40).shape
    (3, 40, 40, 3)
    """
    image_size = _check_image_size(image_size)
    center = _check_center(center)
    if isinstance(paths, (str, Path)):
        raise TypeError(
            f"paths must be a sequence of image files, got the single path "
            f"{str(paths)!r}; pass [path]."
        )
    paths = [Path(p) for p in (paths.tolist() if hasattr(paths, "tolist") else paths)]
    if not paths:
        raise ValueError("paths is empty: pass at least one image file.")
    images = None
    first = None
    for i, path in enumerate(paths):
        image = _read_one(path)
        if image_size is not None:
            image = _center_fit(image, image_size, center)
        if images is None:
            images = np.empty((len(paths), *image.shape), dtype=np.uint8)
            first = path
        elif image.shape != images.shape[1:]:
            raise ValueError(
                f"Image {path} has size {image.shape[1]}x{image.shape[0]} but {first} "
                f"has {images.shape[2]}x{images.shape[1]}; pass image_size (e.g. "
                "image_size=350) to crop or pad them to one size."
            )
        images[i] = image
    return images


def load_cnmc(
    root,
    *,
    subset="training",
    image_size=None,
    center="centroid",
    lazy=False,
    folds=None,
):
    """Load the C-NMC 2019 leukemia cell images from their folder layout.

    The C-NMC 2019 challenge data (Mourya et al., ISBI 2019; the data of the
    LeukoNet paper) hold one segmented cell per 450 x 450 BMP image on a black
    background. ``root`` may be the folder holding ``fold_0``, ``fold_1``,
    ``fold_2`` or any folder up to three levels above it (mirrors add
    prefixes like ``C-NMC_training_data/`` or
    ``C-NMC_Leukemia/training_data/``). The preliminary test set is found by
    its labels CSV (header ``Patient_ID,new_names,labels``) and the numbered
    images (``1.bmp``, ``2.bmp``, ...) in a folder beside it.

    Nothing on disk is skipped, merged or relabelled silently: every file is
    loaded, or the loader refuses with a ``ValueError`` naming the file and
    the reason, or (for files that are not images) it warns with a count.
    The rules:

    - file names follow ``UID_<subject>_<image>_<cell>_<all|hem>.bmp`` (the
      suffix in any case, ``.BMP`` included); subjects with an ``H`` prefix
      are healthy (``hem`` only), plain numbers are ALL patients (``all``
      only); a name in the wrong class folder is refused;
    - a subject lies in one fold (the preliminary test counts as one); the
      same cell (subject, image, cell) listed twice, a subject written two
      ways (``03`` and ``3``) and two folders of one fold (``fold_1`` and
      ``fold_01``) are refused; so is a folder named like a fold
      (``fold-1``) that is not ``fold_<k>``; every fold is checked even
      when ``folds`` selects some of them;
    - class folders hold ``.bmp`` images only: an image in another format
      (``.png``, ``.jpg``, ...), a sub-folder or a broken symbolic link is
      refused; hidden files and ``Thumbs.db``/``desktop.ini`` are ignored;
      other files (``notes.txt``) are skipped with a ``UserWarning`` that
      counts them;
    - the preliminary test: exactly one labels CSV under ``root``; each
      image named once, each original cell once; every listed image exists
      and every image in the folder is listed; a row with the wrong number
      of fields is refused;
    - images are converted as by :func:`read_images` (16-bit and float
      scaled, alpha composited on black, grey-scale refused).

    Parameters
    ----------
    root : str or path-like
        Folder to search.
    subset : {"training", "preliminary_test", "auto"}, default="training"
        Which part to load. ``"auto"`` loads every part found under ``root``
        (training images first, then the preliminary test images, whose fold
        is -1).
    image_size : int, default=None
        Crop (or pad with black) every image to this size, e.g. 350 as in
        LeukoNet. When None, all images must share one size.
    center : {"centroid", "image"}, default="centroid"
        With ``image_size``: put the cell's centroid (the centroid of the
        non-black pixels, where C-NMC centres its cells) or the image centre
        in the middle of the canvas. See :func:`read_images`.
    lazy : bool, default=False
        If true, do not read the images: the result holds ``paths`` only;
        read them later with :func:`read_images`. File names and labels are
        still checked.
    folds : int or sequence of int, default=None
        Training folds to load (None: all). With ``subset="auto"`` the
        preliminary test is loaded when ``folds`` is None or contains -1.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        images : ndarray of shape (n_images, H, W, 3), uint8
            Only when ``lazy`` is false.
        paths : ndarray of shape (n_images,), str
            The image files.
        target : ndarray of shape (n_images,), str
            ``"all"`` or ``"hem"``.
        groups : ndarray of shape (n_images,), str
            Subject IDs (``"11"`` for an ALL patient, ``"H10"`` for a healthy
            subject); use them with ``GroupKFold``.
        filenames : ndarray of shape (n_images,), str
            C-NMC names ``UID_<subject>_<image>_<cell>_<label>.bmp`` (for the
            preliminary test, the original name from the CSV).
        folds : ndarray of shape (n_images,), int
            The official fold of every training image, -1 for test images.
        DESCR : str
            What was loaded from where.

    Raises
    ------
    ValueError
        If no C-NMC layout is found or any rule above is broken; the message
        names the file or folder.

    Warns
    -----
    UserWarning
        When files that are not images were skipped (with their count).

    See Also
    --------
    write_cnmc : Write images in this layout.
    make_cells : Synthetic images in the same format.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn_leuko.datasets import load_cnmc, make_cells, write_cnmc
    >>> cells = make_cells(n_subjects=6, cells_per_subject=3, image_size=32,
    ...                    random_state=0)
    >>> with tempfile.TemporaryDirectory() as root:
    ...     _ = write_cnmc(cells, root, n_folds=2, random_state=0)
    ...     data = load_cnmc(root)
    >>> data.images.shape, np.unique(data.folds).tolist()
    ((18, 32, 32, 3), [0, 1])
    """
    if subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {_SUBSETS}, got {subset!r}.")
    image_size = _check_image_size(image_size)
    center = _check_center(center)
    if folds is not None:
        folds = [folds] if isinstance(folds, numbers.Integral) else list(folds)
        if not all(
            isinstance(f, numbers.Integral) and not isinstance(f, bool) for f in folds
        ):
            raise ValueError(f"folds must be an int or a list of ints, got {folds!r}.")
        folds = {int(f) for f in folds}
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder.")

    records, sources, skipped = [], [], []
    train_cells, test_cells = _CellRegistry(), _CellRegistry()
    want_training = subset in ("training", "auto")
    want_test = subset == "preliminary_test" or (
        subset == "auto" and (folds is None or -1 in folds)
    )
    training = _find_training(root) if want_training else None
    test_csv = _find_test_csv(root) if want_test else None

    if subset == "training" and training is None:
        raise ValueError(
            f"No C-NMC training layout found under {root} (searched "
            f"{_SEARCH_DEPTH} levels for fold_<k>/{{all,hem}}/*.bmp, e.g. "
            "C-NMC_training_data/fold_0/all/UID_11_10_1_all.bmp)."
        )
    if subset == "preliminary_test" and test_csv is None:
        numbered = _find_numbered_dir(root)
        if numbered is not None:
            raise ValueError(
                f"Found numbered test images in {numbered} but no labels CSV with "
                f"header {','.join(_CSV_HEADER)} under {root}; put the CSV (e.g. "
                f"{_TEST_CSV}) beside that folder."
            )
        raise ValueError(
            f"No C-NMC preliminary test layout found under {root}: expected "
            f"numbered images (1.bmp, 2.bmp, ...) and a CSV with header "
            f"{','.join(_CSV_HEADER)}."
        )
    if subset == "auto" and training is None and test_csv is None:
        raise ValueError(
            f"No C-NMC layout found under {root}: neither fold_<k>/{{all,hem}}/"
            f"*.bmp folders nor a preliminary test CSV with header "
            f"{','.join(_CSV_HEADER)}."
        )
    if training is not None:
        train_folds = None if folds is None else folds - {-1}
        if subset == "training" or train_folds is None or train_folds:
            records += _list_training(training, train_folds, root, train_cells, skipped)
            sources.append(f"training images from {training}")
    if test_csv is not None:
        records += _list_test(test_csv, test_cells, skipped)
        sources.append(f"preliminary test images listed in {test_csv}")

    shared = sorted(set(train_cells.spelling) & set(test_cells.spelling))
    if shared and records and training is not None and test_csv is not None:
        # C-NMC's training and test subjects are different people; whether the
        # test set reuses ID numbers is not documented, so warn, do not refuse.
        names = [train_cells.spelling[k][0] for k in shared]
        warnings.warn(
            f"{len(shared)} subject ID(s) appear both in the training folds and in "
            f"the preliminary test ({_examples(names)}): if they are the same "
            "people, test results leak; if the test set reuses ID numbers, their "
            "groups merge in subject-level splits of the loaded data.",
            UserWarning,
            stacklevel=2,
        )
    if skipped:
        warnings.warn(
            f"load_cnmc skipped {len(skipped)} file(s) under {root} that are not "
            f"images: {_examples(skipped)}.",
            UserWarning,
            stacklevel=2,
        )
    if not records:
        raise ValueError(
            f"Nothing to load under {root} with subset={subset!r} and folds="
            f"{sorted(folds) if folds is not None else None}."
        )
    paths, filenames, target, groups, fold = (
        list(col) for col in zip(*records, strict=True)
    )
    data = Bunch(
        paths=np.array([str(p) for p in paths]),
        target=np.array(target),
        groups=np.array(groups),
        filenames=np.array(filenames),
        folds=np.array(fold, dtype=int),
        DESCR=(
            "C-NMC 2019 leukemia cell images (ISBI 2019 challenge): "
            f"{len(paths)} images; " + "; ".join(sources) + "."
        ),
    )
    if not lazy:
        data["images"] = read_images(paths, image_size=image_size, center=center)
    return data


def _assign_folds(subjects, labels, n_folds, rng):
    """Subject-level folds, stratified by label and balanced in subjects."""
    fold_of = {}
    offset = 0
    for label in _LABELS:
        members = [s for s in subjects if labels[s] == label]
        rng.shuffle(members)
        for i, subject in enumerate(members):
            fold_of[subject] = (offset + i) % n_folds
        offset += len(members)
    return fold_of


def write_cnmc(
    bunch, root, *, n_folds=3, subset="training", random_state=None, overwrite=False
):
    """Write labelled cell images into the C-NMC 2019 folder layout as BMP files.

    ``subset="training"`` assigns whole subjects to ``n_folds`` folds
    (stratified by label, so both classes are spread over the folds) and
    writes ``root/fold_<k>/<label>/<filename>``. ``subset="preliminary_test"``
    writes the images as ``root/C-NMC_test_prelim_phase_data/<i>.bmp`` in a
    random order with ``root/C-NMC_test_prelim_phase_data_labels.csv``
    (``Patient_ID,new_names,labels``, all = 1, hem = 0). :func:`load_cnmc`
    reads both back.

    Parameters
    ----------
    bunch : Bunch or dict
        With ``images`` (uint8, shape (n, H, W, 3)), ``target`` ("all" or
        "hem"), ``groups`` (C-NMC subject IDs: "7", "H3") and optionally
        ``filenames`` (C-NMC names; built from the subject IDs when absent),
        e.g. the output of :func:`make_cells`.
    root : str or path-like
        Folder to write into (created if needed).
    n_folds : int, default=3
        Number of training folds (C-NMC has 3).
    subset : {"training", "preliminary_test"}, default="training"
        Layout to write.
    random_state : int, RandomState instance or None, default=None
        Seeds the fold assignment and the test numbering.
    overwrite : bool, default=False
        Replace existing files; otherwise an existing file is an error.

    Returns
    -------
    written : :class:`~sklearn.utils.Bunch`
        root : pathlib.Path
        paths : ndarray of shape (n_images,), str
            The file of every input image, in input order.
        folds : ndarray of shape (n_images,), int
            Fold of every input image (-1 for the test subset).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn_leuko.datasets import make_cells, write_cnmc
    >>> cells = make_cells(n_subjects=6, cells_per_subject=2, image_size=32,
    ...                    random_state=0)
    >>> with tempfile.TemporaryDirectory() as root:
    ...     written = write_cnmc(cells, root, n_folds=2, random_state=0)
    >>> np.unique(written.folds).tolist()
    [0, 1]
    """
    from PIL import Image

    from ..utils._validation import check_groups, check_rgb_images, check_targets

    if subset not in ("training", "preliminary_test"):
        raise ValueError(
            f"subset must be 'training' or 'preliminary_test', got {subset!r}."
        )
    if isinstance(n_folds, bool) or not isinstance(n_folds, numbers.Integral):
        raise ValueError(f"n_folds must be a positive integer, got {n_folds!r}.")
    if n_folds < 1:
        raise ValueError(f"n_folds must be a positive integer, got {n_folds!r}.")
    for key in ("images", "target", "groups"):
        if key not in bunch:
            raise ValueError(
                f"bunch has no {key!r}; pass a Bunch with images, target and groups "
                "(e.g. from make_cells)."
            )
    images = check_rgb_images(bunch["images"], name="bunch.images", allow_float=False)
    n = len(images)
    target = check_targets(bunch["target"], n, name="bunch.target", min_classes=1)
    groups = check_groups(bunch["groups"], n, name="bunch.groups").astype(str)
    target = target.astype(str)
    bad = sorted(set(target) - set(_LABELS))
    if bad:
        raise ValueError(f"bunch.target holds {bad}; C-NMC labels are 'all' and 'hem'.")
    wrong = sorted(g for g in set(groups) if not re.fullmatch(r"H?\d+", g))
    if wrong:
        raise ValueError(
            f"bunch.groups holds subject IDs {wrong[:5]} that C-NMC file names cannot "
            "carry; use numbers for ALL patients ('7') and 'H' + number for healthy "
            "subjects ('H3')."
        )
    contradicting = sorted(
        {str(g) for g, t in zip(groups, target, strict=True) if t != _class_of(g)}
    )
    if contradicting:
        raise ValueError(
            f"bunch.groups and bunch.target disagree for subject(s) "
            f"{contradicting[:5]}: in C-NMC an 'H' + number subject is healthy (all "
            "its cells 'hem') and a plain number an ALL patient (all its cells "
            "'all'); fix the labels or the subject IDs."
        )

    if bunch.get("filenames") is not None:
        filenames = np.asarray(bunch["filenames"]).astype(str)
        if filenames.shape != (n,):
            raise ValueError(
                f"bunch.filenames has shape {filenames.shape}; expected ({n},)."
            )
    else:
        counter = {}
        filenames = np.empty(n, dtype=object)
        for i, (g, t) in enumerate(zip(groups, target, strict=True)):
            counter[g] = counter.get(g, 0) + 1
            filenames[i] = f"UID_{g}_{counter[g]}_1_{t}.bmp"
        filenames = filenames.astype(str)
    for name, g, t in zip(filenames, groups, target, strict=True):
        subject, _, _, label = _parse_name(name, "bunch.filenames")
        if (subject, label) != (g, t):
            raise ValueError(
                f"bunch.filenames entry {name!r} disagrees with its subject {g!r} "
                f"and label {t!r}; fix the names or drop them to have them rebuilt."
            )
    if len(set(filenames)) != n:
        raise ValueError("bunch.filenames holds duplicate names; they must be unique.")

    rng = check_random_state(random_state)
    root = Path(root)
    if subset == "training":
        labels = dict(zip(groups, target, strict=True))
        fold_of = _assign_folds(sorted(labels, key=_subject_key), labels, n_folds, rng)
        folds = np.array([fold_of[g] for g in groups], dtype=int)
        paths = [
            root / f"fold_{f}" / t / name
            for f, t, name in zip(folds, target, filenames, strict=True)
        ]
    else:
        folds = np.full(n, -1, dtype=int)
        numbers_ = rng.permutation(n) + 1
        paths = [root / _TEST_DIR / f"{k}.bmp" for k in numbers_]
        csv_path = root / _TEST_CSV
        if csv_path.exists() and not overwrite:
            raise FileExistsError(
                f"{csv_path} exists; pass overwrite=True to replace it."
            )
    if not overwrite:
        existing = next((p for p in paths if p.exists()), None)
        if existing is not None:
            raise FileExistsError(
                f"{existing} exists; pass overwrite=True or write into an empty folder."
            )
    for path, image in zip(paths, images, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(image)).save(path, format="BMP")
    if subset == "preliminary_test":
        order = np.argsort(numbers_)
        with open(csv_path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(_CSV_HEADER)
            for i in order:
                code = "1" if target[i] == "all" else "0"
                writer.writerow([filenames[i], paths[i].name, code])
    return Bunch(root=root, paths=np.array([str(p) for p in paths]), folds=folds)
