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
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch, check_random_state

__all__ = ["load_cnmc", "read_images", "write_cnmc"]

_NAME_PATTERN = r"UID_(H?\d+)_(\d+)_(\d+)_(all|hem)\.bmp"
_NAME_RE = re.compile(_NAME_PATTERN)
_FOLD_RE = re.compile(r"fold_(\d+)")
_NUMBERED_RE = re.compile(r"(\d+)\.bmp", re.IGNORECASE)
_CSV_HEADER = ("Patient_ID", "new_names", "labels")
_CSV_LABELS = {"1": "all", "0": "hem"}
_LABELS = ("all", "hem")
_SEARCH_DEPTH = 3
_TEST_DIR = "C-NMC_test_prelim_phase_data"
_TEST_CSV = "C-NMC_test_prelim_phase_data_labels.csv"
_SUBSETS = ("training", "preliminary_test", "auto")


def _is_bmp(path):
    # hidden files such as macOS "._UID_..." resource forks are not images
    return (
        path.suffix.lower() == ".bmp"
        and not path.name.startswith(".")
        and path.is_file()
    )


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
    return subject, int(image), int(cell), label


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
    for d in _dirs_below(root, _SEARCH_DEPTH):
        for f in sorted(d.glob("*.csv")):
            try:
                with open(f, newline="") as fh:
                    header = next(csv.reader(fh), [])
            except (OSError, UnicodeDecodeError):
                continue
            if all(col in [h.strip() for h in header] for col in _CSV_HEADER):
                return f
    return None


def _find_numbered_dir(root):
    for d in _dirs_below(root, _SEARCH_DEPTH):
        if any(_NUMBERED_RE.fullmatch(f.name) for f in d.iterdir() if f.is_file()):
            return d
    return None


def _list_training(base, folds, root):
    fold_dirs = {}
    for d in sorted(base.iterdir()):
        match = _FOLD_RE.fullmatch(d.name)
        if d.is_dir() and match:
            fold_dirs[int(match.group(1))] = d
    if folds is not None:
        missing = sorted(set(folds) - set(fold_dirs))
        if missing:
            raise ValueError(
                f"folds={sorted(folds)} asks for fold(s) {missing} but {base} only "
                f"holds folds {sorted(fold_dirs)}."
            )
        fold_dirs = {k: v for k, v in fold_dirs.items() if k in folds}

    records = []
    for fold, fold_dir in sorted(fold_dirs.items()):
        label_dirs = [fold_dir / label for label in _LABELS]
        if not any(d.is_dir() for d in label_dirs):
            raise ValueError(
                f"{fold_dir} has neither an 'all/' nor a 'hem/' folder; the C-NMC "
                "layout is fold_<k>/{all,hem}/*.bmp."
            )
        for label, label_dir in zip(_LABELS, label_dirs, strict=True):
            if not label_dir.is_dir():
                continue
            files = sorted(f for f in label_dir.iterdir() if _is_bmp(f))
            if not files:
                raise ValueError(
                    f"Folder {label_dir} holds no .bmp images; remove the empty "
                    "folder or restore its images."
                )
            for f in files:
                subject, image, cell, name_label = _parse_name(f.name, str(f))
                if name_label != label:
                    raise ValueError(
                        f"File {f} is in the '{label}/' folder but its name says "
                        f"'{name_label}'; move it to the '{name_label}/' folder or fix "
                        "its name."
                    )
                key = (fold, _LABELS.index(label), _subject_key(subject), image, cell)
                records.append((key, f, f.name, label, subject, fold))
    if not records:
        raise ValueError(f"No C-NMC training images found under {root}.")
    records.sort(key=lambda r: r[0])
    return [r[1:] for r in records]


def _list_test(csv_path):
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh, skipinitialspace=True))
    rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in rows]
    if not rows:
        raise ValueError(f"The labels file {csv_path} lists no images.")
    first = rows[0]["new_names"]
    candidates = [d for d in _dirs_below(csv_path.parent, 2) if (d / first).is_file()]
    if not candidates:
        raise ValueError(
            f"The labels file {csv_path} lists {first!r} but no folder next to it "
            "holds that image; keep the CSV beside the folder of numbered images."
        )
    image_dir = candidates[0]
    records = []
    for line, row in enumerate(rows, start=2):
        original, new_name, code = row["Patient_ID"], row["new_names"], row["labels"]
        where = f"{csv_path}, line {line}"
        subject, _, _, name_label = _parse_name(original, where)
        if code not in _CSV_LABELS:
            raise ValueError(
                f"Label {code!r} for {new_name!r} ({where}) is not 1 (all) or 0 (hem)."
            )
        if _CSV_LABELS[code] != name_label:
            raise ValueError(
                f"{where}: label {code} ({_CSV_LABELS[code]}) disagrees with the "
                f"original file name {original!r}; fix the labels file."
            )
        path = image_dir / new_name
        if not path.is_file():
            raise ValueError(f"Image {path} listed in {csv_path} does not exist.")
        number = _NUMBERED_RE.fullmatch(new_name)
        key = int(number.group(1)) if number else line
        records.append((key, path, original, name_label, subject, -1))
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


