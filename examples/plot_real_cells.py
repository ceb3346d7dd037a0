"""
Real C-NMC cells next to the synthetic ones
===========================================

The synthetic generator ``make_cells`` stands in for C-NMC so that everything
runs without the data. How close is it, and does a model trained on it say
anything about real cells? This example reads the small set of real C-NMC 2019
cells that the project keeps *outside* the repository
(``../shared/data/real/cnmc2019``, CC BY 3.0; see ``CONTRIBUTING.md``), compares
simple statistics per class, and scores a synthetic-trained Stage-1 network on
the real *evaluation* subjects. Where the folder is absent (a fresh clone), it
says so and stops early: the documentation builds either way.

No real pixel is shown here: the figure holds statistics only.
``benchmarks/data/real_cells.py`` is the full measurement.
"""

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sklearn_leuko.datasets import make_cells, read_images

try:  # the examples folder of a checkout (sphinx-gallery sets __file__)
    ROOT = Path(__file__).resolve().parents[1]
except NameError:
    ROOT = Path.cwd()
REAL = ROOT.parent / "shared" / "data" / "real" / "cnmc2019"
have_real = (REAL / "labels.csv").is_file()
print("real C-NMC cells:", REAL if have_real else "not found, synthetic only")


def cell_statistics(images):
    """Share of the canvas the cell covers and its mean optical density."""
    mask = images.max(axis=-1) > 10
    od = -np.log10(np.maximum(images, 1) / 255.0).sum(axis=-1)
    area = mask.mean(axis=(1, 2))
    mean_od = np.array(
        [o[m].mean() if m.any() else 0.0 for o, m in zip(od, mask, strict=True)]
    )
    return area, mean_od


# %%
# Statistics per class
# --------------------
# ``make_cells(image_size=450)`` is drawn at the C-NMC canvas size.
synthetic = make_cells(
    n_subjects=8, cells_per_subject=6, image_size=450, random_state=0
)
rows = []
for label in ["all", "hem"]:
    area, od = cell_statistics(synthetic.images[synthetic.target == label])
    rows.append(("synthetic", label, area.mean(), od.mean(), len(area)))
if have_real:
    labels = pd.read_csv(REAL / "labels.csv")
    real = read_images([REAL / p for p in labels["path"]])
    for label in ["all", "hem"]:
        area, od = cell_statistics(real[labels["label"].to_numpy() == label])
        rows.append(("real C-NMC", label, area.mean(), od.mean(), len(area)))
stats = pd.DataFrame(
    rows,
    columns=[
        "source",
        "class",
        "cell area / canvas",
        "mean OD (sum of R, G, B)",
        "cells",
    ],
)
stats

# %%
fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), layout="constrained")
for ax, column in zip(
    axes, ["cell area / canvas", "mean OD (sum of R, G, B)"], strict=True
):
    table = stats.pivot(index="class", columns="source", values=column)
    table.plot.bar(ax=ax, rot=0, legend=ax is axes[0])
    ax.set_title(column, fontsize=9)

# %%
# Transfer: trained on synthetic cells, tested on real subjects
# -------------------------------------------------------------
# A tiny Stage-1 network trained on 72 px synthetic cells; the real 450 px
# cells are resized whole to 72 px (the scale contract: a synthetic 72 px image
# is a whole C-NMC image scaled down). Scored on the *evaluation* subjects only,
# as ROC AUC of the cells: few cells, so read it with its subject count.
if have_real:
    from skimage.transform import resize
    from sklearn.metrics import roc_auc_score

    from sklearn_leuko import make_stage

    train = make_cells(
        n_subjects=16, cells_per_subject=20, image_size=72, random_state=1
    )
    stage1 = make_stage(
        "1",
        max_epochs=8,
        augment="all",
        widths=(8, 16, 16, 32, 32, 32),
        verbose=0,
        random_state=0,
    )
    stage1.fit(train.images, train.target, net__groups=train.groups)

    splits = pd.read_csv(REAL / "subjects.csv", dtype={"subject": str})
    evaluation = set(splits.loc[splits["split"] == "evaluation", "subject"])
    rows = labels["subject"].astype(str).isin(evaluation).to_numpy()
    small = np.stack(
        [
            (resize(image, (72, 72), anti_aliasing=True) * 255).round().astype(np.uint8)
            for image in real[rows]
        ]
    )
    net = stage1[-1]
    p_all = stage1.predict_proba(small)[:, list(net.classes_).index("all")]
    auc = roc_auc_score(labels["label"].to_numpy()[rows] == "all", p_all)
    print(
        f"ROC AUC on {rows.sum()} real cells of {len(evaluation)} evaluation "
        f"subjects: {auc:.2f} (0.5 = chance)"
    )
