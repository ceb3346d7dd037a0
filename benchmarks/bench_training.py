"""Training and inference throughput: LeukoNetClassifier vs an honest plain PyTorch loop.

Same model (the default BasicNetwork), same cells, batch size, epochs and
precision. The plain loop is what a competent PyTorch user writes (see
``_loops.py``): optical density precomputed once and already in memory (on
the device), channels-last, ``torch.autocast`` with bfloat16 for the bf16
rows. The library trains on the raw uint8 images and computes the optical
density per batch on the device, so it does a little more work. Plain
skorch (float32, out of the box) is shown for reference.

    python benchmarks/bench_training.py --size 350 --n 256 --epochs 2 \\
        --out benchmarks/results/training_cpu_350.json        # the README's CPU figures
    python benchmarks/bench_training.py --device cuda --size 350 --n 4096 --epochs 2

bf16 rows run where bfloat16 is native (CUDA, CPUs with AVX512-BF16/AMX);
``--emulated-bf16`` forces them on other CPUs, to show what emulation costs
(the library's ``mixed_precision="auto"`` never does that). Results are the
best of ``--repeats`` runs; check the load average first (printed).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loops import library, plain_skorch, plain_torch, precompute_od  # noqa: E402

from sklearn_leuko.datasets import make_cells  # noqa: E402
from sklearn_leuko.nn import _precision  # noqa: E402


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
    parser.add_argument("--no-skorch", action="store_true")
    parser.add_argument("--out", default=None, help="write results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = (
        ("cuda" if torch.cuda.is_available() else "cpu")
        if args.device == "auto"
        else args.device
    )
    on_cpu = device == "cpu"
    info = machine_info(device)
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
        variants[f"plain torch {precision}"] = lambda bf16=bf16: plain_torch(
            od, y, bf16=bf16, **common
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
    best = {}
    for _ in range(args.repeats):
        for name, run in variants.items():
            train_s, predict_s = run()
            old = best.get(name)
            best[name] = (
                min(train_s, old[0]) if old else train_s,
                min(predict_s, old[1]) if old else predict_s,
            )
    info["load_average_end"] = os.getloadavg()

    results = {}
    header = f"{'variant':<40}{'train cells/s':>14}{'predict cells/s':>16}{'train vs plain':>15}{'predict vs plain':>17}"
    print(header)
    for name, (train_s, predict_s) in best.items():
        precision = "bf16" if " bf16" in name else "fp32"
        base = best[f"plain torch {precision}"]
        row = {
            "train_cells_per_s": n_train / train_s,
            "predict_cells_per_s": len(images) / predict_s,
            "train_vs_plain_torch": base[0] / train_s,
            "predict_vs_plain_torch": base[1] / predict_s,
        }
        results[name] = row
        print(
            f"{name:<40}{row['train_cells_per_s']:>14.1f}{row['predict_cells_per_s']:>16.1f}"
            f"{row['train_vs_plain_torch']:>14.2f}x{row['predict_vs_plain_torch']:>16.2f}x"
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
