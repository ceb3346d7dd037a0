"""Does bfloat16 cost accuracy? Subject-level CV of Stage-1, float32 vs bfloat16.

Cross-validates ``LeukoNetClassifier(preprocessing="od")`` on synthetic
``make_cells`` data with ``StratifiedGroupKFold`` (every subject in one
fold; the inner validation split is by subject too), once with
``mixed_precision=False`` and once with bfloat16 autocast, with the same
folds and seeds, and reports accuracy and weighted F1 as mean +- std over
folds, plus the paired per-fold differences. bfloat16 is "within noise" when
the mean difference is smaller than the fold-to-fold standard deviation.

    python benchmarks/accuracy/bench_precision.py --out benchmarks/results/precision_cpu.json

On a CPU without native bfloat16 the library refuses ``mixed_precision=True``
(emulation is slower than float32); this script then emulates it on purpose
(``--emulate``, the default when needed): slow, but the numbers it rounds
are those of native bfloat16 autocast (bfloat16 inputs and outputs of the
convolutions and linear layers, float32 accumulation), so the accuracy is
representative.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import StratifiedGroupKFold, cross_validate

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sklearn_leuko import LeukoNetClassifier  # noqa: E402
from sklearn_leuko.datasets import make_cells  # noqa: E402
from sklearn_leuko.nn import _precision  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=40)
    parser.add_argument("--cells-per-subject", type=int, default=30)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (accuracy does not depend on it; 1 is robust on a busy machine)",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    native = _precision.cpu_has_native_bf16()
    if not native:
        _precision.cpu_has_native_bf16 = lambda: True  # emulate, on purpose

    data = make_cells(
        n_subjects=args.n_subjects,
        cells_per_subject=args.cells_per_subject,
        image_size=args.size,
        subject_variability=0.5,
        random_state=0,
    )
    X, y, groups = data.images, data.target, data.groups
    scores = {}
    seconds = {}
    for precision, amp in (("fp32", False), ("bf16", True)):
        per_fold = {"accuracy": [], "f1_weighted": []}
        start = time.perf_counter()
        for seed in args.seeds:
            clf = LeukoNetClassifier(
                preprocessing="od",
                max_epochs=args.epochs,
                mixed_precision=amp,
                device="cpu",
                verbose=0,
                random_state=seed,
            )
            cv = StratifiedGroupKFold(
                n_splits=args.folds, shuffle=True, random_state=seed
            )
            result = cross_validate(
                clf,
                X,
                y,
                groups=groups,
                cv=cv,
                scoring=("accuracy", "f1_weighted"),
                params={"groups": groups},
            )
            for key in per_fold:
                per_fold[key].extend(result[f"test_{key}"].tolist())
            print(
                f"  {precision} seed {seed}: accuracy per fold "
                f"{np.round(result['test_accuracy'], 3).tolist()}",
                flush=True,
            )
        seconds[precision] = time.perf_counter() - start
        scores[precision] = per_fold

    summary = {}
    print(
        f"# Stage-1, {args.n_subjects} subjects x {args.cells_per_subject} cells "
        f"{args.size}x{args.size}, {args.epochs} epochs, {args.folds} subject-level "
        f"folds x seeds {args.seeds}; CPU native bf16: {native}"
    )
    for key in ("accuracy", "f1_weighted"):
        fp32 = np.asarray(scores["fp32"][key])
        bf16 = np.asarray(scores["bf16"][key])
        diff = bf16 - fp32
        summary[key] = {
            "fp32_mean": fp32.mean(),
            "fp32_std": fp32.std(ddof=1),
            "bf16_mean": bf16.mean(),
            "bf16_std": bf16.std(ddof=1),
            "paired_diff_mean": diff.mean(),
            "paired_diff_std": diff.std(ddof=1),
            "within_fold_spread": abs(diff.mean()) <= fp32.std(ddof=1),
        }
        s = summary[key]
        print(
            f"{key:<12} fp32 {s['fp32_mean']:.3f} +- {s['fp32_std']:.3f}   "
            f"bf16 {s['bf16_mean']:.3f} +- {s['bf16_std']:.3f}   "
            f"bf16 - fp32 {s['paired_diff_mean']:+.3f} +- {s['paired_diff_std']:.3f}"
        )
    print(f"seconds: {seconds}; load average {os.getloadavg()}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "cpu_native_bf16": native,
                    "bf16_emulated": not native,
                    "torch": torch.__version__,
                    "date": time.strftime("%Y-%m-%d %H:%M"),
                    "per_fold": scores,
                    "summary": summary,
                    "seconds": seconds,
                },
                indent=2,
                default=float,
            )
        )


if __name__ == "__main__":
    main()
