"""Does ``torch.compile`` speed up Stage-1 training and inference? Eager vs compiled.

The same plain loop over the library's Stage-1 module
(:meth:`LeukoNetClassifier.build_module`: optical density, learnable
SD-Layer, BasicNetwork; channels-last) on the same uint8 cells, already on
the device. Reported: the one-off compilation time (first batches) and the
steady-state cells/s after it, eager and compiled, interleaved, best of
``--repeats``. The library offers no ``compile`` option unless this shows a
gain on the device it runs on.

    python benchmarks/speed/compile_loop.py --size 350 --n 64          # CPU (needs gcc)
    python benchmarks/speed/compile_loop.py --device cuda --size 350 --n 1024
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # _loops.py

from _loops import (  # noqa: E402
    fresh_module,
    library,
    predict_all,
    predict_batch_size,
    train_epochs,
)

from sklearn_leuko.datasets import make_cells  # noqa: E402


def run(prototype, X, Y, *, compiled, batch_size, epochs, device):
    torch.manual_seed(0)
    module = fresh_module(prototype, device)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    forward = torch.compile(module) if compiled else module
    # One batch shape throughout (drop_last): the last, smaller batch would
    # compile a second graph inside the timed part.
    steps = dict(batch_size=batch_size, drop_last=True)
    module.train()
    warmup_s = train_epochs(
        forward, optimizer, X[: 2 * batch_size], Y[: 2 * batch_size], epochs=1, **steps
    )
    train_s = train_epochs(forward, optimizer, X, Y, epochs=epochs, **steps)
    train = epochs * (len(X) // batch_size) * batch_size / train_s
    module.eval()
    pbs = predict_batch_size(batch_size, device)
    n = len(X) // pbs * pbs
    predict_all(forward, X[:pbs], batch_size=pbs)  # compiles the inference graph
    predict = n / predict_all(forward, X[:n], batch_size=pbs)
    return {
        "warmup_s": warmup_s,
        "train_cells_per_s": train,
        "predict_cells_per_s": predict,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--size", type=int, default=350)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    data = make_cells(
        n_subjects=max(4, args.n // 16),
        cells_per_subject=16,
        image_size=args.size,
        random_state=0,
    )
    images, labels = data.images[: args.n], data.target[: args.n]
    prototype = library(
        images[:16], labels[:16], device=device, batch_size=8, epochs=1, bf16=False
    )[2]
    X = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    Y = torch.from_numpy((labels == "hem").astype(np.int64)).to(device)
    load_start = os.getloadavg()
    best = {}
    for _ in range(args.repeats):
        for name, compiled in (("eager", False), ("torch.compile", True)):
            torch._dynamo.reset()
            row = run(
                prototype,
                X,
                Y,
                compiled=compiled,
                batch_size=args.batch_size,
                epochs=args.epochs,
                device=device,
            )
            old = best.get(name)
            best[name] = (
                row
                if old is None
                else {
                    "warmup_s": min(old["warmup_s"], row["warmup_s"]),
                    "train_cells_per_s": max(
                        old["train_cells_per_s"], row["train_cells_per_s"]
                    ),
                    "predict_cells_per_s": max(
                        old["predict_cells_per_s"], row["predict_cells_per_s"]
                    ),
                }
            )
    eager = best["eager"]
    print(
        f"# {args.n} cells {args.size}x{args.size} on {device}, batch {args.batch_size}"
    )
    print(
        f"{'':<15}{'first 2 batches s':>18}{'train cells/s':>15}{'predict cells/s':>17}"
    )
    for name, row in best.items():
        row["train_vs_eager"] = row["train_cells_per_s"] / eager["train_cells_per_s"]
        row["predict_vs_eager"] = (
            row["predict_cells_per_s"] / eager["predict_cells_per_s"]
        )
        print(
            f"{name:<15}{row['warmup_s']:>18.1f}{row['train_cells_per_s']:>15.1f}"
            f"{row['predict_cells_per_s']:>17.1f}   ({row['train_vs_eager']:.2f}x, "
            f"{row['predict_vs_eager']:.2f}x)"
        )
    result = {
        "device": device,
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "torch": torch.__version__,
        "args": vars(args),
        "load_average": [load_start, os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "results": best,
    }
    print(f"load average: start {load_start}, end {os.getloadavg()}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