def _read_one(path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode != "RGB":
                img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as exc:
        raise ValueError(
            f"Cannot read image file {path}: {exc}. The file is corrupt or not a "
            "BMP image; replace or remove it."
        ) from exc


def _center_fit(image, size):
    """Centre crop or zero-pad ``image`` to ``size`` x ``size``."""
    out = np.zeros((size, size, 3), dtype=np.uint8)
    h, w = image.shape[:2]
    src_y, dst_y = max((h - size) // 2, 0), max((size - h) // 2, 0)
    src_x, dst_x = max((w - size) // 2, 0), max((size - w) // 2, 0)
    ch, cw = min(h, size), min(w, size)
    out[dst_y : dst_y + ch, dst_x : dst_x + cw] = image[
        src_y : src_y + ch, src_x : src_x + cw
    ]
    return out


def read_images(paths, image_size=None):
    """Read RGB images from files into one uint8 array.

    Parameters
    ----------
    paths : sequence of str or path-like
        Image files (BMP in C-NMC; anything Pillow reads works).
    image_size : int, default=None
        Centre crop (or zero-pad, black) every image to ``image_size`` x
        ``image_size``, e.g. 350 for the 450 x 450 C-NMC images. When None,
        all images must have the same size.

    Returns
    -------
    images : ndarray of shape (n_images, height, width, 3), uint8

    Raises
    ------
    ValueError
        If a file cannot be read (the message names it) or, without
        ``image_size``, if two images differ in size.

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
    paths = [Path(p) for p in (paths.tolist() if hasattr(paths, "tolist") else paths)]
    if not paths:
        raise ValueError("paths is empty: pass at least one image file.")
    images = None
    first = None
    for i, path in enumerate(paths):
        image = _read_one(path)
        if image_size is not None:
            image = _center_fit(image, image_size)
        if images is None:
            images = np.empty((len(paths), *image.shape), dtype=np.uint8)
            first = path
        elif image.shape != images.shape[1:]:
            raise ValueError(
                f"Image {path} has size {image.shape[1]}x{image.shape[0]} but {first} "
                f"has {images.shape[2]}x{images.shape[1]}; pass image_size (e.g. "
                "image_size=350) to centre crop or pad them to one size."
            )
        images[i] = image
    return images


def load_cnmc(root, *, subset="training", image_size=None, lazy=False, folds=None):
    """Load the C-NMC 2019 leukemia cell images from their folder layout.

    The C-NMC 2019 challenge data (Mourya et al., ISBI 2019; the data of the
    LeukoNet paper) hold one segmented cell per 450 x 450 BMP image on a black
    background. ``root`` may be the folder holding ``fold_0``, ``fold_1``,
    ``fold_2`` or any folder up to three levels above it (mirrors add
    prefixes like ``C-NMC_training_data/`` or
    ``C-NMC_Leukemia/training_data/``). The preliminary test set is found by
    its labels CSV (header ``Patient_ID,new_names,labels``) and the numbered
    images (``1.bmp``, ``2.bmp``, ...) in a folder beside it.

    Parameters
    ----------
    root : str or path-like
        Folder to search.
    subset : {"training", "preliminary_test", "auto"}, default="training"
        Which part to load. ``"auto"`` loads every part found under ``root``
        (training images first, then the preliminary test images, whose fold
        is -1).
    image_size : int, default=None
        Centre crop (or pad with black) every image to this size, e.g. 350
        as in LeukoNet. When None, all images must share one size.
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
        If no C-NMC layout is found, a folder is empty, a file name breaks
        the convention, a file sits in the wrong label folder, the test
        labels CSV is missing, a file cannot be read, or image sizes differ
        without ``image_size``. The message names the file or folder.

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
    if folds is not None:
        folds = [folds] if isinstance(folds, numbers.Integral) else list(folds)
        if not all(isinstance(f, numbers.Integral) for f in folds):
            raise ValueError(f"folds must be an int or a list of ints, got {folds!r}.")
        folds = {int(f) for f in folds}
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder.")

    records, sources = [], []
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
            records += _list_training(training, train_folds, root)
            sources.append(f"training images from {training}")
    if test_csv is not None:
        records += _list_test(test_csv)
        sources.append(f"preliminary test images listed in {test_csv}")

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
        data["images"] = read_images(paths, image_size=image_size)
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
