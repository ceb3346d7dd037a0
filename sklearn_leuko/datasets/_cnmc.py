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

The files are found and checked by ``_cnmc_layout`` and read by ``_images``.
"""

import csv
import numbers
import re
import warnings
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch, check_random_state

from ..utils._files import check_regular_target
from ..utils._validation import LABEL_CODES
from ._cnmc_layout import (
    _CSV_HEADER,
    _LABELS,
    _SEARCH_DEPTH,
    _SUBSETS,
    _TEST_CSV,
    _TEST_DIR,
    _CellRegistry,
    _class_of,
    _examples,
    _find_numbered_dir,
    _find_test_csv,
    _find_training,
    _list_test,
    _list_training,
    _parse_name,
    _subject_key,
)
from ._images import _check_center, _check_image_size, read_images

_LABEL_TO_CODE = {label: str(code) for code, label in LABEL_CODES.items()}

__all__ = ["load_cnmc", "read_images", "write_cnmc"]


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

    - file names follow ``UID_<subject>_<image>_<cell>_<all|hem>.bmp``;
      subjects with an ``H`` prefix are healthy (``hem`` only), plain
      numbers are ALL patients (``all`` only); a name in the wrong class
      folder is refused. Accepted variants of the real release: the suffix
      in any case (``.BMP``), and a lower-case ``h`` prefix, as in the real
      ``fold_2/hem/UID_h3_1_1_hem.bmp``: that subject is ``"H3"`` in
      ``groups`` (``filenames`` keep the name as written), and ``UID_h3_...``
      and ``UID_H3_...`` are one subject. The same rules apply to the
      ``Patient_ID`` column of the preliminary test CSV. The label token is
      lower case (``all``/``hem``) as in every C-NMC file;
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
        ``root`` (pathlib.Path); ``paths``, ndarray of shape (n_images,), str:
        the file of every input image, in input order; ``folds``, ndarray of
        shape (n_images,), int: fold of every input image (-1 for the test
        subset).

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
    for path in paths + ([csv_path] if subset == "preliminary_test" else []):
        check_regular_target(path, "write_cnmc target")  # FIFO, device: refused
    for path, image in zip(paths, images, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(image)).save(path, format="BMP")
    if subset == "preliminary_test":
        order = np.argsort(numbers_)
        with open(csv_path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(_CSV_HEADER)
            for i in order:
                code = _LABEL_TO_CODE[target[i]]
                writer.writerow([filenames[i], paths[i].name, code])
    return Bunch(root=root, paths=np.array([str(p) for p in paths]), folds=folds)
