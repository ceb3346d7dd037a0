"""Does Grad-CAM point at the cell? A meaning check on synthetic cells, and its cost.

    python benchmarks/accuracy/gradcam_sanity.py    # 2 x 5 fits, 15-40 min on 2 busy cores
    python benchmarks/accuracy/gradcam_sanity.py --seeds 0 1 --augment all --png /tmp/cam.png

For each seed and each ``--augment`` mode: ``make_cells(return_masks=True)``
(24 subjects x 24 cells, 128x128, so the last conv block is a 4x4 map); a
Stage-1-like ``LeukoNetClassifier(preprocessing="od")`` (default Basic
Network widths) trained on 2/3 of the subjects, without and with the
training augmentation (the paper's "w/o aug" and "w/ aug" rows);
Grad-CAM of class "all" (default layer: the Basic Network's last conv block)
on the cells of the held-out subjects. Per cell, the mean heat is taken in
four regions: inside the cell mask, on the black background (outside the cell
mask dilated by 2 pixels, so the anti-aliased rim counts for neither), in the
nucleus and in the cytoplasm (cell minus nucleus). The same numbers for the
untrained network of the same seed show what training adds (a centred cell
and zero padding can give heat in the middle by themselves).

With the default ``subject_variability=1`` the networks of this size and
budget mostly memorise the subjects' staining (held-out-subject accuracy near
the majority rate); ``--subject-variability 0`` removes that shortcut, so the
class signal is only in the cells' morphology (nucleus size, chromatin,
nucleoli) and the heat should follow it.

Then the time of Grad-CAM per 1,000 cells at 350x350 on the CPU (default
Basic Network widths, OD preprocessing, batch 32), measured on 64 cells and
scaled, next to the plain forward pass (prediction) of the same cells. The
network trained at ``--size`` is fully convolutional, so it runs at 350x350
as is; only the time is measured there.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from sklearn.model_selection import GroupShuffleSplit

from sklearn_leuko import LeukoNetClassifier
from sklearn_leuko.datasets import make_cells
from sklearn_leuko.nn import grad_cam


def region_means(heat, cell_mask, nucleus_mask):
    """Mean heat per cell in the cell, background, nucleus and cytoplasm."""
    grown = np.stack([ndimage.binary_dilation(m, iterations=2) for m in cell_mask])
    regions = {
        "cell": cell_mask,
        "background": ~grown,
        "nucleus": nucleus_mask,
        "cytoplasm": cell_mask & ~nucleus_mask,
    }
    out = {}
    for name, mask in regions.items():
        area = mask.sum(axis=(1, 2))
        keep = area > 0
        out[name] = ((heat * mask).sum(axis=(1, 2))[keep] / area[keep]).mean()
    return out


def one_seed(seed, augment, args):
    data = make_cells(
        n_subjects=args.subjects,
        cells_per_subject=args.cells,
        image_size=args.size,
        subject_variability=args.subject_variability,
        return_masks=True,
        random_state=seed,
    )
    train, test = next(
        GroupShuffleSplit(1, test_size=1 / 3, random_state=seed).split(
            data.images, data.target, data.groups
        )
    )
    clf = LeukoNetClassifier(
        preprocessing="od",
        augment=augment,
        max_epochs=args.epochs,
        validation_fraction=None,
        verbose=0,
        random_state=seed,
    )
    # The same initial weights; one epoch at a negligible learning rate only
    # sets the batch-norm running statistics.
    untrained = clf.set_params(max_epochs=1, lr=1e-12).fit(
        data.images[train[:64]], data.target[train[:64]]
    )
    target = list(untrained.classes_).index("all")
    X_test = data.images[test]
    masks = data.cell_mask[test], data.nucleus_mask[test]
    baseline = region_means(
        grad_cam(untrained.net_.module_, X_test, target).numpy(), *masks
    )

    start = time.perf_counter()
    clf.set_params(max_epochs=args.epochs, lr=1e-3).fit(
        data.images[train], data.target[train], groups=data.groups[train]
    )
    fit_s = time.perf_counter() - start
    heat = grad_cam(clf.net_.module_, X_test, target).numpy()
    trained = region_means(heat, *masks)
    accuracy = float(np.mean(clf.predict(X_test) == data.target[test]))
    train_accuracy = float(
        np.mean(clf.predict(data.images[train]) == data.target[train])
    )
    return {
        "seed": seed,
        "augment": augment,
        "train_accuracy": train_accuracy,
        "fit_s": fit_s,
        "test_accuracy": accuracy,
        "n_test_cells": len(test),
        "trained": {k: float(v) for k, v in trained.items()},
        "untrained": {k: float(v) for k, v in baseline.items()},
    }, (clf, X_test, heat, data.target[test])


def time_350(clf, n=64, batch_size=32, repeats=3):
    images = make_cells(
        n_subjects=4, cells_per_subject=n // 4, image_size=350, random_state=0
    ).images
    module = clf.net_.module_.cpu()
    grad_cam(module, images[:4], 0)  # warm-up
    cam_s, predict_s = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        grad_cam(module, images, 0, batch_size=batch_size)
        cam_s.append(time.perf_counter() - start)
        # The classifier refuses another image size than it was fitted on;
        # its forward pass is the module's, in eval mode without gradients.
        start = time.perf_counter()
        module.eval()
        with torch.no_grad():
            for i in range(0, n, batch_size):
                module(torch.from_numpy(images[i : i + batch_size]))
        predict_s.append(time.perf_counter() - start)
    return {
        "n_cells": n,
        "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(),
        "gradcam_s_per_1000": 1000 * min(cam_s) / n,
        "forward_s_per_1000": 1000 * min(predict_s) / n,
    }


def print_timing(timing):
    print(
        f"Grad-CAM at 350x350 on CPU: {timing['gradcam_s_per_1000']:.1f} s per 1,000 "
        f"cells (forward only {timing['forward_s_per_1000']:.1f} s), "
        f"{timing['torch_threads']} threads, batch {timing['batch_size']}"
    )


def report_run(run):
    t, u = run["trained"], run["untrained"]
    print(
        f"augment={run['augment']!r} seed {run['seed']}: acc "
        f"{run['test_accuracy']:.3f}  cell {t['cell']:.3f} bg {t['background']:.3f}"
        f"  nucleus {t['nucleus']:.3f} cyto {t['cytoplasm']:.3f}  | untrained: "
        f"cell {u['cell']:.3f} bg {u['background']:.3f} nucleus {u['nucleus']:.3f} "
        f"cyto {u['cytoplasm']:.3f}  ({run['fit_s']:.0f} s fit)",
        flush=True,
    )


def summary(runs, which, key):
    values = np.array([r[which][key] for r in runs])
    return values.mean(), values.std()


def print_summary(runs, augment):
    runs = [r for r in runs if r["augment"] == augment]
    print(f"augment={augment!r}, {len(runs)} seeds, mean +- std over seeds:")
    for which in ("trained", "untrained"):
        parts = []
        for key in ("cell", "background", "nucleus", "cytoplasm"):
            m, s = summary(runs, which, key)
            parts.append(f"{key} {m:.3f} +- {s:.3f}")
        print(f"  {which:<9} " + ", ".join(parts))
    for which in ("trained", "untrained"):
        ratio_bg = np.array([r[which]["cell"] / r[which]["background"] for r in runs])
        ratio_n = np.array([r[which]["nucleus"] / r[which]["cytoplasm"] for r in runs])
        print(
            f"  {which:<9} cell/background {ratio_bg.mean():.2f} +- {ratio_bg.std():.2f}"
            f", nucleus/cytoplasm {ratio_n.mean():.2f} +- {ratio_n.std():.2f}"
        )
    acc = np.array([r["test_accuracy"] for r in runs])
    train = np.array([r["train_accuracy"] for r in runs])
    print(
        f"  held-out-subject cell accuracy {acc.mean():.3f} +- {acc.std():.3f} "
        f"(training cells {train.mean():.3f})"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--augment", nargs="+", default=["off", "all"], choices=["off", "all"]
    )
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--subjects", type=int, default=24)
    parser.add_argument("--cells", type=int, default=24, help="cells per subject")
    parser.add_argument(
        "--subject-variability",
        type=float,
        default=1.0,
        help="make_cells(subject_variability=); 0 leaves no subject shortcut",
    )
    parser.add_argument("--png", default=None, help="write an overlay grid here")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument(
        "--timing-only",
        action="store_true",
        help="only time Grad-CAM at 350x350 (untrained default network)",
    )
    parser.add_argument("--out", default="benchmarks/results/gradcam_sanity.json")
    args = parser.parse_args()
    if args.timing_only:
        data = make_cells(
            n_subjects=4, cells_per_subject=4, image_size=64, random_state=0
        )
        clf = LeukoNetClassifier(preprocessing="od", max_epochs=1, verbose=0)
        timing = time_350(clf.fit(data.images, data.target))
        print_timing(timing)
        print(json.dumps(timing))
        return

    runs = []
    for augment in args.augment:
        for seed in args.seeds:
            run, last = one_seed(seed, augment, args)
            runs.append(run)
            report_run(run)
    if args.png:
        from sklearn_leuko.report import plot_gradcam_overlay

        # The last run: the last seed of the last augment mode.
        clf, X_test, heat, y_test = last
        p_all = clf.predict_proba(X_test[:12])[:, list(clf.classes_).index("all")]
        titles = [
            f"{y} P(all)={p:.2f}" for y, p in zip(y_test[:12], p_all, strict=True)
        ]
        plot_gradcam_overlay(X_test[:12], heat[:12], args.png, titles=titles)

    timing = None if args.skip_timing else time_350(last[0])
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        "CPU shared with other jobs",
        "args": vars(args),
        "runs": runs,
        "timing_350": timing,
    }
    print(f"\n{args.size}x{args.size} cells, Grad-CAM of 'all', default layer")
    for augment in args.augment:
        print_summary(runs, augment)
    if timing is not None:
        print_timing(timing)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
