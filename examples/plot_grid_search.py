"""
Tuning with ``GridSearchCV``: activation x augmentation
=======================================================

The paper compares ReLU, PReLU and P-TELU, with and without augmentation
(Table 1). Every setting of a stage is a scikit-learn parameter, so the same
comparison is one ``GridSearchCV`` over subject-level folds. With metadata
routing on, ``groups`` reaches both the outer split and each network's inner
validation split.
"""

# %%
import matplotlib.pyplot as plt
import pandas as pd
import sklearn
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

from sklearn_leuko import make_stage
from sklearn_leuko.datasets import make_cells
from sklearn_leuko.metrics import CNMC_SCORING

sklearn.set_config(enable_metadata_routing=True)

data = make_cells(n_subjects=12, cells_per_subject=12, image_size=72, random_state=0)
X, y, subjects = data.images, data.target, data.groups

grid = GridSearchCV(
    make_stage(
        "1", max_epochs=3, widths=(8, 8, 8, 16, 16, 16), verbose=0, random_state=0
    ),
    {"net__activation": ["relu", "prelu", "ptelu"], "net__augment": ["off", "all"]},
    cv=StratifiedGroupKFold(3),
    scoring=CNMC_SCORING,
    refit="f1_weighted",
)
grid.fit(X, y, groups=subjects)
print("best:", grid.best_params_, f"weighted F1 {grid.best_score_:.3f}")

# %%
# Every candidate's mean validation scores
results = pd.DataFrame(grid.cv_results_)
table = results.pivot(
    index="param_net__activation",
    columns="param_net__augment",
    values="mean_test_f1_weighted",
)
table

# %%
fig, ax = plt.subplots(figsize=(4, 3))
image = ax.imshow(table.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=1)
ax.set_xticks(range(table.shape[1]), [f"augment={c}" for c in table.columns])
ax.set_yticks(range(table.shape[0]), table.index)
for (i, j), value in pd.DataFrame(table.to_numpy()).stack().items():
    ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="w")
fig.colorbar(image, label="mean weighted F1")
ax.set_title("3 subject-level folds, 3 epochs")

# %%
# Routing stays on for the rest of a session; switch it off again here.
sklearn.set_config(enable_metadata_routing=False)
