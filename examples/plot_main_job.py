"""
The main job from Python: the paper's protocol and its report
==============================================================

``python -m sklearn_leuko cv`` runs :func:`~sklearn_leuko.evaluation.run_protocol`:
held-out test subjects, subject-level folds over the others, every network
trained once per fold, the fusion stages fusing that fold's networks, and the
test subjects scored by each stage's best-validation fold. Here is the same
from Python, small enough to run in seconds, followed by the Table-2 report and
the ROC curves.
"""

# %%
# Data: whole subjects, never cells, are split
# ---------------------------------------------
# ``make_cells`` draws synthetic C-NMC-like cells; ``groups`` holds each cell's
# subject. Use :func:`~sklearn_leuko.datasets.load_cnmc` for the real tree.
from sklearn_leuko.datasets import make_cells

data = make_cells(n_subjects=20, cells_per_subject=20, image_size=72, random_state=0)
X, y, subjects = data.images, data.target, data.groups
print(X.shape, X.dtype, sorted(set(y)), len(set(subjects)), "subjects")

# %%
# Run the protocol
# ----------------
# Two stages, three folds, two test subjects (one per class), tiny networks
# trained for 8 epochs.
# The command line's defaults are ``stages=["1", "2", "2C", "3", "3C"]``,
# ``n_splits=4``, ``test_subjects=4`` and 10 epochs.
from sklearn_leuko.evaluation import run_protocol

result = run_protocol(
    X,
    y,
    subjects,
    stages=["1", "3C"],
    n_splits=3,
    test_subjects=2,
    net_params={"max_epochs": 8, "widths": (8, 8, 16, 16, 16, 16), "verbose": 0},
    random_state=0,
    progress=False,
)

# %%
# Table 2 and the subject-level report
# ------------------------------------
# The ``Val`` columns are the mean and spread over the validation folds; the
# ``Test`` columns score the held-out subjects with each stage's model of its
# best validation fold. Then come the subject-level results: a subject's
# diagnosis is the mean P(all) of its cells.
from sklearn_leuko.report import format_protocol_report, protocol_tables

print(format_protocol_report(result))

# %%
# The same numbers as DataFrames, and every cell's prediction
tables = protocol_tables(result)
print(tables.table2)
result.predictions["Stage-3C"].head()

# %%
# ROC curves of every stage
# -------------------------
# The report functions write figures to files (as ``cv`` does into
# ``leuko-output/``); here one is written to a temporary folder and shown.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.metrics import roc_curve

fig, ax = plt.subplots(figsize=(4, 4))
for stage, frame in result.predictions.items():
    val = frame[frame["split"] == "val"]
    fpr, tpr, _ = roc_curve(val["y_true"] == "all", val["p_all"])
    ax.plot(fpr, tpr, label=stage)
ax.plot([0, 1], [0, 1], "k:", lw=1)
ax.set(
    xlabel="false positive rate",
    ylabel="true positive rate",
    title="validation folds, cells",
)
ax.legend()

# %%
# ``write_protocol_outputs`` writes what ``cv`` writes: ``table2.md``, the CSV
# tables and the plots.
from sklearn_leuko.report import write_protocol_outputs

with tempfile.TemporaryDirectory() as folder:
    write_protocol_outputs(result, folder, X, y, data.filenames)
    print(sorted(p.name for p in Path(folder).iterdir()))
