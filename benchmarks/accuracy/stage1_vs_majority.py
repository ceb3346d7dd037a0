"""Stage-1 in Pipeline form under subject-level GroupKFold vs the majority baseline.

    python benchmarks/accuracy/stage1_vs_majority.py

``Pipeline([("od", StainDeconvolution()), ("net", LeukoNetClassifier(...))])`` on
synthetic cells; subject IDs reach the outer split and the network's inner split.
"""

import time

import numpy as np
from sklearn.metrics import balanced_accuracy_score, make_scorer
from sklearn.model_selection import GroupKFold, cross_validate
from sklearn.pipeline import Pipeline

from sklearn_leuko import LeukoNetClassifier
from sklearn_leuko.datasets import make_cells
from sklearn_leuko.metrics import CNMC_SCORING
from sklearn_leuko.preprocessing import StainDeconvolution


def main():
    data = make_cells(
        n_subjects=40,
        cells_per_subject=30,
        image_size=48,
        subject_variability=0.5,
        random_state=0,
    )
    X, y, g = data.images, data.target, data.groups
    pipe = Pipeline(
        [
            ("od", StainDeconvolution()),
            (
                "net",
                LeukoNetClassifier(
                    widths=(8, 8, 16, 16, 16, 16),
                    max_epochs=12,
                    verbose=0,
                    random_state=0,
                ),
            ),
        ]
    )
    scoring = {
        **CNMC_SCORING,
        "balanced_accuracy": make_scorer(balanced_accuracy_score),
    }
    start = time.perf_counter()
    cv = cross_validate(
        pipe,
        X,
        y,
        groups=g,
        cv=GroupKFold(4),
        scoring=scoring,
        params={"net__groups": g},
    )
    majority = max(np.mean(y == "all"), np.mean(y == "hem"))
    print(
        f"{len(X)} cells, {len(np.unique(g))} subjects, 48x48, GroupKFold(4), "
        f"{time.perf_counter() - start:.0f} s"
    )
    for name in (
        "accuracy",
        "balanced_accuracy",
        "f1_normal",
        "f1_cancer",
        "f1_weighted",
    ):
        s = cv[f"test_{name}"]
        print(
            f"  {name:<18} {100 * s.mean():6.2f} +- {100 * s.std():5.2f}  folds "
            + " ".join(f"{100 * v:.1f}" for v in s)
        )
    print(
        f"  majority-class accuracy {100 * majority:.2f}, balanced accuracy of chance 50.00"
    )


if __name__ == "__main__":
    main()
