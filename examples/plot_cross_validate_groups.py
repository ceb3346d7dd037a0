"""
Subject-level cross-validation with ``cross_validate``
======================================================

The cells of one subject share stain, brightness, blur and size: a network
can recognise the *subject* instead of the disease. If cells of a subject land
in both the training and the validation fold, the score measures that
recognition. The paper therefore splits by subject, and so must you: pass the
subject IDs as ``groups``.

This example scores the same Stage-1 network twice, once with cell-level folds
(``StratifiedKFold``, the mistake) and once with subject-level folds
(``StratifiedGroupKFold``), and shows the gap.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import (
    StratifiedGroupKFold,
    StratifiedKFold,
    cross_validate,
)

from sklearn_leuko import make_stage
from sklearn_leuko.datasets import make_cells
from sklearn_leuko.metrics import CNMC_SCORING

# Strong subject effects make the pitfall visible on few cells.
data = make_cells(
    n_subjects=16,
    cells_per_subject=20,
    image_size=72,
    subject_variability=2.0,
    random_state=0,
)
X, y, subjects = data.images, data.target, data.groups
stage1 = make_stage(
    "1", max_epochs=15, widths=(8, 16, 16, 32, 32, 32), verbose=0, random_state=0
)

# %%
# Subject IDs reach two places
# ----------------------------
# ``groups=`` drives the outer split. ``params={"net__groups": ...}`` sends them
# to the network too: it picks its best epoch on subjects held out from its own
# training folds. (With ``sklearn.set_config(enable_metadata_routing=True)``,
# ``params={"groups": subjects}`` reaches both.)
by_subject = cross_validate(
    stage1,
    X,
    y,
    groups=subjects,
    cv=StratifiedGroupKFold(3),
    scoring=CNMC_SCORING,
    params={"net__groups": subjects},
)
by_cell = cross_validate(
    stage1,
    X,
    y,
    cv=StratifiedKFold(3, shuffle=True, random_state=0),
    scoring=CNMC_SCORING,
    params={"net__groups": subjects},
)
for name, scores in [
    ("cell-level folds", by_cell),
    ("subject-level folds", by_subject),
]:
    acc = scores["test_accuracy"]
    print(f"{name:<20} accuracy {acc.mean():.3f} +- {acc.std():.3f}")

# %%
# Are any subjects on both sides?
# -------------------------------
splits = {
    "StratifiedKFold": StratifiedKFold(3, shuffle=True, random_state=0).split(X, y),
    "StratifiedGroupKFold": StratifiedGroupKFold(3).split(X, y, subjects),
}
for name, folds in splits.items():
    shared = [len(set(subjects[tr]) & set(subjects[va])) for tr, va in folds]
    print(f"{name:<22} subjects in both training and validation, per fold: {shared}")

# %%
# The scores side by side
# -----------------------
# On this synthetic data the cell-level estimate is the optimistic one; on real
# C-NMC cells the paper reports the same pitfall. Only the subject-level
# figure says how the model does on a new patient.
fig, ax = plt.subplots(figsize=(5, 3))
metrics = ["accuracy", "f1_normal", "f1_cancer", "f1_weighted"]
width = 0.38
for k, (name, scores) in enumerate([("cells", by_cell), ("subjects", by_subject)]):
    means = [scores[f"test_{m}"].mean() for m in metrics]
    ax.bar(np.arange(4) + (k - 0.5) * width, means, width, label=f"folds by {name}")
ax.set_xticks(range(4), metrics)
ax.set_ylim(0, 1)
ax.set_ylabel("validation score")
ax.legend()
