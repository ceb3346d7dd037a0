"""Training and inference throughput: LeukoNetClassifier vs plain PyTorch vs plain skorch.

Same model (BasicNetwork), same data, same batch size, same number of epochs.
The baselines train on precomputed float32 optical-density arrays; the library
trains on the raw uint8 images and computes the optical density per batch on
the device (its memory-friendly default), so it does slightly more work.

    python benchmarks/bench_training.py                 # CPU defaults
    python benchmarks/bench_training.py --size 350 --n 2048 --batch-size 64   # on a GPU

Prints images/s and the ratio library / plain loop, with augmentation off and on.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from skorch import NeuralNetClassifier

from sklearn_leuko import LeukoNetClassifier
from sklearn_leuko.datasets import make_cells
from sklearn_leuko.nn import BasicNetwork
from sklearn_leuko.preprocessing import StainDeconvolution

WIDTHS = (16, 32, 32, 64, 64, 64)


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_torch(od, y, args, device):
    torch.manual_seed(0)
    model = BasicNetwork(in_channels=3, widths=WIDTHS).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    X_t, y_t = torch.from_numpy(od), torch.from_numpy(y)
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        perm = torch.randperm(len(X_t))
        for i in range(0, len(X_t), args.batch_size):
            idx = perm[i : i + args.batch_size]
            xb, yb = X_t[idx].to(device), y_t[idx].to(device)
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
    _sync(device)
    train_s = time.perf_counter() - start
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(X_t), args.batch_size):
            model(X_t[i : i + args.batch_size].to(device)).softmax(1).cpu()
    _sync(device)
    return train_s, time.perf_counter() - start


def plain_skorch(od, y, args, device):
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        BasicNetwork,
        module__in_channels=3,
        module__widths=WIDTHS,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        train_split=None,
        iterator_train__shuffle=True,
        device=device,
        verbose=0,
    )
    start = time.perf_counter()
    net.fit(od, y)
    _sync(device)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    net.predict_proba(od)
    return train_s, time.perf_counter() - start


def library(images, labels, args, device, augment):
    clf = LeukoNetClassifier(
        preprocessing="od",
        widths=WIDTHS,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        validation_fraction=None,
        augment=augment,
        device=device,
        verbose=0,
        random_state=0,
    )
    start = time.perf_counter()
    clf.fit(images, labels)
    _sync(device)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    clf.predict_proba(images)
    predict_s = time.perf_counter() - start
    start = time.perf_counter()
    clf.transform(images)
    return train_s, predict_s, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=384, help="number of cells")
    parser.add_argument("--size", type=int, default=96, help="image size in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs")
    parser.add_argument("--out", default=None, help="write results as JSON here")
    args = parser.parse_args(argv)
    device = (
        ("cuda" if torch.cuda.is_available() else "cpu")
        if args.device == "auto"
        else args.device
    )

    data = make_cells(
        n_subjects=max(4, args.n // 32),
        cells_per_subject=32,
        image_size=args.size,
        random_state=0,
    )
    images, labels = data.images[: args.n], data.target[: args.n]
    y = (labels == "hem").astype(np.int64)
    start = time.perf_counter()
    od = StainDeconvolution().fit_transform(images)
    od_s = time.perf_counter() - start
    n_seen = len(images) * args.epochs

    best = {}
    for _ in range(args.repeats):
        runs = {
            "plain torch": plain_torch(od, y, args, device),
            "plain skorch": plain_skorch(od, y, args, device),
            "sklearn-leuko": library(images, labels, args, device, "off"),
            "sklearn-leuko aug": library(images, labels, args, device, "all"),
        }
        for name, times in runs.items():
            if name not in best or times[0] < best[name][0]:
                best[name] = times

    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, device={device}"
    if device.startswith("cuda"):
        machine += f" ({torch.cuda.get_device_name()})"
    print(
        f"# Training throughput, {args.n} cells {args.size}x{args.size}, batch {args.batch_size}, "
        f"{args.epochs} epochs; {machine}"
    )
    print(
        f"{'variant':<20}{'train img/s':>12}{'predict img/s':>15}{'vs plain torch':>16}"
    )
    base = n_seen / best["plain torch"][0]
    results = {}
    for name, times in best.items():
        train_ips = n_seen / times[0]
        predict_ips = len(images) / times[1]
        results[name] = {
            "train_images_per_s": train_ips,
            "predict_images_per_s": predict_ips,
        }
        print(
            f"{name:<20}{train_ips:>12.1f}{predict_ips:>15.1f}{train_ips / base:>15.2f}x"
        )
    aug_cost = best["sklearn-leuko aug"][0] / best["sklearn-leuko"][0] - 1
    transform_ips = len(images) / best["sklearn-leuko"][2]
    print(f"augmentation adds {100 * aug_cost:.1f}% to an epoch")
    print(
        f"feature transform (bilinear features): {transform_ips:.1f} img/s; "
        f"host OD precompute for the baselines: {len(images) / od_s:.1f} img/s"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps(
                {
                    "machine": machine,
                    "args": vars(args),
                    "results": results,
                    "augmentation_overhead": aug_cost,
                    "transform_images_per_s": transform_ips,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
