"""Real C-NMC cells against ``make_cells``: realism table, real-vs-synthetic AUC, transfer.

    python benchmarks/data/real_cells.py --data ../shared/data/real/cnmc2019
    python benchmarks/data/real_cells.py --data ../shared/data/real/cnmc2019 --quick

1. Statistics of :func:`sklearn_leuko.datasets._realism.cell_statistics` per
   class on the raw 450 px real cells (calibration subjects, the ones
   ``make_cells`` was fitted to, and all) and on ``make_cells(image_size=450)``,
   side by side with the relative gap (target: within 20%).
2. The ROC AUC of a cross-validated logistic regression telling real from
   synthetic cells on those statistics (target <= 0.80).
3. Transfer: a Stage-1 network trained on ``make_cells`` at ``--size`` px,
   applied to the real cells resized from 450 px to ``--size`` (whole cell,
   the scale contract of ``make_cells``); ROC AUC on the evaluation subjects
   with a bootstrap CI over subjects, and on all real cells (target >= 0.70).
4. The stain front: OD energy outside the stain plane of the Giemsa basis and
   of the named ``"cnmc"`` matrix, and what the 95%-energy log-DCT keeps.

Results go to ``benchmarks/results/real_cells.json`` (``--out``). The real
images are only read, never copied.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_leuko.datasets import make_cells
from sklearn_leuko.datasets._realism import CELL_STATISTICS, cell_statistics

# the table, then the shape and texture statistics (their order)
TABLE = CELL_STATISTICS


def load_real(folder):
    """Raw real images, labels, subjects and split (no project loader used)."""
    folder = Path(folder)
    labels = pd.read_csv(folder / "labels.csv", dtype=str)
    split = pd.read_csv(folder / "subjects.csv", dtype=str)[["subject", "split"]]
    labels = labels.merge(split, on="subject", how="left", validate="many_to_one")
    images = np.stack(
        [np.asarray(Image.open(folder / p).convert("RGB")) for p in labels.path]
    )
    return images, labels


def resize(images, size):
    """Area-average resize of square uint8 images (the scale contract)."""
    if images.shape[1] == size:
        return images
    return np.stack(
        [
            np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BOX))
            for im in images
        ]
    )


def realism_table(real_stats, real_labels, real_split, syn_stats, syn_labels):
    rows = []
    for name in TABLE:
        j = CELL_STATISTICS.index(name)
        row = {"statistic": name}
        for cls in ("all", "hem"):
            cal = real_stats[(real_labels == cls) & (real_split == "calibration"), j]
            every = real_stats[real_labels == cls, j]
            syn = syn_stats[syn_labels == cls, j]
            row[f"real_cal_{cls}"] = float(cal.mean())
            row[f"real_cal_{cls}_sd"] = float(cal.std())
            row[f"real_{cls}"] = float(every.mean())
            row[f"synthetic_{cls}"] = float(syn.mean())
            row[f"synthetic_{cls}_sd"] = float(syn.std())
            ref = abs(cal.mean()) if abs(cal.mean()) > 1e-3 else np.nan
            row[f"gap_{cls}"] = float(abs(syn.mean() - cal.mean()) / ref)
        cal = real_split == "calibration"
        row["auc_real_cal"] = float(
            roc_auc_score(real_labels[cal] == "all", real_stats[cal, j])
        )
        row["auc_real"] = float(roc_auc_score(real_labels == "all", real_stats[:, j]))
        row["auc_synthetic"] = float(roc_auc_score(syn_labels == "all", syn_stats[:, j]))
        rows.append(row)
    return pd.DataFrame(rows)


def real_vs_synthetic_auc(real_stats, syn_stats, random_state=0):
    X = np.vstack([real_stats, syn_stats])
    y = np.r_[np.ones(len(real_stats)), np.zeros(len(syn_stats))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    cv = StratifiedKFold(5, shuffle=True, random_state=random_state)
    proba = cross_val_predict(clf, X, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))


def bootstrap_subject_auc(y, score, groups, n_boot=2000, random_state=0):
    """ROC AUC with a percentile CI from resampling subjects within each class."""
    rng = np.random.default_rng(random_state)
    subjects = {
        cls: np.unique(groups[y == cls]) for cls in (True, False)
    }
    index = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    values = []
    for _ in range(n_boot):
        take = np.concatenate(
            [
                index[g]
                for cls in (True, False)
                for g in rng.choice(subjects[cls], len(subjects[cls]))
            ]
        )
        values.append(roc_auc_score(y[take], score[take]))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(roc_auc_score(y, score)), float(low), float(high)


def transfer(real_images, labels, args):
    from sklearn_leuko import make_stage

    data = make_cells(
        n_subjects=args.subjects,
        cells_per_subject=args.cells,
        image_size=args.size,
        random_state=args.seed,
    )
    net = make_stage(
        "1",
        max_epochs=args.epochs,
        verbose=0,
        random_state=args.seed,
        stain_matrix=args.stain_matrix,
    )
    start = time.perf_counter()
    net.fit(data.images, data.target, net__groups=data.groups)
    fit_s = time.perf_counter() - start
    X = resize(real_images, args.size)
    classes = list(net.classes_)
    proba = net.predict_proba(X)[:, classes.index("all")]
    y = (labels.label == "all").to_numpy()
    groups = labels.subject.to_numpy()
    ev = (labels.split == "evaluation").to_numpy()
    auc, low, high = bootstrap_subject_auc(y[ev], proba[ev], groups[ev])
    auc_all, low_all, high_all = bootstrap_subject_auc(y, proba, groups)
    return {
        "train": f"make_cells({args.subjects} x {args.cells}, {args.size} px)",
        "epochs": args.epochs,
        "stain_matrix": args.stain_matrix,
        "fit_seconds": fit_s,
        "evaluation_auc": auc,
        "evaluation_ci95": [low, high],
        "evaluation_cells": int(ev.sum()),
        "evaluation_subjects": int(len(np.unique(groups[ev]))),
        "all_real_auc": auc_all,
        "all_real_ci95": [low_all, high_all],
        "mean_p_all_real_all": float(proba[y].mean()),
        "mean_p_all_real_hem": float(proba[~y].mean()),
    }


def stain_front(real_images, labels):
    import torch
    from scipy import ndimage

    from sklearn_leuko.preprocessing import STAIN_MATRICES, LogDCT

    cal = (labels.split == "calibration").to_numpy()
    out = {}
    for part, where in (("calibration", cal), ("evaluation", ~cal)):
        pixels = np.concatenate(
            [
                im[ndimage.binary_erosion(im.max(-1) > 0, iterations=3)]
                for im in real_images[where]
            ]
        ).astype(float)
        od = -np.log(np.maximum(pixels, 1.0) / 255.0)
        for name in ("giemsa", "cnmc"):
            matrix = np.asarray(STAIN_MATRICES[name], dtype=float)
            conc = od @ np.linalg.inv(matrix)
            third = conc[:, 2:3] * matrix[2:3]
            share = float((third**2).sum() / (od**2).sum())
            out[f"{name}_residual_{part}"] = share
    # 95%-energy log-DCT on the real cells, 350 px centre crop (the paper's)
    from sklearn_leuko.preprocessing import StainDeconvolution

    crop = real_images[cal][:, 50:400, 50:400]
    for name in ("giemsa", "cnmc"):
        conc = StainDeconvolution(name).fit_transform(crop)
        dct = LogDCT().fit_transform(conc)
        kept = (dct != 0).sum(axis=(2, 3)).mean(axis=0)
        out[f"dct_kept_per_channel_{name}"] = kept.tolist()
    out["dct_coefficients_per_channel"] = 350 * 350
    del torch
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the cnmc2019 folder")
    parser.add_argument("--synthetic-subjects", type=int, default=24)
    parser.add_argument("--synthetic-cells", type=int, default=5)
    parser.add_argument("--subjects", type=int, default=24, help="training subjects")
    parser.add_argument("--cells", type=int, default=40, help="cells per subject")
    parser.add_argument("--size", type=int, default=128, help="training image size")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--stain-matrix", default="giemsa")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-transfer", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small and fast run")
    parser.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parents[1] / "results" / "real_cells.json"),
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.synthetic_subjects, args.synthetic_cells = 12, 4
        args.subjects, args.cells, args.size, args.epochs = 12, 20, 64, 3

    real_images, labels = load_real(args.data)
    real_stats = cell_statistics(real_images)
    syn = make_cells(
        n_subjects=args.synthetic_subjects,
        cells_per_subject=args.synthetic_cells,
        image_size=450,
        random_state=args.seed + 1,
    )
    syn_stats = cell_statistics(syn.images)
    table = realism_table(
        real_stats,
        labels.label.to_numpy(),
        labels.split.to_numpy(),
        syn_stats,
        syn.target,
    )
    cal = (labels.split == "calibration").to_numpy()
    rvs_cal = real_vs_synthetic_auc(real_stats[cal], syn_stats, args.seed)
    rvs_all = real_vs_synthetic_auc(real_stats, syn_stats, args.seed)

    pd.set_option("display.width", 200)
    show = table[
        [
            "statistic",
            "real_cal_all",
            "real_cal_hem",
            "synthetic_all",
            "synthetic_hem",
            "gap_all",
            "gap_hem",
            "auc_real_cal",
            "auc_real",
            "auc_synthetic",
        ]
    ]
    print(
        f"real: {len(real_images)} cells ({cal.sum()} calibration), synthetic: "
        f"{len(syn.images)} cells of make_cells(image_size=450)"
    )
    print(show.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(
        f"real-vs-synthetic AUC (logistic regression, 5-fold): calibration "
        f"{rvs_cal:.3f}, all real {rvs_all:.3f}"
    )
    result = {
        "table": table.to_dict(orient="records"),
        "real_vs_synthetic_auc_calibration": rvs_cal,
        "real_vs_synthetic_auc_all": rvs_all,
        "max_gap": float(np.nanmax(table[["gap_all", "gap_hem"]].to_numpy())),
    }
    result["stain"] = stain_front(real_images, labels)
    print("stain front:", json.dumps(result["stain"]))
    if not args.no_transfer:
        result["transfer"] = transfer(real_images, labels, args)
        t = result["transfer"]
        print(
            f"transfer ({t['train']}, {t['epochs']} epochs, {t['fit_seconds']:.0f} s): "
            f"evaluation AUC {t['evaluation_auc']:.3f} "
            f"[{t['evaluation_ci95'][0]:.3f}, {t['evaluation_ci95'][1]:.3f}] "
            f"({t['evaluation_subjects']} subjects, {t['evaluation_cells']} cells); "
            f"all real {t['all_real_auc']:.3f} "
            f"[{t['all_real_ci95'][0]:.3f}, {t['all_real_ci95'][1]:.3f}]"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
