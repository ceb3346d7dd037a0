"""
Quick start: the README's example
=================================

The Python example of the README, executed: synthetic cells, a Stage-3C model
cross-validated over subject-level folds, then fitted, saved as a safetensors
file and loaded back. ``tests/test_docs.py`` checks that the README shows
exactly the code between the two marker comments below. It is small so that it
runs in seconds; drop the sizes (``n_subjects``, ``cells_per_subject``,
``max_epochs``) for real work.
"""

# sphinx_gallery_start_ignore
import os
import tempfile

os.chdir(tempfile.mkdtemp())  # the model file goes to a temporary folder
# sphinx_gallery_end_ignore

# fmt: off
# README example: start
from sklearn.model_selection import StratifiedGroupKFold, cross_validate

from sklearn_leuko import load_model, make_stage, save_model
from sklearn_leuko.datasets import make_cells  # or load_images("labels.csv")
from sklearn_leuko.metrics import CNMC_SCORING

data = make_cells(n_subjects=12, cells_per_subject=10, random_state=0)
X, y, subjects = data.images, data.target, data.groups  # uint8 (n, H, W, 3), labels, IDs

stage = make_stage("3C", max_epochs=3, verbose=0, random_state=0)  # or "1", "2C", ...
scores = cross_validate(stage, X, y, groups=subjects, cv=StratifiedGroupKFold(3),
                        scoring=CNMC_SCORING, params={"groups": subjects})
print(scores["test_accuracy"])  # one score per subject-level fold

save_model(stage.fit(X, y, groups=subjects), "stage3c.safetensors")
model = load_model("stage3c.safetensors")  # loads without running code
print(model.predict(X[:5]), model.predict_proba(X[:5])[:, 0])  # labels, P(all)
# README example: end
# fmt: on

# %%
# The fold scores as a figure
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(4, 2.5))
ax.bar([f"fold {k}" for k in range(3)], scores["test_accuracy"])
ax.set_ylim(0, 1)
ax.set_ylabel("accuracy, unseen subjects")
