"""Your own images: :func:`load_images` reads a ``path,label,subject`` CSV or class folders.

The rows (or files) are checked here; the pixels are read by ``_images``
(:func:`~sklearn_leuko.datasets.read_images`'s conversion and centring rules),
then cropped and resized to one geometry.
"""

import csv
import warnings
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from ._cnmc_layout import _IMAGE_SUFFIXES, _examples, _find_training, _is_os_file
from ._images import _center_fit, _check_center, _check_image_size, _read_one
from ._segment import Segmentation, check_segment

__all__ = ["load_images"]

_NO_SUBJECT = ("error", "per_image")


def _resize(image, size):
    """Square ``image`` resized to ``size`` x ``size`` (area averaging)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    from PIL import Image

    return np.asarray(
        Image.fromarray(image).resize((size, size), Image.Resampling.BOX),
        dtype=np.uint8,
    )


def _read_csv_rows(csv_path, columns):
    """``[(line, path, label, subject)]`` of the CSV; malformed rows refused."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in columns[:2] if c not in header]
            if missing:
                raise ValueError(
                    f"{csv_path} has no column(s) {missing} (header: "
                    f"{','.join(header)!r}); name them with path_column=, "
                    "label_column= (and subject_column=)."
                )
            index = [header.index(c) if c in header else None for c in columns]
            rows = []
            for fields in reader:
                if not any(f.strip() for f in fields):
                    continue  # blank line
                if len(fields) != len(header):
                    raise ValueError(
                        f"{csv_path}, line {reader.line_num} has {len(fields)} "
                        f"fields but the header has {len(header)}; fix that row."
                    )
                values = [fields[i].strip() if i is not None else "" for i in index]
                rows.append((reader.line_num, *values))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"Cannot read the labels file {csv_path}: {exc}.") from exc
    if not rows:
        raise ValueError(f"The labels file {csv_path} lists no images.")
    return rows


def _csv_records(csv_path, columns):
    """``[(path, label, subject, where)]`` of a CSV, every bad row refused."""
    base = csv_path.parent.resolve()
    records, seen, subject_label = [], {}, {}
    for line, rel, label, subject in _read_csv_rows(csv_path, columns):
        where = f"{csv_path}, line {line}"
        if not rel:
            raise ValueError(f"{where}: the path is empty; fill it in or remove it.")
        if not label:
            raise ValueError(
                f"{where}: the label of {rel!r} is empty; every image needs its "
                "class: fill it in or remove the row."
            )
        path = (base / rel).resolve()
        if not path.is_relative_to(base):
            raise ValueError(
                f"{where}: the path {rel!r} leads out of the CSV's folder {base}; "
                "paths are relative to the CSV and stay inside its folder: move "
                "the image below it."
            )
        if path in seen:
            raise ValueError(
                f"{where}: {rel!r} is listed twice (also on line {seen[path]}); "
                "each image has one row: remove the duplicate."
            )
        seen[path] = line
        if not path.is_file():
            raise ValueError(
                f"{where}: the image {rel!r} does not exist ({path}); restore it "
                "or remove its row."
            )
        if subject:
            first = subject_label.setdefault(subject, (label, line))
            if first[0] != label:
                raise ValueError(
                    f"{where}: subject {subject!r} is labelled {label!r} here but "
                    f"{first[0]!r} on line {first[1]}; a subject has one class "
                    "(as in C-NMC): fix the label or the subject."
                )
        records.append((path, label, subject, where))
    return records


