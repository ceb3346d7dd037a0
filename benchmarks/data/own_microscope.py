"""Bring your own microscope: stain normalisation, segmentation, out-of-domain flag.

    python benchmarks/data/own_microscope.py --data ../shared/data/real
    python benchmarks/data/own_microscope.py --data ../shared/data/real --quick
    python benchmarks/data/own_microscope.py --data ../shared/data/real --parts segment

Three parts (``--parts``, default all):

``stain``
    :class:`~sklearn_leuko.preprocessing.StainNormalizer` against torchstain
    (Macenko, Reinhard) on the same pixels: PBC lymphocytes segmented onto
    black by ``CellSegmenter`` (450 px), normalised to one C-NMC calibration
    cell. Backgrounds are excluded the same way for both: torchstain gets
    the cell pixels of each image (our tissue mask) as a one-row image, and
    the reference's statistics pixels likewise; the settings are
    torchstain's (``i0=240``, ``offset=1``, ``alpha=1``, ``beta=0.15``).
    Agreement: mean absolute difference in intensity levels and the share of
    cell pixels within 3 levels. Speed: a batch of 450 px images on the CPU,
    ours against torch-staintools (Reinhard, Macenko, Vahadane).
``segment``
    :class:`~sklearn_leuko.preprocessing.CellSegmenter` on the 500 PBC and
    135 BCCD crops: success (status "ok", one component, its centroid within
    15% of the crop from the centre, covering 1% to 90% of the crop), time
    per image, and a montage of inputs and outputs (``montage_pbc.png``,
    ``montage_bccd.png`` in ``--out``).
``domain``
    The out-of-domain flag of a Stage-1 network trained on ``make_cells``
    (``--size`` px): share flagged on held-out synthetic cells, on PBC
    neutrophils, eosinophils, platelets and erythroblasts and on BCCD crops
    as they come (resized to the model's input), on the real C-NMC cells
    (450 px resized), and on PBC lymphocytes after ``CellSegmenter`` and
    ``StainNormalizer`` fitted to the C-NMC calibration cells.

Everything is written to ``--out`` (default: a ``leuko-output`` folder in the
temporary directory), never beside the images; ``own_microscope.json`` holds
the figures. torchstain and torch-staintools are not dependencies of
sklearn-leuko: install them to run the ``stain`` comparison (torch-staintools
needs torchvision only for ``convert_image_dtype``; without torchvision a
stand-in is used and the run says so).
"""

import argparse
import csv
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sklearn_leuko.datasets import make_cells
from sklearn_leuko.nn._stain_normalize import tissue_masks
from sklearn_leuko.preprocessing import CellSegmenter, StainNormalizer


def read_folder(folder, labels=None, limit=None):
    """uint8 RGB images (list) and their rows of ``labels.csv``."""
    folder = Path(folder)
    with open(folder / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if labels is not None:
        rows = [r for r in rows if r["label"] in labels]
    rows = rows[:limit] if limit else rows
    images = [np.asarray(Image.open(folder / r["path"]).convert("RGB")) for r in rows]
    return images, rows


def cnmc_split(folder, split):
    with open(Path(folder) / "subjects.csv", newline="") as handle:
        chosen = {r["subject"] for r in csv.DictReader(handle) if r["split"] == split}
    images, rows = read_folder(folder)
    keep = [i for i, r in enumerate(rows) if r["subject"] in chosen]
    return np.stack([images[i] for i in keep]), [rows[i] for i in keep]


def resize(images, size):
    """Each image resized (area average) to ``size`` x ``size``, as one array."""
    return np.stack(
        [
            np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BOX))
            for im in images
        ]
    )


