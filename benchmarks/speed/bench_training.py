"""Training and inference throughput: LeukoNetClassifier vs an honest plain PyTorch loop.

Same cells, batch size, epochs and precision; channels-last and data already
in memory (on the device) everywhere (see ``_loops.py``). Two plain loops:

- "plain torch, same module": the library's own Stage-1 module (optical
  density and the learnable SD-Layer per batch, then the default
  BasicNetwork) on the same uint8 images: the same computation, so
  "vs same module" is the library's overhead (target >= 0.95x);
- "plain torch, OD precomputed": the BasicNetwork alone on float32 optical
  density computed once (4x the memory of the uint8 images, no SD-Layer):
  what a user without the SD-Layer could write; "vs OD precomputed" is what
  computing the input per batch costs.

Plain skorch (float32, out of the box, on the precomputed arrays) is shown
for reference.

    python benchmarks/speed/bench_training.py --size 350 --n 256 --epochs 2 \\
        --out benchmarks/results/training_cpu_350.json        # the README's CPU figures
    python benchmarks/speed/bench_training.py --device cuda --size 350 --n 4096 --epochs 2

bf16 rows run where bfloat16 is native (CUDA, CPUs with AVX512-BF16/AMX);
``--emulated-bf16`` forces them on other CPUs, to show what emulation costs
(the library's ``mixed_precision="auto"`` never does that). Cells/s are the
best of ``--repeats`` rounds (every variant runs once per round); the ratios
are the median over rounds of the ratio within a round, which the machine's
drift between rounds does not skew. Check the load average first (printed).
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # _loops.py

from _loops import (  # noqa: E402
    library,
    plain_skorch,
    plain_torch,
    plain_torch_module,
    precompute_od,
)

from sklearn_leuko.datasets import make_cells  # noqa: E402
from sklearn_leuko.nn import _precision  # noqa: E402
from sklearn_leuko.utils import reuse_freed_memory  # noqa: E402


def machine_info(device):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_native_bf16": _precision.cpu_has_native_bf16(),
        "device": device,
        "load_average": os.getloadavg(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _median_ratio(reference_rounds, rounds):
    """Median over rounds of reference time / variant time, (train, predict)."""
    ratios = np.asarray(reference_rounds) / np.asarray(rounds)
    return np.median(ratios, axis=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="number of cells")
    parser.add_argument("--size", type=int, default=350, help="image size in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs")
    parser.add_argument(
        "--precision",
        default="fp32,bf16",
        help="comma-separated: fp32, bf16 (bf16 skipped where not native)",
    )
    parser.add_argument("--emulated-bf16", action="store_true")
    parser.add_argument(
        "--glibc-defaults",
        action="store_true",
        help="keep glibc's malloc defaults instead of reuse_freed_memory() "
        "(which every variant then shares; see sklearn_leuko.utils)",
    )
    parser.add_argument("--no-skorch", action="store_true")
    parser.add_argument("--out", default=None, help="write results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reused = False if args.glibc_defaults else reuse_freed_memory()
    device = (
        ("cuda" if torch.cuda.is_available() else "cpu")
        if args.device == "auto"
        else args.device
    )
    on_cpu = device == "cpu"
    info = machine_info(device)
    info["reuse_freed_memory"] = reused
    if args.emulated_bf16:
        info["bf16_emulated"] = not info["cpu_native_bf16"]
        _precision.cpu_has_native_bf16 = lambda: True  # measure the emulation
    native = not on_cpu or _precision.cpu_has_native_bf16()
    precisions = [p for p in args.precision.split(",") if p == "fp32" or native]

    data = make_cells(
        n_subjects=max(4, args.n // 32),
        cells_per_subject=32,
        image_size=args.size,
        random_state=0,
    )
    images, labels = data.images[: args.n], data.target[: args.n]
    y = (labels == "hem").astype(np.int64)
    od = precompute_od(images)
    n_train = len(images) * args.epochs
    common = dict(device=device, batch_size=args.batch_size, epochs=args.epochs)

    variants = {}
    for precision in precisions:
        bf16 = precision == "bf16"
        prototype = library(
            images[:32], labels[:32], bf16=bf16, **dict(common, epochs=1)
        )[2]
        variants[f"plain torch, same module {precision}"] = lambda prototype=prototype: (
            plain_torch_module(prototype, images, y, **common)
        )
        variants[f"plain torch, OD precomputed {precision}"] = lambda bf16=bf16: (
            plain_torch(od, y, bf16=bf16, **common)
        )
        variants[f"sklearn-leuko {precision}"] = lambda bf16=bf16: library(
            images, labels, bf16=bf16, **common
        )[:2]
        if on_cpu:
            variants[f"sklearn-leuko {precision} data_on_device"] = lambda bf16=bf16: (
                library(images, labels, bf16=bf16, data_on_device=True, **common)[:2]
            )
    variants["sklearn-leuko fp32 augment=all"] = lambda: library(
        images, labels, bf16=False, augment="all", **common
    )[:2]
    if not args.no_skorch:
        variants["plain skorch fp32"] = lambda: plain_skorch(od, y, **common)

    print(
        f"# {args.n} cells {args.size}x{args.size}, batch {args.batch_size}, "
        f"{args.epochs} epochs, best of {args.repeats}; {info}",
        flush=True,
    )
    rounds = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():
            rounds[name].append(run())
    best = {name: np.min(times, axis=0) for name, times in rounds.items()}
    info["load_average_end"] = os.getloadavg()

    results = {}
    print(
        f"{'variant':<42}{'train cells/s':>14}{'predict cells/s':>16}"
        f"{'vs same module':>20}{'vs OD precomputed':>20}"
    )
    print(f"{'':<72}{'train  predict':>20}{'train  predict':>20}")
    for name, (train_s, predict_s) in best.items():
        precision = "bf16" if " bf16" in name else "fp32"
        # Ratios within each round (runs minutes apart drift more than the
        # variants of one round), median over rounds.
        same = _median_ratio(
            rounds[f"plain torch, same module {precision}"], rounds[name]
        )
        od_loop = _median_ratio(
            rounds[f"plain torch, OD precomputed {precision}"], rounds[name]
        )
        row = {
            "train_cells_per_s": n_train / train_s,
            "predict_cells_per_s": len(images) / predict_s,
            "train_vs_same_module": same[0],
            "predict_vs_same_module": same[1],
            "train_vs_od_precomputed": od_loop[0],
            "predict_vs_od_precomputed": od_loop[1],
        }
        results[name] = row
        print(
            f"{name:<42}{row['train_cells_per_s']:>14.1f}"
            f"{row['predict_cells_per_s']:>16.1f}"
            f"{row['train_vs_same_module']:>12.2f}x{row['predict_vs_same_module']:>7.2f}x"
            f"{row['train_vs_od_precomputed']:>12.2f}x"
            f"{row['predict_vs_od_precomputed']:>7.2f}x"
        )
    print(f"load average: start {info['load_average']}, end {info['load_average_end']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps(
                {
                    "machine": info,
                    "args": vars(args),
                    "date": time.strftime("%Y-%m-%d %H:%M"),
                    "results": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
