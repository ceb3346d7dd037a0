"""``sklearn-leuko predict``: classify a folder of cell images with a saved model."""

import csv
import re
import warnings
from pathlib import Path

from ..utils._escape import escape_csv_cell
from ..utils._image_limits import open_image
from ._console import EXIT_OK, CLIError, one_line
from ._models import input_shape, load_cli_model, set_tta

IMAGE_SUFFIXES = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _natural_key(path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _list_images(folder, console):
    if not folder.exists():
        raise CLIError(f"--images {folder}: no such folder.")
    if not folder.is_dir():
        raise CLIError(f"--images {folder}: not a folder; pass the folder of images.")
    paths, others = [], []
    for path in folder.iterdir():
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            paths.append(path)
        elif not path.name.startswith("."):
            others.append(path.name)
    if not paths:
        raise CLIError(
            f"--images {folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it."
        )
    if others:
        console.info(
            f"Note: {len(others)} entr{'y' if len(others) == 1 else 'ies'} of "
            f"{folder} {'is' if len(others) == 1 else 'are'} not image files and "
            f"{'is' if len(others) == 1 else 'are'} not classified (e.g. "
            f"{sorted(others)[0]}; sub-folders are not searched)."
        )
    return sorted(paths, key=_natural_key)


def _data_images(source):
    """Image paths of ``--data`` (CSV, class folders, C-NMC tree) and their names."""
    from ..datasets._load_images import source_records

    try:
        records, _ = source_records(source)
    except ValueError as exc:
        raise CLIError(f"--data {source}: {one_line(exc)}") from None
    if not records:
        raise CLIError(f"--data {source}: no images in it.")
    base = (source.parent if source.is_file() else source).resolve()
    paths = [Path(record[0]) for record in records]
    names = []
    for path in paths:
        try:
            names.append(str(path.resolve().relative_to(base)))
        except ValueError:
            names.append(str(path))
    return paths, names


def _count_resized(paths, width, height):
    resized = 0
    for path in paths:
        try:
            with open_image(path) as img:  # over the pixel limit: ValueError
                if img.size != (width, height):
                    resized += 1
        except Exception as exc:
            raise CLIError(f"cannot read image {path}: {one_line(exc)}") from None
    return resized


def _segmentation(args):
    if not args.segment:
        return None
    from ..datasets._segment import Segmentation
    from ._common import segmenter

    return Segmentation(segmenter(args))


def _segment(segmentation, images, names):
    """``--segment``: the chunk's images segmented; ``raise`` stops at a failure."""
    out = []
    for image, name in zip(images, names, strict=True):
        try:
            out.append(segmentation(image, name))
        except ValueError as exc:  # not a crop CellSegmenter takes (too small)
            raise CLIError(f"--segment: {name}: {one_line(exc)}") from None
    if segmentation.on_failure == "raise":
        try:
            segmentation.finish()
        except ValueError as exc:
            raise CLIError(f"--segment: {one_line(exc)}") from None
    return out


def _has_domain_summary(model):
    from sklearn.pipeline import Pipeline

    final = model[-1] if isinstance(model, Pipeline) else model
    parts = getattr(final, "estimators_", [final])
    nets = [p[-1] if isinstance(p, Pipeline) else p for p in parts]
    return all(getattr(net, "domain_summary_", None) is not None for net in nets)


def cmd_predict(args, console):
    from tqdm.auto import tqdm

    from .._classifier._domain import model_domain_score
    from ..datasets import read_images
    from ..metrics import CANCER_LABEL, NORMAL_LABEL, proba_of_cancer
    from ..utils._files import atomic_write, check_writable

    if not Path(args.model).exists():
        raise CLIError(f"--model {args.model}: no such file.")
    if args.data is not None:
        paths, names = _data_images(Path(args.data))
    else:
        paths = _list_images(Path(args.images), console)
        names = [path.name for path in paths]
    try:
        out = check_writable(args.out, "--out")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    model = load_cli_model(args.model, args.device, console)
    height, width = input_shape(model)[:2]
    if height != width:
        raise CLIError(
            f"the model expects {height}x{width} images; only square inputs are supported."
        )
    if args.tta is not None:
        set_tta(model, args.tta)
    classes = [str(c) for c in model.classes_]
    if CANCER_LABEL not in classes:
        raise CLIError(
            f"the model's classes are {classes}; expected {CANCER_LABEL!r} and "
            f"{NORMAL_LABEL!r}."
        )
    from ..datasets import fit_to_geometry, model_geometry

    geometry = model_geometry(model)
    if geometry is None:
        # Saved before the model kept its geometry: whole images resized.
        geometry = {"source_size": height, "crop_size": height, "image_size": height}
        console.info(
            "Note: this model file records no training geometry (saved before "
            "sklearn-leuko 0.4); every image is resized whole to the model's input."
        )
    resized = _count_resized(paths, width, height)
    if resized:
        share = geometry["crop_size"] / geometry["source_size"]
        cut = (
            "the whole image"
            if share == 1
            else f"{100 * share:.0f}% of its side around "
            + ("the cell's centroid" if args.center == "centroid" else "the centre")
        )
        console.info(
            f"Note: {resized} of {len(paths)} images "
            f"{'is' if resized == 1 else 'are'} not {width}x{height} px; as in "
            f"training ({geometry['crop_size']} of {geometry['source_size']} px, "
            f"resized to {height} px), {cut} is resized to {width}x{height} px."
        )

    segmentation = _segmentation(args)
    counts = {CANCER_LABEL: 0, NORMAL_LABEL: 0}
    # The out-of-domain flag; models saved before it existed have none.
    outside, has_domain = 0, _has_domain_summary(model)
    # Written atomically: an error or Ctrl-C leaves no partial CSV behind.
    with atomic_write(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "predicted_label", "p_all", "in_domain"])
        bar = tqdm(total=len(paths), disable=args.quiet, unit="image", leave=False)
        try:
            for start in range(0, len(paths), args.batch_size):
                chunk = paths[start : start + args.batch_size]
                chunk_names = names[start : start + args.batch_size]
                images = [read_images([p])[0] for p in chunk]
                if segmentation is not None:
                    images = _segment(segmentation, images, chunk_names)
                images = fit_to_geometry(images, geometry, center=args.center)
                p_all = proba_of_cancer(model.predict_proba(images), classes)
                flags = (
                    model_domain_score(model, images) <= 1.0
                    if has_domain
                    else [None] * len(chunk)
                )
                for name, p, flag in zip(chunk_names, p_all, flags, strict=True):
                    label = CANCER_LABEL if p >= 0.5 else NORMAL_LABEL
                    counts[label] += 1
                    outside += flag is not None and not flag
                    domain = "" if flag is None else str(bool(flag)).lower()
                    writer.writerow([escape_csv_cell(name), label, f"{p:.6f}", domain])
                bar.update(len(chunk))
        finally:
            bar.close()
    if segmentation is not None:
        # --segment flag: a warning names the crops without a single white cell
        segmentation.finish(
            stacklevel=2, used="their predictions are meaningless: crop them closer"
        )
    if not has_domain:
        console.info(
            "Note: this model file has no domain summary (saved before sklearn-leuko "
            "0.3); the in_domain column is empty. Refit the model to get it."
        )
    elif outside:
        warnings.warn(
            f"{outside} of {len(paths)} images are out of domain (in_domain=false): "
            "they look unlike the cells the model was trained on, so their "
            "predictions are not to be trusted. Bring them into the training cells' "
            "form first (CellSegmenter, StainNormalizer; see the 'own microscope' "
            "guide).",
            UserWarning,
            stacklevel=2,
        )
    views = f", averaged over {args.tta} views" if (args.tta or 1) > 1 else ""
    console.out(
        f"Wrote {len(paths)} predictions ({counts[CANCER_LABEL]} all, "
        f"{counts[NORMAL_LABEL]} hem{views}) to {out}"
    )
    return EXIT_OK
