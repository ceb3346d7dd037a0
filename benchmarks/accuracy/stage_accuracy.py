"""Subject-held-out accuracy and per-class F1 of every stage on synthetic cells.

Outer loop: StratifiedGroupKFold over subjects (no subject in both a training
and a test fold). In each fold the single stages ("1", "2", "2C", "vgg11")
are fitted with their subject IDs (so each network's inner validation split
is by subject too); the fusion stages "3" and "3C" fuse the Stage-1 and
Stage-2 / Stage-2C networks of that fold with ``cv="prefit"``. Because the
networks are deterministic on CPU for a fixed ``random_state``, this is the
same model as ``make_stage("3C", ...).fit(X, y, groups=g)`` (the paper's
in-sample protocol; ``tests/test_stages.py`` checks the equality) at half the
cost. Extra rows:

- ``3C (final: std+LR)``: the fusion with ``StandardScaler`` +
  ``LogisticRegression`` instead of the default bare ``LogisticRegression``
  (the comparison that chose the default final estimator);
- ``3C (out-of-fold)`` with ``--oof``: ``make_stage("3C", cv=3)``, the final
  layer trained on out-of-fold features (inner StratifiedGroupKFold(3)).

Synthetic cells are not C-NMC: the numbers check that the pipeline learns and
compare stages under one protocol; they say nothing about the paper's values.

Run::

    python benchmarks/accuracy/stage_accuracy.py            # 5-15 min on 2 busy CPU cores
    python benchmarks/accuracy/stage_accuracy.py --oof      # adds the out-of-fold fusion
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_leuko import FeatureFusionClassifier, make_stage
from sklearn_leuko.datasets import make_cells
from sklearn_leuko.ensemble import default_final_estimator
from sklearn_leuko.metrics import cnmc_metrics
from sklearn_leuko.utils._groups import fit_with_groups

SINGLE = ("1", "2", "2C", "vgg11")
METRICS = ("accuracy", "f1_normal", "f1_cancer", "f1_weighted")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=24)
    parser.add_argument("--cells-per-subject", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--widths", default="8,8,16,16,16,16", help="Basic Network")
    parser.add_argument("--vgg-widths", default="8,8,16,16,16,16,16,16")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--oof", action="store_true", help="add the out-of-fold Stage-3C"
    )
    return parser.parse_args()


def main():
    args = parse_args()
    data = make_cells(
        n_subjects=args.n_subjects,
        cells_per_subject=args.cells_per_subject,
        image_size=args.image_size,
        random_state=args.seed,
    )
    X, y, groups = data.images, data.target, data.groups
    widths = tuple(int(w) for w in args.widths.split(","))
    net_params = dict(
        widths=widths,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
        random_state=args.seed,
        device="cpu",
    )
    vgg_params = {
        **net_params,
        "widths": tuple(int(w) for w in args.vgg_widths.split(",")),
    }
    labels, counts = np.unique(y, return_counts=True)
    print(
        f"make_cells(n_subjects={args.n_subjects}, cells_per_subject="
        f"{args.cells_per_subject}, image_size={args.image_size}, random_state={args.seed}): "
        f"{len(X)} cells, {dict(zip(labels.tolist(), counts.tolist(), strict=True))}; "
        f"StratifiedGroupKFold({args.folds}) on subjects; widths={widths}, "
        f"max_epochs={args.epochs}, batch_size={args.batch_size}"
    )

    outer = StratifiedGroupKFold(n_splits=args.folds)
    scores, seconds = {}, {}

    def record(name, fold_metrics, elapsed):
        scores.setdefault(name, []).append(fold_metrics)
        seconds[name] = seconds.get(name, 0.0) + elapsed

    for fold, (train, test) in enumerate(outer.split(X, y, groups)):
        Xtr, ytr, gtr, Xte, yte = X[train], y[train], groups[train], X[test], y[test]
        fitted, fit_time = {}, {}
        for name in SINGLE:
            start = time.perf_counter()
            stage = make_stage(name, **(vgg_params if name == "vgg11" else net_params))
            fitted[name] = fit_with_groups(stage, Xtr, ytr, gtr)
            fit_time[name] = time.perf_counter() - start
            record(name, cnmc_metrics(yte, stage.predict(Xte)), fit_time[name])
        fusions = {
            "3": (
                [("stage1", fitted["1"]), ("stage2", fitted["2"])],
                default_final_estimator(),
            ),
            "3C": (
                [("stage1", fitted["1"]), ("stage2c", fitted["2C"])],
                default_final_estimator(),
            ),
            "3C (final: std+LR)": (
                [("stage1", fitted["1"]), ("stage2c", fitted["2C"])],
                make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
            ),
        }
        for name, (bases, final) in fusions.items():
            start = time.perf_counter()
            fusion = FeatureFusionClassifier(bases, final, cv="prefit").fit(Xtr, ytr)
            # the networks' training time is part of a fusion stage's cost
            nets = fit_time["1"] + fit_time["2" if name == "3" else "2C"]
            record(
                name,
                cnmc_metrics(yte, fusion.predict(Xte)),
                time.perf_counter() - start + nets,
            )
        if args.oof:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                oof = make_stage("3C", cv=3, **net_params).fit(Xtr, ytr, groups=gtr)
            record(
                "3C (out-of-fold)",
                cnmc_metrics(yte, oof.predict(Xte)),
                time.perf_counter() - start,
            )
        accs = {name: f"{s[-1]['accuracy']:.3f}" for name, s in scores.items()}
        print(f"fold {fold + 1}/{args.folds} accuracy: {accs}", flush=True)

    print()
    header = (
        f"{'stage':<18}" + "".join(f"{m:>17}" for m in METRICS) + f"{'fit s/fold':>12}"
    )
    print(header)
    print("-" * len(header))
    for name, folds in scores.items():
        cells = []
        for metric in METRICS:
            values = np.array([f[metric] for f in folds]) * 100
            cells.append(f"{values.mean():>9.2f} ± {values.std():5.2f}")
        print(
            f"{name:<18}"
            + "".join(f"{c:>17}" for c in cells)
            + f"{seconds[name] / len(folds):>12.1f}"
        )
    print(
        "\nmean ± std over the outer folds, in %; f1_normal = F1 of 'hem', "
        "f1_cancer = F1 of 'all'; fusion times include their networks' training."
    )


if __name__ == "__main__":
    main()
