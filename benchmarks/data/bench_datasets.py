"""Speed of make_cells and the subject effect it builds in.

Prints, in one run:

1. generation speed (images/s) and peak memory growth at 64x64 (3,000 cells)
   and at 350x350 (200 cells), best of ``--repeat`` runs;
2. the accuracy of simple-feature classifiers (per-channel mean/std of the
   cell pixels, area, dark fraction, three texture statistics) under
   cell-level ``KFold(shuffle=True)`` and subject-level ``GroupKFold``: the gap
   is what a cell-level split overestimates;
3. the same for ``subject_variability=0`` (no subject effect: no gap) and
   ``class_separation=0`` (no class signal: GroupKFold at chance, KFold still
   high from memorised subjects).

    python benchmarks/data/bench_datasets.py
    python benchmarks/data/bench_datasets.py --n-small 1000 --n-large 50 --seeds 1
"""

import argparse
import json
import time
import tracemalloc

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, KFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_leuko.datasets import make_cells
from sklearn_leuko.datasets._synthetic import _simple_cell_features


def speed(n_cells, image_size, repeat):
    cells_per_subject = 40
    kwargs = dict(
        n_subjects=max(2, -(-n_cells // cells_per_subject)),
        cells_per_subject=cells_per_subject,
        image_size=image_size,
    )
    best_wall, best_cpu = np.inf, np.inf
    for r in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        data = make_cells(random_state=r, **kwargs)
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    n = len(data.target)
    del data
    # memory in a separate, untimed run: tracemalloc slows NumPy down
    tracemalloc.start()
    make_cells(random_state=0, **kwargs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "image_size": image_size,
        "n_images": n,
        "wall_s": round(best_wall, 3),
        "cpu_s": round(best_cpu, 3),
        "images_per_s": round(n / best_wall, 1),
        "images_per_cpu_s": round(n / best_cpu, 1),
        "output_MiB": round(n * image_size**2 * 3 / 2**20, 1),
        "peak_traced_MiB": round(peak / 2**20, 1),
    }


CLASSIFIERS = {
    "knn5": lambda: make_pipeline(StandardScaler(), KNeighborsClassifier(5)),
    "random_forest": lambda: RandomForestClassifier(
        200, min_samples_leaf=2, random_state=0, n_jobs=1
    ),
    "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression()),
}


def gap(seeds, image_size, **kwargs):
    rows = {name: [] for name in CLASSIFIERS}
    for seed in seeds:
        data = make_cells(image_size=image_size, random_state=seed, **kwargs)
        X = _simple_cell_features(data.images)
        y, groups = data.target, data.groups
        for name, make in CLASSIFIERS.items():
            kfold = cross_val_score(
                make(), X, y, cv=KFold(5, shuffle=True, random_state=0)
            ).mean()
            group = cross_val_score(make(), X, y, groups=groups, cv=GroupKFold(5))
            rows[name].append((kfold, group.mean()))
    out = {}
    for name, values in rows.items():
        values = np.array(values)
        out[name] = {
            "KFold": round(values[:, 0].mean(), 3),
            "GroupKFold": round(values[:, 1].mean(), 3),
            "gap": round((values[:, 0] - values[:, 1]).mean(), 3),
            "gap_min": round((values[:, 0] - values[:, 1]).min(), 3),
        }
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-small", type=int, default=3000)
    parser.add_argument("--n-large", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--gap-size", type=int, default=64)
    args = parser.parse_args(argv)

    results = {"speed": [], "gap": {}}
    for n, size in ((args.n_small, 64), (args.n_large, 350)):
        row = speed(n, size, args.repeat)
        results["speed"].append(row)
        print(
            f"make_cells {size}x{size}: {row['n_images']} images in "
            f"{row['wall_s']} s wall ({row['cpu_s']} s CPU) = "
            f"{row['images_per_s']} images/s ({row['images_per_cpu_s']} per CPU s); "
            f"output {row['output_MiB']} MiB, peak traced {row['peak_traced_MiB']} MiB"
        )

    seeds = range(args.seeds)
    print(
        f"\nSimple features, accuracy (mean over seeds {list(seeds)}), "
        f"{args.gap_size}x{args.gap_size}, 24 subjects x 40 cells, 5 folds:"
    )
    settings = {
        "default": {},
        "subject_variability=0": {"subject_variability": 0.0},
        "class_separation=0": {"class_separation": 0.0},
    }
    for label, kwargs in settings.items():
        res = gap(seeds, args.gap_size, **kwargs)
        results["gap"][label] = res
        for name, r in res.items():
            print(
                f"  {label:22s} {name:14s} KFold {r['KFold']:.3f}  GroupKFold "
                f"{r['GroupKFold']:.3f}  gap {r['gap']:+.3f} (min {r['gap_min']:+.3f})"
            )
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
