"""
Building the stages by hand
===========================

What ``make_stage`` puts together. Each stage of the paper is an ordinary scikit-learn composition:

- Stage-1: optical density (stain deconvolution) -> Basic Network;
- Stage-2: optical density -> thresholded log-DCT -> Basic Network;
- Stage-2C: both inputs stacked along channels (``ChannelUnion``) -> Basic Network;
- Stage-3 / Stage-3C: the features of a Stage-1 network and a Stage-2 / 2C
  network side by side, then one fully connected (linear) layer
  (``FeatureFusionClassifier``).

Two equivalent forms are shown.

Transformer form: ``Pipeline([("od", StainDeconvolution()), ("dct", LogDCT()),
("net", LeukoNetClassifier())])``. Every step is visible and swappable, and the
preprocessed arrays can be inspected, but the whole training set is held as
float32 ``(n, C, H, W)`` (4x the uint8 images per channel, 6 channels for
Stage-2C), and augmentation is impossible: it must rotate and blur *images*,
not OD or DCT coefficients, so ``LeukoNetClassifier`` refuses ``augment`` on
preprocessed input.

Device form: ``LeukoNetClassifier(preprocessing="od" | "log_dct" |
"od+log_dct")`` takes the uint8 images; each batch is augmented and then
preprocessed on the training device (same numbers, one implementation of the
math). Use it at C-NMC scale (10,000+ cells of 350x350: about 3.7 GB as uint8,
17 GB as float32 with 3 channels) and whenever augmentation is on. That is the
form ``make_stage`` builds.

Runs in about 10 s on 2 quiet CPU cores (small synthetic cells, tiny networks).
"""

import time

from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline

from sklearn_leuko import FeatureFusionClassifier, LeukoNetClassifier, make_stage
from sklearn_leuko.datasets import make_cells
from sklearn_leuko.preprocessing import ChannelUnion, LogDCT, StainDeconvolution

start = time.perf_counter()
data = make_cells(n_subjects=24, cells_per_subject=16, image_size=72, random_state=0)
# Hold out whole subjects: cells of one subject on both sides inflate accuracy.
train, test = next(
    StratifiedGroupKFold(n_splits=3).split(data.images, data.target, data.groups)
)
X_train, y_train, g_train = data.images[train], data.target[train], data.groups[train]
X_test, y_test = data.images[test], data.target[test]

# Tiny networks so the example is quick; the paper's are far wider and train for hours.
NET = dict(
    widths=(8, 8, 16, 16, 16, 16),
    max_epochs=8,
    batch_size=32,
    verbose=0,
    random_state=0,
)


def net(**params):
    return LeukoNetClassifier(**NET, **params)


SCORES = {}


def report(name, estimator):
    SCORES[name.strip()] = estimator.score(X_test, y_test)
    print(f"{name:<42} test accuracy {SCORES[name.strip()]:.3f}")


# ---------------------------------------------------------- transformer form
# Preprocessing steps ahead of the network; the net gets float32 (n, C, H, W).
od_then_dct = Pipeline([("od", StainDeconvolution()), ("dct", LogDCT())])
transformer_form = {
    "1": Pipeline([("od", StainDeconvolution()), ("net", net())]),
    "2": Pipeline([("od", StainDeconvolution()), ("dct", LogDCT()), ("net", net())]),
    "2C": Pipeline(
        [
            (
                "channels",
                ChannelUnion([("od", StainDeconvolution()), ("dct", od_then_dct)]),
            ),
            ("net", net()),
        ]
    ),
}
print("Transformer form")
for name, pipe in transformer_form.items():
    # Subject IDs go to the net's inner validation split (best-epoch choice):
    # in a Pipeline they are addressed to the step, "net__groups".
    pipe.fit(X_train, y_train, net__groups=g_train)
    report(f"  Stage-{name}", pipe)

# Stage-3C from the two networks trained above, as in the paper (a hybrid of
# previously trained models): cv="prefit" fuses them without refitting.
stage3c = FeatureFusionClassifier(
    [("stage1", transformer_form["1"]), ("stage2c", transformer_form["2C"])],
    cv="prefit",
).fit(X_train, y_train)
report("  Stage-3C (prefit Stage-1 + Stage-2C)", stage3c)

# --------------------------------------------------------------- device form
# The same networks on the raw uint8 images; preprocessing runs per batch.
print("Device form")
device_form = {
    "1": Pipeline([("net", net(preprocessing="od"))]),
    "2": Pipeline([("net", net(preprocessing="log_dct"))]),
    "2C": Pipeline([("net", net(preprocessing="od+log_dct"))]),
}
for name, pipe in device_form.items():
    pipe.fit(X_train, y_train, net__groups=g_train)
    report(f"  Stage-{name}", pipe)

# Stage-3 from unfitted networks: the fusion fits both on all training data and
# its linear layer on their features of that same data (cv="in_sample", the
# paper's protocol). Augmentation would go on the Stage-1 network only, as in
# the paper ("Stage-3 w/ aug" = Stage-1 w/ aug + Stage-2 w/o aug).
stage3 = FeatureFusionClassifier(
    [
        ("stage1", Pipeline([("net", net(preprocessing="od", augment="all"))])),
        ("stage2", Pipeline([("net", net(preprocessing="log_dct"))])),
    ]
)
stage3.fit(X_train, y_train, groups=g_train)  # groups reach both networks
report("  Stage-3 w/ aug (in-sample fusion)", stage3)

# FeatureFusionClassifier(..., cv=k) trains the linear layer on out-of-fold
# features instead (no feature from a network that saw its cell). For networks
# it is not recommended: fold networks and the refitted ones do not share a
# feature space (see the FeatureFusionClassifier docstring for the numbers).

# ----------------------------------------------------------------- make_stage
# make_stage("3C", ...) builds exactly the device-form composition above.
built = make_stage("3C", **NET)
print(
    "make_stage('3C') bases:",
    [(name, est[-1].preprocessing) for name, est in built.estimators],
)
print(f"done in {time.perf_counter() - start:.0f} s")

# %%
# Test accuracy of every composition (tiny networks, 8 epochs: the ranking
# means nothing here; the point is that each is an ordinary estimator).
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
ax.barh(list(SCORES), list(SCORES.values()))
ax.invert_yaxis()
ax.set_xlim(0, 1)
ax.set_xlabel("accuracy on held-out subjects")
