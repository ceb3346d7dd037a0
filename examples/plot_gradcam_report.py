"""
Grad-CAM explanations and the HTML report
=========================================

``LeukoNetClassifier.explain`` computes Grad-CAM heatmaps on the last
convolutional block, upsampled to the input and batched on the network's
device; ``views=8`` averages them over the exact flips and rotations of each
cell. ``report.to_html`` writes one self-contained file (settings, Table 2,
curves, and a gallery of misclassified cells with their Grad-CAM).
"""

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from sklearn_leuko import make_stage
from sklearn_leuko.datasets import make_cells

data = make_cells(n_subjects=16, cells_per_subject=20, image_size=72, random_state=0)
X, y, subjects = data.images, data.target, data.groups
train, test = next(StratifiedGroupKFold(4).split(X, y, subjects))
stage1 = make_stage(
    "1",
    max_epochs=10,
    augment="all",
    widths=(8, 16, 16, 32, 32, 32),
    verbose=0,
    random_state=0,
).fit(X[train], y[train], net__groups=subjects[train])
net = stage1[-1]

# %%
# Heatmaps for the class "all" on eight test cells
# ------------------------------------------------
# One float32 map in [0, 1] per cell, the size of the input.
cells = X[test][:8]
heat = net.explain(cells, target="all", views=8)
p_all = net.predict_proba(cells)[:, list(net.classes_).index("all")]
print(heat.shape, heat.dtype, float(heat.min()), float(heat.max()))

fig, axes = plt.subplots(2, 8, figsize=(10, 2.8), layout="constrained")
for k in range(8):
    axes[0, k].imshow(cells[k])
    axes[0, k].set_title(f"{y[test][k]}, P={p_all[k]:.2f}", fontsize=8)
    axes[1, k].imshow(cells[k])
    axes[1, k].imshow(heat[k], cmap="jet", alpha=0.45, vmin=0, vmax=1)
for ax in axes.flat:
    ax.set_axis_off()

# %%
# Is the heat on the cell?
# ------------------------
# A rough sanity check (``benchmarks/accuracy/gradcam_sanity.py`` does it over seeds):
# mean heat on the cell against the black background.
inside = cells.max(axis=-1) > 0
ratio = [
    h[m].mean() / max(h[~m].mean(), 1e-6) for h, m in zip(heat, inside, strict=True)
]
print(f"heat cell / background: {np.mean(ratio):.2f} (1 means no preference)")

# %%
# The HTML report
# ---------------
# From a protocol run (``python -m sklearn_leuko cv --html`` does the same).
from sklearn_leuko.evaluation import run_protocol
from sklearn_leuko.report import to_html

result = run_protocol(
    X,
    y,
    subjects,
    stages=["1"],
    n_splits=2,
    test_subjects=2,
    net_params={"max_epochs": 2, "widths": (8, 8, 8, 16, 16, 16), "verbose": 0},
    random_state=0,
    progress=False,
)
with tempfile.TemporaryDirectory() as folder:
    path = to_html(result, Path(folder) / "report.html", X, n_gallery=6)
    html = path.read_text()
    print(
        f"{path.name}: {len(html) / 1e6:.2f} MB, <script> tags: {html.count('<script')}"
    )
