"""Grid search wall time: one local process vs a Dask cluster.

The same GridSearchCV (4 candidates x 2 subject-level folds = 8 fits of a
Stage-1 network) runs three ways:

- ``local``: ``n_jobs=1`` in this process, torch with its default threads
  (what a user gets without a cluster);
- ``local-1-thread``: the same with ``torch.set_num_threads(1)``, the
  per-fit setting of the Dask workers (so their fits are comparable);
- ``dask``: ``n_jobs=-1`` inside :func:`sklearn_leuko._distributed.dask_backend`
  on a ``LocalCluster`` of ``--workers`` single-threaded worker processes
  (or on ``--scheduler ADDRESS``). Cluster start-up is timed separately.

All three must give the same scores (checked): the fits are seeded and
single-threaded reductions are reproducible.

    python benchmarks/scale/bench_dask.py                      # 2 local workers
    python benchmarks/scale/bench_dask.py --scheduler tcp://host:8786 --size 128 --epochs 5
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV, GroupKFold

from sklearn_leuko import make_stage
from sklearn_leuko._distributed import dask_backend, describe_workers
from sklearn_leuko.datasets import make_cells

GRID = {"net__lr": [1e-3, 3e-3], "net__batch_size": [16, 32]}


def _search(args, n_jobs):
    stage = make_stage(
        "1",
        widths=(8, 8, 16, 16, 16, 16),
        max_epochs=args.epochs,
        verbose=0,
        random_state=0,
    )
    return GridSearchCV(
        stage, GRID, cv=GroupKFold(2), scoring="accuracy", refit=False, n_jobs=n_jobs
    )


def _timed_fit(make_search, X, y, groups, repeats):
    """Best wall time of ``repeats`` grid searches, and the last results."""
    best = np.inf
    for _ in range(repeats):
        search = make_search()
        start = time.perf_counter()
        search.fit(X, y, groups=groups, net__groups=groups)
        best = min(best, time.perf_counter() - start)
    fit_s = float(np.sum(search.cv_results_["mean_fit_time"]) * 2)
    return best, search.cv_results_, fit_s


def _warm_up():
    """Import what a fit imports (skorch, kornia, ...) so that no timing pays it."""
    import importlib

    for module in ("sklearn_leuko._classifier", "sklearn_leuko._stages"):
        importlib.import_module(module)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=12)
    parser.add_argument("--cells-per-subject", type=int, default=16)
    parser.add_argument("--size", type=int, default=48, help="image size in pixels")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers")
    parser.add_argument("--scheduler", default=None, help="use this cluster instead")
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs")
    parser.add_argument("--out", default=None, help="write results as JSON here")
    args = parser.parse_args()

    data = make_cells(
        n_subjects=args.n_subjects,
        cells_per_subject=args.cells_per_subject,
        image_size=args.size,
        random_state=0,
    )
    X, y, groups = data.images, data.target, data.groups
    n_fits = 2 * int(np.prod([len(v) for v in GRID.values()]))
    timings = {}

    default_threads = torch.get_num_threads()
    _warm_up()
    make_local = lambda: _search(args, 1)  # noqa: E731
    timings["local_s"], local, timings["local_sum_fit_s"] = _timed_fit(
        make_local, X, y, groups, args.repeats
    )
    torch.set_num_threads(1)
    try:
        timings["local_1_thread_s"], local1, timings["local_1_thread_sum_fit_s"] = (
            _timed_fit(make_local, X, y, groups, args.repeats)
        )
    finally:
        torch.set_num_threads(default_threads)

    import distributed

    start = time.perf_counter()
    if args.scheduler is None:
        cluster = distributed.LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        target = cluster
    else:
        cluster, target = None, args.scheduler
    try:
        with dask_backend(target, scatter=[X, y]) as client:
            workers = describe_workers(client)
            client.run(_warm_up)
            timings["cluster_start_s"] = time.perf_counter() - start
            timings["dask_s"], remote, timings["dask_sum_fit_s"] = _timed_fit(
                lambda: _search(args, -1), X, y, groups, args.repeats
            )
    finally:
        if cluster is not None:
            cluster.close()

    for name, result in (("local-1-thread", local1), ("dask", remote)):
        for split in range(2):
            key = f"split{split}_test_score"
            if not np.array_equal(result[key], local[key]):
                print(f"warning: {name} scores differ from local in {key}")

    machine = {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "torch_threads_default": default_threads,
        "platform": platform.platform(),
        "workers": {k: v["device"] for k, v in workers.items()},
    }
    print(
        f"{n_fits} fits (best of {args.repeats}), {len(X)} cells of {args.size}x{args.size}, "
        f"{args.epochs} epochs, {os.cpu_count()} CPUs, "
        f"load average {machine['load_average'][0]:.1f}"
    )
    rows = [
        (f"local, n_jobs=1, torch {default_threads} threads", "local"),
        ("local, n_jobs=1, torch 1 thread", "local_1_thread"),
        (f"dask, {len(workers)} workers x 1 thread", "dask"),
    ]
    for label, key in rows:
        print(
            f"  {label:<36} wall {timings[key + '_s']:6.1f} s   "
            f"sum of fit times {timings[key + '_sum_fit_s']:6.1f} s"
        )
    print(
        f"  (dask cluster start-up, not included: {timings['cluster_start_s']:.1f} s)"
    )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {"machine": machine, "args": vars(args), "timings_s": timings}, indent=2
            )
        )


if __name__ == "__main__":
    main()
