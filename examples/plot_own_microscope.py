"""
Your own microscope: segment, normalise, predict, check the domain
==================================================================

A model trained on C-NMC-like cells expects one white cell, segmented onto
black and stained one purple. A laboratory's images are usually crops of a
smear: the white cell among red cells on a light background, in its own
stain. This example is the recipe for such images:

1. :func:`~sklearn_leuko.datasets.load_images` reads them, with
   :class:`~sklearn_leuko.preprocessing.CellSegmenter` cutting each white cell
   onto a black, centred canvas as it is read (``segment=``);
2. :class:`~sklearn_leuko.preprocessing.StainNormalizer`, fitted to C-NMC-like
   reference cells, maps their colours to that look;
3. a fitted stage predicts, and :func:`~sklearn_leuko.in_domain` says which
   inputs look like its training cells.

The crops are the 135 BCCD smear crops that the project keeps *outside* the
repository (``../shared/data/real/bccd``; MIT licence, Copyright (c) 2017
shenggan, BCCD_Dataset). Where that folder is absent (a fresh clone), the
example makes smear-like crops from synthetic cells instead (their black
background painted the light grey of a smear), so the documentation builds
either way. The reference cells are synthetic C-NMC-like cells; with the real
C-NMC cells, fit the normaliser to them (``benchmarks/data/own_microscope.py``
measures both).
"""

# %%
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sklearn_leuko import in_domain, make_stage
from sklearn_leuko.datasets import load_images, make_cells, record_geometry
from sklearn_leuko.preprocessing import CellSegmenter, StainNormalizer

try:  # the examples folder of a checkout (sphinx-gallery sets __file__)
    ROOT = Path(__file__).resolve().parents[1]
except NameError:
    ROOT = Path.cwd()
BCCD = ROOT.parent / "shared" / "data" / "real" / "bccd"
have_bccd = (BCCD / "labels.csv").is_file()
print("lab images:", BCCD if have_bccd else "BCCD not found, smear-like synthetic")

# %%
# A model trained on C-NMC-like cells
# -----------------------------------
# A small Stage-1 network on the synthetic default, 96 px. Recording the
# training geometry lets ``predict`` bring 450 px cells to the network's input.
# It is tiny (3 epochs on 120 cells) so that the example runs in seconds: its
# predictions are not worth reading, only the recipe is.
train = make_cells(n_subjects=12, cells_per_subject=10, image_size=96, random_state=0)
stage = make_stage("1", max_epochs=3, verbose=0, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tiny data: the inner-split warnings
    stage.fit(train.images, train.target, net__groups=train.groups)
record_geometry(stage, train.geometry)

# %%
# The laboratory's crops, segmented as they are read
# --------------------------------------------------
# ``cell_fraction=0.17`` scales each crop so that its cell covers about the
# share of the 450 px canvas that a C-NMC cell does. ``on_failure="flag"``
# keeps crops where no single white cell was found, marked in
# ``segment_status``; the default raises and names the files.
segmenter = CellSegmenter(image_size=450, cell_fraction=0.17, on_failure="flag")
if have_bccd:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCCD has no subjects; failed crops flagged
        # the crops as they come, scaled to the network's input
        raw = load_images(BCCD / "labels.csv", image_size=96, no_subject="per_image")
        lab = load_images(
            BCCD / "labels.csv", segment=segmenter, no_subject="per_image"
        )
    crops, labels, status = raw.images, lab.target, lab.segment_status
    cells = lab.images
else:
    demo = make_cells(n_subjects=4, cells_per_subject=4, image_size=450, random_state=7)
    crops = demo.images.copy()
    crops[(crops == 0).all(axis=-1)] = (235, 215, 200)  # a smear's background
    labels = demo.target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cells = segmenter.fit_transform(crops)
    status = segmenter.status_
print(pd.Series(status).value_counts().to_string())

# %%
# Their stain mapped to the C-NMC look
# ------------------------------------
# The normaliser learns the target appearance from reference cells; the black
# background is left out of its statistics and stays black.
reference = make_cells(
    n_subjects=4, cells_per_subject=4, image_size=450, random_state=1
)
normaliser = StainNormalizer("macenko", random_state=0).fit(reference.images)
ok = status == "ok"
normalised = normaliser.transform(cells[ok])

# %%
# Predictions, and which inputs are in the model's domain
# -------------------------------------------------------
# The crops as they come are unlike the training cells, and flagged; after
# segmentation and normalisation most are in domain. The model still knows
# only "all" and "hem": a neutrophil in domain is a cell *like* C-NMC cells,
# not a cell it was trained to name.
results = pd.DataFrame(
    {
        "label": np.asarray(labels)[ok],
        "in domain as they come": in_domain(stage, crops)[ok],
        "in domain after the recipe": in_domain(stage, normalised),
        "predicted": stage.predict(normalised),
    }
)
summary = results.groupby("label")[
    ["in domain as they come", "in domain after the recipe"]
].mean()
print(summary.round(2).to_string())
print("predicted:", results["predicted"].value_counts().to_dict())

# %%
# Inputs and outputs of the recipe
# --------------------------------
shown = np.flatnonzero(ok)[:: max(1, ok.sum() // 6)][:6]
fig, axes = plt.subplots(3, len(shown), figsize=(1.6 * len(shown), 5))
rows = [
    ("crop", [crops[i] for i in shown]),
    ("segmented", cells[shown]),
    ("normalised", normalised[np.searchsorted(np.flatnonzero(ok), shown)]),
]
for row, (name, images) in zip(axes, rows, strict=True):
    for ax, image in zip(row, images, strict=True):
        ax.imshow(image)
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(name)
for ax, i in zip(axes[0], shown, strict=True):
    ax.set_title(str(np.asarray(labels)[i]), fontsize=8)
fig.tight_layout()
plt.show()
