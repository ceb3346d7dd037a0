"""Test-time augmentation, measured: accuracy, weighted F1 and inference time per view count.

Synthetic ``make_cells`` data, subject-level ``StratifiedGroupKFold`` (the
subject IDs are the groups). Per fold, Stage-1 (``make_stage("1")``) is
trained once with a fixed ``random_state``; the same fitted model then
predicts the held-out subjects with ``tta`` = 1, 2, 4 and 8
(``set_params(tta=n)``, no refit). Reported: accuracy and weighted F1 (mean
+- std over folds, and the paired difference to ``tta=1`` per fold), the share
of test cells whose predicted label changes, and the inference speed (cells/s,
median of ``--repeats`` timed runs, interleaved over the view counts so that
the load of a shared machine hits them alike) with its factor against
``tta=1``.

    nice -n 10 python benchmarks/accuracy/tta_effect.py        # ~10 min on 2 busy cores

Results go to ``benchmarks/results/tta_effect.json`` (``--out``), with the
machine, the load average before and after, the arguments and every fold's
numbers.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedGroupKFold

from sklearn_leuko import __version__, make_stage
from sklearn_leuko.datasets import make_cells

RESULTS = Path(__file__).resolve().parents[1] / "results" / "tta_effect.json"
VIEWS = (1, 2, 4, 8)


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine(device):
    info = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sklearn_leuko": __version__,
        "python": platform.python_version(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _timed_predictions(net, X, repeats):
    """Probabilities per view count and the seconds of each timed run."""
    probas, seconds = {}, {n: [] for n in VIEWS}
    for n in VIEWS:  # warm-up, and the probabilities that are scored
        probas[n] = net.set_params(tta=n).predict_proba(X)
    for _ in range(repeats):
        for n in VIEWS:
            net.set_params(tta=n)
            if net.device_.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            net.predict_proba(X)
            seconds[n].append(time.perf_counter() - start)
    net.set_params(tta=False)
    return probas, seconds


def run_fold(k, train, test, data, args):
    X, y, groups = data.images, data.target, data.groups
    stage = make_stage(
        "1",
        widths=args.widths,
        max_epochs=args.epochs,
        augment=args.augment,
        device=args.device,
        verbose=0,
        random_state=args.seed,
    )
    start = time.perf_counter()
    stage.fit(X[train], y[train], net__groups=groups[train])
    fit_seconds = time.perf_counter() - start
    net = stage[-1]
    probas, seconds = _timed_predictions(net, X[test], args.repeats)
    plain = net.classes_[np.argmax(probas[1], axis=1)]
    views = {}
    for n in VIEWS:
        pred = net.classes_[np.argmax(probas[n], axis=1)]
        median = float(np.median(seconds[n]))
        views[str(n)] = {
            "accuracy": float(accuracy_score(y[test], pred)),
            "f1_weighted": float(f1_score(y[test], pred, average="weighted")),
            "changed_vs_tta1": float(np.mean(pred != plain)),
            "seconds": seconds[n],
            "cells_per_s": len(test) / median,
        }
    fold = {
        "fold": k,
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "test_subjects": sorted(str(s) for s in np.unique(groups[test])),
        "fit_seconds": fit_seconds,
        "best_epoch": net.best_epoch_,
        "views": views,
    }
    print(
        f"fold {k}: {len(train)} train / {len(test)} test cells, fit "
        f"{fit_seconds:.0f} s, best epoch {net.best_epoch_}; accuracy "
        + ", ".join(f"tta={n} {100 * views[str(n)]['accuracy']:.1f}" for n in VIEWS),
        flush=True,
    )
    return fold


def summarise(folds):
    def stats(values):
        values = np.asarray(values, dtype=float)
        return {"mean": float(values.mean()), "std": float(values.std())}

    summary = {}
    base_speed = np.array([f["views"]["1"]["cells_per_s"] for f in folds])
    for n in VIEWS:
        row = {}
        for metric in ("accuracy", "f1_weighted"):
            values = [f["views"][str(n)][metric] for f in folds]
            diffs = [
                f["views"][str(n)][metric] - f["views"]["1"][metric] for f in folds
            ]
            row[metric] = stats(values)
            row[f"{metric}_minus_tta1"] = {**stats(diffs), "per_fold": diffs}
        row["changed_vs_tta1"] = stats(
            [f["views"][str(n)]["changed_vs_tta1"] for f in folds]
        )
        speed = np.array([f["views"][str(n)]["cells_per_s"] for f in folds])
        row["cells_per_s"] = stats(speed)
        row["time_factor_vs_tta1"] = stats(base_speed / speed)
        summary[str(n)] = row
    return summary


def print_table(summary, args, seconds):
    print()
    print(
        f"Stage-1, make_cells {args.subjects} subjects x {args.cells} cells of "
        f"{args.size}x{args.size}, StratifiedGroupKFold({args.folds}) by subject, "
        f"{args.epochs} epochs, widths {args.widths or 'default'}, "
        f"augment={args.augment!r}; mean +- std over folds "
        f"({seconds / 60:.1f} min)"
    )
    header = (
        f"{'tta':>3} | {'accuracy %':>13} | {'d vs tta=1':>13} | "
        f"{'weighted F1 %':>13} | {'d vs tta=1':>13} | {'changed %':>9} | "
        f"{'cells/s':>13} | {'time x':>5}"
    )
    print(header)
    print("-" * len(header))
    for n in VIEWS:
        row = summary[str(n)]

        def pct(stat):
            return f"{100 * stat['mean']:5.1f} +- {100 * stat['std']:4.1f}"

        print(
            f"{n:>3} | {pct(row['accuracy']):>13} | "
            f"{pct(row['accuracy_minus_tta1']):>13} | {pct(row['f1_weighted']):>13} | "
            f"{pct(row['f1_weighted_minus_tta1']):>13} | "
            f"{100 * row['changed_vs_tta1']['mean']:9.1f} | "
            f"{row['cells_per_s']['mean']:6.0f} +- {row['cells_per_s']['std']:4.0f} | "
            f"{row['time_factor_vs_tta1']['mean']:5.2f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=48)
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument(
        "--size", type=int, default=96, help=">= 65: a last feature map of 2x2 or more"
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument(
        "--widths",
        type=lambda s: tuple(int(w) for w in s.split(",")),
        default=None,
        help="six comma-separated channel widths (default: the Basic Network's)",
    )
    parser.add_argument("--augment", default="off")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    load_start = os.getloadavg()
    start = time.perf_counter()
    data = make_cells(
        n_subjects=args.subjects,
        cells_per_subject=args.cells,
        image_size=args.size,
        random_state=args.seed,
    )
    cv = StratifiedGroupKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    folds = [
        run_fold(k, train, test, data, args)
        for k, (train, test) in enumerate(
            cv.split(data.images, data.target, data.groups)
        )
    ]
    seconds = time.perf_counter() - start
    summary = summarise(folds)
    print_table(summary, args, seconds)
    results = {
        "machine": _machine(args.device),
        "load_average_1_5_15_min": {
            "start": list(load_start),
            "end": list(os.getloadavg()),
        },
        "args": {**vars(args), "out": str(args.out)},
        "seconds": seconds,
        "summary": summary,
        "folds": folds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
