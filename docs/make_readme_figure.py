"""Draw the README's picture: one synthetic cell, its optical density, its Grad-CAM.

Writes ``docs/_static/cell-od-gradcam.png`` (also the site's logo). Synthetic
cells only: no real image is ever committed to the repository. About 15 s on two
CPU cores::

    python docs/make_readme_figure.py
"""

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sklearn_leuko import make_stage  # noqa: E402
from sklearn_leuko.datasets import make_cells  # noqa: E402
from sklearn_leuko.nn import rgb_to_od  # noqa: E402

OUT = pathlib.Path(__file__).parent / "_static" / "cell-od-gradcam.png"


def main():
    data = make_cells(
        n_subjects=16, cells_per_subject=24, image_size=96, random_state=0
    )
    X, y, groups = data.images, data.target, data.groups
    stage1 = make_stage(
        "1",
        max_epochs=15,
        augment="all",
        widths=(8, 16, 16, 32, 32, 32),
        verbose=0,
        random_state=0,
    )
    stage1.fit(X, y, net__groups=groups)
    net = stage1[-1]
    proba = net.predict_proba(X)[:, list(net.classes_).index("all")]
    cell = int(np.argmax(np.where(y == "all", proba, -1)))
    image = X[cell]
    rgb = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    od = rgb_to_od(rgb)[0].permute(1, 2, 0).numpy()
    heat = net.explain(X[cell : cell + 1], target="all", views=1)[0]

    fig, axes = plt.subplots(1, 3, figsize=(6.6, 2.4), layout="constrained")
    axes[0].imshow(image)
    axes[0].set_title("a synthetic blast", fontsize=9)
    total = od.sum(axis=-1)
    axes[1].imshow(total, cmap="magma", vmax=np.percentile(total[total > 0], 99))
    axes[1].set_title("optical density", fontsize=9)
    axes[2].imshow(image)
    axes[2].imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes[2].set_title(f"Grad-CAM, P(all) = {proba[cell]:.2f}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT, dpi=80)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
