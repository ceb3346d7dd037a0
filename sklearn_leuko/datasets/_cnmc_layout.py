"""Finding and checking the files of the C-NMC 2019 folder layout.

Training data: ``[prefix/]fold_<k>/{all,hem}/UID_<subject>_<image>_<cell>_<all|hem>.bmp``;
preliminary test data: numbered images and a labels CSV. Every rule that keeps
a cell from being skipped, merged or relabelled without a word (file names,
folds, subjects, CSV rows) is checked here; :func:`~sklearn_leuko.datasets.load_cnmc`
reads the files these functions list.
"""

import csv
import re
from pathlib import Path

from ..utils._validation import LABEL_CODES

_NAME_PATTERN = r"UID_(H?\d+)_(\d+)_(\d+)_(all|hem)\.bmp"
# The suffix's case does not matter ("UID_2_1_1_all.BMP" is a C-NMC name).
# The real release also spells one healthy subject with a lower-case "h"
# (fold_2 holds "UID_h3_1_1_hem.bmp"): that subject is "H3".
_NAME_RE = re.compile(r"UID_([Hh]?\d+)_(\d+)_(\d+)_(all|hem)\.(?i:bmp)")
_FOLD_RE = re.compile(r"fold_(\d+)", re.IGNORECASE)
_FOLDISH_RE = re.compile(r"fold\W*\d", re.IGNORECASE)
_NUMBERED_RE = re.compile(r"(\d+)\.bmp", re.IGNORECASE)
_CSV_HEADER = ("Patient_ID", "new_names", "labels")
_CSV_LABELS = {str(code): label for code, label in LABEL_CODES.items()}
_LABELS = ("all", "hem")
_SEARCH_DEPTH = 3
_TEST_DIR = "C-NMC_test_prelim_phase_data"
_TEST_CSV = "C-NMC_test_prelim_phase_data_labels.csv"
_SUBSETS = ("training", "preliminary_test", "auto")
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
    subject = subject.upper()  # "h3" (as in the real fold_2) is subject "H3"
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