def _folder_records(root):
    """``[(path, label, "", where)]`` of a folder of one sub-folder per class."""
    records, skipped = [], []
    classes = sorted(
        d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
    )
    stray = [
        f.name
        for f in root.iterdir()
        if f.is_file() and f.suffix.lower() in _IMAGE_SUFFIXES
    ]
    if stray:
        raise ValueError(
            f"{root} holds image file(s) outside any class folder "
            f"({_examples(sorted(stray))}); put each image in the sub-folder of its "
            "class."
        )
    if not classes:
        raise ValueError(
            f"{root} has no class sub-folders: pass a CSV (path,label,subject), a "
            "C-NMC tree (fold_<k>/{all,hem}) or a folder of one sub-folder per class."
        )
    for class_dir in classes:
        found = 0
        for entry in sorted(class_dir.iterdir()):
            if _is_os_file(entry):
                continue
            if entry.is_dir():
                raise ValueError(
                    f"Unexpected folder {entry} inside the class folder "
                    f"{class_dir}: class folders hold images only."
                )
            if entry.suffix.lower() in _IMAGE_SUFFIXES:
                records.append((entry, class_dir.name, "", str(entry)))
                found += 1
            else:
                skipped.append(entry)
        if not found:
            raise ValueError(f"Class folder {class_dir} holds no images.")
    if skipped:
        warnings.warn(
            f"load_images skipped {len(skipped)} file(s) under {root} that are not "
            f"images: {_examples(skipped)}.",
            UserWarning,
            stacklevel=3,
        )
    return records


def _cnmc_records(root):
    from ._cnmc import load_cnmc

    data = load_cnmc(root, lazy=True)
    return [
        (Path(p), t, g, p)
        for p, t, g in zip(data.paths, data.target, data.groups, strict=True)
    ]


def source_records(source, columns=("path", "label", "subject")):
    """``(records, description)`` of a CSV, class folders or a C-NMC tree.

    ``records`` are ``(path, label, subject, where)`` in the source's order;
    every bad entry is refused with a ``ValueError`` naming it.
    """
    source = Path(source)
    if source.is_file():
        return _csv_records(source, columns), f"CSV {source}"
    if source.is_dir():
        if _find_training(source) is not None:
            return _cnmc_records(source), f"C-NMC tree {source}"
        return _folder_records(source), f"class folders {source}"
    raise ValueError(
        f"source={str(source)!r} does not exist: pass a CSV file "
        "(path,label,subject), a folder of class folders or a C-NMC tree."
    )


def _fill_subjects(records, no_subject, source):
    empty = [r for r in records if not r[2]]
    if not empty:
        return [r[2] for r in records]
    if no_subject == "error":
        raise ValueError(
            f"{len(empty)} image(s) of {source} have no subject (first: "
            f"{empty[0][3]}); subject-level splits need one per image. Fill in the "
            "subject column, or pass no_subject='per_image' to make each such image "
            "its own subject (only honest when no two images share a patient)."
        )
    warnings.warn(
        f"{len(empty)} image(s) of {source} have no subject: each is its own "
        "subject (no_subject='per_image'); cross-validation cannot keep a "
        "patient's cells together.",
        UserWarning,
        stacklevel=3,
    )
    return [r[2] or f"image:{r[0].name}" for r in records]


