"""LeukoNetClassifier(compile=True) vs False: prediction cells/s through the estimator.

Stage-1 at 350x350 (by default), fitted for one epoch on a few cells, then
``predict_proba`` on ``--n`` cells: the first call with ``compile=True``
includes the compilation (reported apart), the best of ``--repeats`` later
calls is the steady state. Run with ``reuse_freed_memory()`` like the
``sklearn-leuko`` program.

    python benchmarks/speed/compile_estimator.py --n 256
"""

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # _loops.py

from _loops import compiled_prediction  # noqa: E402

from sklearn_leuko import LeukoNetClassifier  # noqa: E402
from sklearn_leuko.datasets import make_cells  # noqa: E402
from sklearn_leuko.utils import reuse_freed_memory  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--size", type=int, default=350)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reuse_freed_memory()
    data = make_cells(
        n_subjects=8,
        cells_per_subject=args.n // 8,
        image_size=args.size,
        random_state=0,
    )
    clf = LeukoNetClassifier(
        preprocessing="od", max_epochs=1, validation_fraction=None, verbose=0
    ).fit(data.images[:32], data.target[:32])
    X = data.images
    load_start = os.getloadavg()
    result = compiled_prediction(clf, X, "cpu", args.repeats)
    if "error" in result["compiled"]:
        raise SystemExit(result["compiled"]["error"])
    result["speedup"] = (
        result["compiled"]["cells_per_s"] / result["eager"]["cells_per_s"]
    )
    for name in ("eager", "compiled"):
        row = result[name]
        print(
            f"compile={name == 'compiled'!s:<5}  first call {row['first_call_s']:6.1f} s"
            f"  then {row['cells_per_s']:6.1f} cells/s"
        )
    print(
        f"speed-up {result['speedup']:.2f}x; load average {load_start} -> {os.getloadavg()}"
    )
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), **result}, indent=2))


if __name__ == "__main__":
    main()