def montage(inputs, outputs, path, n=12, tile=96):
    rows = []
    for row in (inputs[:n], outputs[:n]):
        rows.append(np.concatenate([resize([im], tile)[0] for im in row], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


# ------------------------------------------------------------------- stain
def _torchvision_stand_in():
    try:
        import torchvision  # noqa: F401

        return False
    except Exception:
        pass

    def convert_image_dtype(image, dtype=torch.float):
        if image.is_floating_point():
            return image.to(dtype)
        return image.to(dtype) / 255.0

    functional = types.ModuleType("torchvision.transforms.functional")
    functional.convert_image_dtype = convert_image_dtype
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional
    package = types.ModuleType("torchvision")
    package.transforms = transforms
    sys.modules.update(
        {
            "torchvision": package,
            "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional,
        }
    )
    return True


def _strip(pixels):
    # (P, 3) pixels -> a one-row CHW uint8 image for torchstain
    return torch.from_numpy(np.ascontiguousarray(pixels.T[:, None, :]))


def stain_part(data, args):
    import torchstain

    result = {}
    reference_all, _ = cnmc_split(data / "cnmc2019", "calibration")
    reference = reference_all[:1]
    lymphocytes, _ = read_folder(data / "pbc_barcelona", {"lymphocyte"}, args.n_stain)
    segmenter = CellSegmenter(image_size=450, cell_fraction=0.17, on_failure="flag")
    with np.errstate(all="ignore"):
        X = segmenter.fit_transform(lymphocytes)
    X = X[segmenter.status_ == "ok"]
    result["images"] = f"{len(X)} PBC lymphocytes, segmented to 450 px on black"
    settings = dict(i0=240.0, offset=1.0, beta=0.15, alpha=1.0)
    torch_ref = torch.from_numpy(reference).permute(0, 3, 1, 2).float()
    for method in ("macenko", "reinhard"):
        ours = StainNormalizer(method, **settings, random_state=0).fit(reference)
        out = ours.transform(X)
        module = ours.to_module()
        _, _, used, _ = module.statistics(torch_ref)
        ref_pixels = reference[0][used[0].numpy()]
        if method == "macenko":
            theirs = torchstain.normalizers.MacenkoNormalizer(backend="torch")
            od = -np.log((ref_pixels.astype(float) + 1) / 240)
            theirs.fit(_strip(ref_pixels[(od >= 0.15).all(axis=1)]))
        else:
            theirs = torchstain.normalizers.ReinhardNormalizer(backend="torch")
            theirs.fit(_strip(ref_pixels))
        diffs = []
        for image, normed in zip(X, out, strict=True):
            tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
            tissue, _ = tissue_masks(
                tensor, i0=240.0, offset=1.0, beta=0.15, black_level=0.0, erosion=0
            )
            mask = tissue[0].numpy()
            pixels = image[mask]
            if method == "macenko":
                got = theirs.normalize(_strip(pixels), Io=240, stains=False)[0]
            else:
                got = theirs.normalize(_strip(pixels))
                got = got.permute(1, 2, 0) if got.shape[0] == 3 else got
            got = got.reshape(-1, 3).numpy().astype(float)
            diffs.append(np.abs(got - normed[mask].astype(float)))
        diffs = np.concatenate(diffs)
        result[f"{method}_vs_torchstain"] = {
            "mean_abs_diff_levels": float(diffs.mean()),
            "share_within_3_levels": float((diffs.max(axis=1) <= 3).mean()),
            "cell_pixels": int(len(diffs)),
        }
        print(method, "vs torchstain:", result[f"{method}_vs_torchstain"], flush=True)

    # speed at 450 px, batched, on the CPU
    torch.set_num_threads(args.threads)
    stand_in = _torchvision_stand_in()
    from torch_staintools.normalizer import NormalizerBuilder

    batch = np.stack([X[i % len(X)] for i in range(args.batch)])
    tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
    speed = {"batch": f"{args.batch} x 450x450", "threads": args.threads}
    for method in ("reinhard", "macenko", "vahadane"):
        ours = StainNormalizer(method, batch_size=args.batch, random_state=0)
        ours.fit(reference_all[:4])
        start = time.perf_counter()
        ours.transform(batch)
        speed[f"ours_{method}_s"] = time.perf_counter() - start
        try:
            theirs = NormalizerBuilder.build(method, concentration_solver="ls")
            theirs.fit(torch.from_numpy(reference_all[:1]).permute(0, 3, 1, 2) / 255.0)
            start = time.perf_counter()
            with torch.no_grad():
                theirs(tensor / 255.0)
            speed[f"torch_staintools_{method}_s"] = time.perf_counter() - start
        except Exception as exc:  # report, do not hide
            speed[f"torch_staintools_{method}_error"] = f"{type(exc).__name__}: {exc}"
        print(method, {k: v for k, v in speed.items() if method in k}, flush=True)
    speed["torchvision_stand_in"] = stand_in
    result["speed_cpu"] = speed
    return result


# ----------------------------------------------------------------- segment
def _success(mask, status):
    if status != "ok" or not mask.any():
        return False
    from scipy import ndimage

    if ndimage.label(mask)[1] != 1:
        return False
    height, width = mask.shape
    cy, cx = np.argwhere(mask).mean(axis=0)
    off = np.hypot((cy - height / 2) / height, (cx - width / 2) / width)
    return bool(off <= 0.15 and 0.01 <= mask.mean() <= 0.9)


def segment_part(data, args, out):
    result = {}
    for name in ("pbc_barcelona", "bccd"):
        images, rows = read_folder(data / name, limit=args.n_segment)
        segmenter = CellSegmenter(image_size=256, on_failure="flag")
        start = time.perf_counter()
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outputs = segmenter.fit_transform(images)
        seconds = time.perf_counter() - start
        ok = [
            _success(m, s)
            for m, s in zip(segmenter.masks_, segmenter.status_, strict=True)
        ]
        by_label = {}
        for row, good in zip(rows, ok, strict=True):
            by_label.setdefault(row["label"], []).append(good)
        rng = np.random.default_rng(0)
        shown = np.sort(rng.choice(len(images), min(12, len(images)), replace=False))
        path = out / f"montage_{name.split('_')[0]}.png"
        montage([images[i] for i in shown], outputs[shown], path)
        result[name] = {
            "crops": len(images),
            "success_rate": float(np.mean(ok)),
            "ms_per_image": 1000 * seconds / len(images),
            "status_counts": {
                s: int((segmenter.status_ == s).sum()) for s in set(segmenter.status_)
            },
            "success_by_label": {
                k: float(np.mean(v)) for k, v in sorted(by_label.items())
            },
            "montage": str(path),
        }
        print(name, result[name], flush=True)
    return result


# ------------------------------------------------------------------ domain
def domain_part(data, args):
    import warnings

    from sklearn_leuko import make_stage

    size = args.size
    train = make_cells(
        n_subjects=args.subjects,
        cells_per_subject=args.cells,
        image_size=size,
        random_state=0,
    )
    held = make_cells(
        n_subjects=8, cells_per_subject=20, image_size=size, random_state=1
    )
    stage = make_stage("1", max_epochs=args.epochs, verbose=0, random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stage.fit(train.images, train.target, net__groups=train.groups)
    fit_s = time.perf_counter() - start
    net = stage[-1]

    def share(images):
        return float((~net.in_domain(images)).mean())

    result = {
        "model": f"Stage-1 on make_cells({args.subjects} x {args.cells}, {size} px), "
        f"{args.epochs} epochs, fit {fit_s:.0f} s",
        "held_out_synthetic_flagged": share(held.images),
    }
    start = time.perf_counter()
    net.domain_score(held.images)
    result["domain_score_ms_per_cell"] = (
        1000 * (time.perf_counter() - start) / len(held.images)
    )
    for label in ("neutrophil", "eosinophil", "platelet", "erythroblast"):
        images, _ = read_folder(data / "pbc_barcelona", {label})
        result[f"pbc_{label}_flagged"] = share(resize(images, size))
    images, _ = read_folder(data / "bccd")
    result["bccd_flagged"] = share(resize(images, size))
    cnmc, _ = read_folder(data / "cnmc2019")
    result["cnmc_flagged"] = share(resize(cnmc, size))
    reference, _ = cnmc_split(data / "cnmc2019", "calibration")
    lymphocytes, _ = read_folder(data / "pbc_barcelona", {"lymphocyte"})
    result["pbc_lymphocyte_as_they_come_flagged"] = share(resize(lymphocytes, size))
    segmenter = CellSegmenter(image_size=450, cell_fraction=0.17, on_failure="flag")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cells = segmenter.fit_transform(lymphocytes)
    cells = cells[segmenter.status_ == "ok"]
    for method in ("macenko", "reinhard"):
        normalizer = StainNormalizer(method, random_state=0).fit(reference)
        result[f"pbc_lymphocyte_segmented_{method}_flagged"] = share(
            resize(normalizer.transform(cells), size)
        )
    result["pbc_lymphocyte_segmented_cells"] = int(len(cells))
    for key, value in result.items():
        print(key, value, flush=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the folder of the real sets")
    parser.add_argument(
        "--out",
        default=str(Path(tempfile.gettempdir()) / "leuko-output" / "own_microscope"),
    )
    parser.add_argument("--parts", default="stain,segment,domain")
    parser.add_argument(
        "--n-stain", type=int, default=16, help="PBC lymphocytes compared"
    )
    parser.add_argument("--batch", type=int, default=16, help="images per speed batch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-segment", type=int, default=None)
    parser.add_argument("--subjects", type=int, default=24)
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="small and fast run")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_stain, args.batch, args.n_segment = 4, 4, 40
        args.subjects, args.cells, args.size, args.epochs = 8, 6, 64, 1
    data = Path(args.data)
    if not (data / "cnmc2019").is_dir():
        parser.error(f"--data {data}: no cnmc2019 folder in it (the shared real sets)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    results = {}
    parts = set(args.parts.split(","))
    if "segment" in parts:
        results["segment"] = segment_part(data, args, out)
    if "stain" in parts:
        results["stain"] = stain_part(data, args)
    if "domain" in parts:
        results["domain"] = domain_part(data, args)
    path = out / "own_microscope.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