def load_images(
    source,
    image_size=None,
    *,
    center="centroid",
    crop_size=None,
    path_column="path",
    label_column="label",
    subject_column="subject",
    no_subject="error",
    segment=None,
):
    """Load your own cell images from a CSV, class folders or a C-NMC tree.

    ``source`` is one of:

    - a CSV file with a header and the columns ``path,label,subject`` (names
      set by ``path_column``, ``label_column``, ``subject_column``; other
      columns are ignored). Paths are relative to the CSV's folder. The
      images come in the order of the rows;
    - a folder of one sub-folder per class (``source/all/*.png``,
      ``source/hem/*.png``): the sub-folder's name is the label; files in
      sorted order, classes in sorted order; no subjects;
    - a C-NMC 2019 training tree (``fold_<k>/{all,hem}/*.bmp``), read as by
      :func:`load_cnmc` (its rules and order).

    Nothing is skipped silently. A CSV row is refused with a ``ValueError``
    naming the file and line when its image is missing, its path is empty,
    leads out of the CSV's folder (``../x.png``, an absolute path elsewhere)
    or repeats an earlier row's, its label is empty, or its subject had
    another label on an earlier line. A row with the wrong number of fields
    is refused. In class folders, images outside a class folder, nested
    folders and empty class folders are refused; files that are not images
    are skipped with a ``UserWarning`` that counts them.

    **Images without a subject** (an empty subject column, as in the shared
    BCCD and PBC sets, or class folders): subject-level cross-validation
    needs a subject per image, so by default this is an error. With
    ``no_subject="per_image"`` each such image becomes its own subject
    (``"image:<file name>"``), with a ``UserWarning``.

    **Geometry.** Every image is read as by :func:`read_images` (8-bit RGB,
    alpha on black, grey refused), then

    0. with ``segment``, replaced by its segmented form: a
       :class:`~sklearn_leuko.preprocessing.CellSegmenter` cuts the white
       cell out of the crop (a smear crop with red cells on a light
       background, of any size) and puts it alone on black, its centroid at
       the centre, on the segmenter's canvas (its ``image_size``; by default
       the crop's own size). The steps below then apply to that canvas;
    1. cropped (or padded with black) to ``crop_size`` x ``crop_size``
       around its cell's centroid (``center``); with ``crop_size=None`` a
       square image is kept whole and a non-square one is padded to a square
       of its longer side;
    2. resized to ``image_size`` x ``image_size`` (area averaging) when
       ``image_size`` is given and differs.

    So ``crop_size=350`` on C-NMC is the paper's crop at native scale, and
    ``image_size=72`` alone is the whole 450 px cell scaled down, the
    picture ``make_cells(image_size=72)`` draws. With ``segment``,
    ``image_size`` alone scales the whole segmented crop down (the cell
    keeps its share of the crop), and ``crop_size`` cuts around the cell's
    centroid, which the segmenter put at the centre, so ``center`` makes no
    difference. The result's ``geometry``
    records this (``source_size``: the longer side of the largest source
    image, or of the segmented canvas; ``crop_size``: the side cut at native scale; ``image_size``: the
    side of ``images``); a fitted model keeps its training geometry and new
    images should be loaded with the same ``crop_size`` and ``image_size``.

    Parameters
    ----------
    source : str or path-like
        CSV file, folder of class folders, or C-NMC training tree.
    image_size : int, default=None
        Side of the returned images (resize after the crop). None: the crop
        (or source) size; without ``crop_size`` all images must then share one
        size.
    center : {"centroid", "image"}, default="centroid"
        What goes to the middle of the crop: the centroid of the non-black
        pixels (C-NMC centres its cells there) or the image centre.
    crop_size : int, default=None
        Side of the square cut at native scale before resizing (350 in the
        LeukoNet paper for the 450 px C-NMC images). None: no crop.
    path_column, label_column, subject_column : str
        Column names of the CSV. A CSV without the subject column is read as
        if every subject were empty.
    no_subject : {"error", "per_image"}, default="error"
        What to do with images that have no subject (see above).
    segment : None, bool or CellSegmenter, default=None
        Segment each image as read (step 0 above), for crops of a smear
        rather than C-NMC-like cells on black. ``None`` or ``False``: no
        segmentation. ``True``: ``CellSegmenter()`` (the crop's own size as
        canvas, ``on_failure="raise"``). A
        :class:`~sklearn_leuko.preprocessing.CellSegmenter`: a clone of it,
        with its ``image_size``, ``cell_fraction`` and ``on_failure``. A crop
        without exactly one white cell is, with ``on_failure="raise"``, a
        ``ValueError`` naming every such file (all images are read first);
        with ``on_failure="flag"``, a ``UserWarning`` that counts and names
        them, and ``segment_status`` in the result.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        images : ndarray of shape (n_images, image_size, image_size, 3), uint8
            RGB images, in the order of the rows.
        target : ndarray of shape (n_images,), str
            The labels as written (``"all"``/``"hem"`` for C-NMC).
        groups : ndarray of shape (n_images,), str
            Subject of every image (for ``GroupKFold``).
        filenames : ndarray of shape (n_images,), str
            File names (without folder).
        paths : ndarray of shape (n_images,), str
            The image files.
        geometry : dict
            ``{"source_size": int, "crop_size": int, "image_size": int}``,
            the same keys as ``make_cells``'s.
        source : str
            What was read (the CSV, folder or tree, with the image count).
        DESCR : str
            Same as ``source``, with the classes and subjects counted.
        segment_status : ndarray of shape (n_images,), str
            Only with ``segment``: ``"ok"``, ``"no_cell"`` or
            ``"several_cells"`` per image (see
            :func:`~sklearn_leuko.preprocessing.segment_cell`).

    Raises
    ------
    ValueError
        For every bad row or file (the message names it), a missing subject
        with ``no_subject="error"``, or images of different sizes that no
        ``crop_size``/``image_size`` brings to one size. With ``segment``
        and ``on_failure="raise"``, crops where no single white cell was
        found (the message names the files).
    TypeError
        If ``segment`` is not None, a bool or a CellSegmenter.

    See Also
    --------
    load_cnmc : The C-NMC 2019 folder layout with its checks.
    read_images : Read a list of image files.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> import numpy as np
    >>> from sklearn_leuko.datasets import load_images
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for i in range(4):
    ...         rgb = np.zeros((45, 45, 3), np.uint8)
    ...         rgb[10:30, 12:34] = (70, 30, 80)
    ...         Image.fromarray(rgb).save(Path(d) / f"c{i}.png")
    ...     rows = ["path,label,subject"] + [
    ...         f"c{i}.png,{'all' if i < 2 else 'hem'},{'P1' if i < 2 else 'H1'}"
    ...         for i in range(4)]
    ...     _ = (Path(d) / "labels.csv").write_text("\\n".join(rows) + "\\n")
    ...     data = load_images(Path(d) / "labels.csv", image_size=18, crop_size=35)
    >>> data.images.shape, data.target.tolist(), data.geometry
    ((4, 18, 18, 3), ['all', 'all', 'hem', 'hem'], \
{'source_size': 45, 'crop_size': 35, 'image_size': 18})
    """
    image_size = _check_image_size(image_size)
    crop_size = _check_image_size(crop_size)
    center = _check_center(center)
    segmenter = check_segment(segment)
    if no_subject not in _NO_SUBJECT:
        raise ValueError(
            f"no_subject must be one of {_NO_SUBJECT}, got {no_subject!r}."
        )
    for name, value in (
        ("path_column", path_column),
        ("label_column", label_column),
        ("subject_column", subject_column),
    ):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}.")
    source = Path(source)
    records, what = source_records(source, (path_column, label_column, subject_column))
    groups = _fill_subjects(records, no_subject, what)
    segmentation = None if segmenter is None else Segmentation(segmenter)
    images, sizes = [], []
    for path, _label, _subject, where in records:
        try:
            image = _read_one(path)
            if segmentation is not None:
                name = where if where == str(path) else f"{path.name} ({where})"
                image = segmentation(image, name)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
        h, w = image.shape[:2]
        sizes.append(max(h, w))
        side = crop_size if crop_size is not None else max(h, w)
        if crop_size is not None or h != w:
            image = _center_fit(image, side, center if crop_size else "image")
        if image_size is not None:
            image = _resize(image, image_size)
        if images and image.shape != images[0].shape:
            raise ValueError(
                f"{where}: image {path.name} is {w}x{h} but the first image is "
                f"{images[0].shape[1]}x{images[0].shape[0]} after cropping; pass "
                "image_size (resize) or crop_size to bring them to one size."
            )
        images.append(image)
    extra = {}
    if segmentation is not None:
        extra["segment_status"] = segmentation.finish()
    target = np.array([r[1] for r in records])
    groups = np.array(groups)
    geometry = {
        "source_size": int(max(sizes)),
        "crop_size": int(crop_size if crop_size is not None else max(sizes)),
        "image_size": int(images[0].shape[0]),
    }
    described = f"{what}: {len(records)} images"
    if segmenter is not None:
        ok = int((extra["segment_status"] == "ok").sum())
        described += f", segmented by {segmenter!r} ({ok} ok)"
    counts = "; ".join(
        f"{label}: {int((target == label).sum())} cells, "
        f"{len(set(groups[target == label]))} subjects"
        for label in sorted(set(target.tolist()))
    )
    return Bunch(
        images=np.stack(images),
        target=target,
        groups=groups,
        filenames=np.array([r[0].name for r in records]),
        paths=np.array([str(r[0]) for r in records]),
        geometry=geometry,
        source=described,
        DESCR=f"{described} ({counts}); geometry {geometry}.",
        **extra,
    )
