"""Peak host memory (RSS) of fitting each LeukoNet stage at C-NMC scale.

13,739 synthetic cells of 350x350 (5.05 GB of uint8, the size of the paper's
training set) are generated once into a .npy file. Each stage is then fitted in
a fresh process that loads the array into RAM and trains for a few batches
(a callback stops training; the data path is fully materialised by then).
Fusion stages also extract the bilinear features of every cell, as their
final layer needs them. Peak RSS comes from ``resource.getrusage`` (ru_maxrss)
of that process; the target is 1.6x the uint8 input.

Network widths are kept narrow so the benchmark finishes on a CPU: memory is
driven by the data path, not by the width of the network.

    python benchmarks/scale/bench_memory.py                    # all stages, full scale
    python benchmarks/scale/bench_memory.py --n 2000 --stages 1 3C
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
import numpy as np
from skorch.callbacks import Callback
from sklearn_leuko import make_stage
from sklearn_leuko._classifier._callbacks import StopTraining

class StopAfter(Callback):
    def __init__(self, n_batches=3):
        self.n_batches = n_batches
    def initialize(self):
        self.seen_ = 0
        return self
    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.seen_ += 1
            if self.seen_ >= self.n_batches:
                raise StopTraining

stage, path, n_batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
X = np.load(path)
y = np.load(path.replace(".npy", "_y.npy"), allow_pickle=False)
g = np.load(path.replace(".npy", "_g.npy"), allow_pickle=False)
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
model = make_stage(stage, widths=(4, 4, 8, 8, 8, 8), max_epochs=1, batch_size=32,
                   verbose=0, random_state=0, callbacks=[("stop", StopAfter(n_batches))])
if stage.upper() in ("3", "3C"):
    model.fit(X, y, groups=g)
else:
    model.fit(X, y, net__groups=g)
print(json.dumps({"stage": stage, "input_bytes": X.nbytes, "rss_after_load": loaded,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "fit_s": time.perf_counter() - start}))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=13739)
    parser.add_argument("--size", type=int, default=350)
    parser.add_argument("--stages", nargs="+", default=["1", "2", "2C", "3", "3C"])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--cache", default=None, help="folder for the generated .npy")
    parser.add_argument("--out", default=None, help="write results as JSON here")
    args = parser.parse_args(argv)

    from sklearn_leuko.datasets import make_cells

    cache = (
        Path(args.cache or tempfile.gettempdir())
        / f"leuko_cells_{args.n}_{args.size}.npy"
    )
    if not cache.exists():
        start = time.perf_counter()
        per_subject = int(np.ceil(args.n / 118))
        data = make_cells(
            n_subjects=118,
            cells_per_subject=per_subject,
            image_size=args.size,
            random_state=0,
        )
        np.save(cache, data.images[: args.n])
        np.save(str(cache).replace(".npy", "_y.npy"), data.target[: args.n].astype(str))
        np.save(str(cache).replace(".npy", "_g.npy"), data.groups[: args.n].astype(str))
        print(
            f"generated {args.n} cells of {args.size}x{args.size} in "
            f"{time.perf_counter() - start:.0f} s -> {cache}"
        )
        del data

    results = []
    print(
        f"{'stage':<6}{'uint8 input GB':>15}{'peak RSS GB':>13}{'ratio':>7}{'fit s':>8}"
    )
    for stage in args.stages:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, stage, str(cache), str(args.batches)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"{stage:<6} failed:\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["ratio"] = r["peak_rss"] / r["input_bytes"]
        results.append(r)
        print(
            f"{stage:<6}{r['input_bytes'] / 1e9:>15.2f}{r['peak_rss'] / 1e9:>13.2f}"
            f"{r['ratio']:>7.2f}{r['fit_s']:>8.0f}"
        )
    print("target: peak RSS < 1.6 x uint8 input")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
