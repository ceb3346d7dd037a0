"""One-command GPU check of sklearn-leuko: stages, persistence, speed, memory, projections.

    python benchmarks/gpu_check.py                        # a CUDA machine: < 6 minutes
    python benchmarks/gpu_check.py --device cpu --quick   # the same steps in seconds (CI)

Runs five steps, in order, prints one line for each and rewrites
``benchmarks/results/gpu_check_<device>.json`` after each (an interrupted run
keeps what it measured):

(a) ``stages``: every stage of :data:`sklearn_leuko.STAGES` fits one epoch
    and predicts on the device (64x64 synthetic cells); plus the number of
    host synchronisations per training batch, from
    ``torch.cuda.set_sync_debug_mode`` (the difference between a fit of 2
    and of 8 batches, so per-fit and per-epoch ones cancel out);
(b) ``persistence``: Stage-1 networks trained on the device, in float32 and
    in the default precision (bfloat16 on Ampere and later), saved with
    joblib and with safetensors, loaded in a fresh process that sees no
    GPU, predict the same probabilities on the CPU: within 1e-4 for the
    float32 model, 3e-2 for the bfloat16 one (which runs in float32, or in
    bfloat16 with other kernels, on the CPU);
(c) ``throughput``: training and inference cells/s at 350x350, batch 32,
    default BasicNetwork, for Stage-1 (``LeukoNetClassifier``, images on
    the device, and streamed from pinned host memory) vs the plain PyTorch
    loop on the same model and the same device-resident data
    (``_loops.py``: channels-last, same precision) vs plain skorch; also
    Stage-1 with ``augment="all"`` and Stage-2C, for (e); and the costs of
    issue 35: the fixed front (``stain_layer="fixed"``) vs the plain loop,
    P-TELU vs ReLU (in the plain loop and with the fixed front; which
    P-TELU kernel ran, compiled or eager), the SD-Layer vs the fixed front;
(d) ``memory``: peak GPU memory of the Stage-1 fit of (c), and what it means
    for the 13,739 cells of C-NMC (5.05 GB of uint8 images);
(e) ``projection``: the time of one epoch over C-NMC's ~10,661 training
    cells (REFERENCE.md) and of the whole Stage-3C 4-fold protocol
    (``run_protocol(stages=("3C",))`` with the library defaults: 30 epochs,
    4 test subjects of 73, 20% inner validation), from the rates of (c).

Bringing the dependencies to a GPU machine that has torch (and numpy) but
not the rest: the script imports the library from this checkout (no
install needed). On a machine with the package index, download the wheels
for the GPU machine's Python and platform (check them there first:
``python -c "import sys, platform; print(sys.version, platform.machine())"``),
leaving out what it already has (``python -c "import numpy, scipy, sklearn,
pandas"``)::

    pip download --no-deps --only-binary=:all: --python-version 3.11 \\
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \\
        -d wheels/ skorch tabulate tqdm kornia kornia_rs packaging \\
        scikit-learn scipy joblib threadpoolctl safetensors \\
        pandas python-dateutil six pytz tzdata

skorch, tabulate, tqdm, kornia, packaging, joblib, threadpoolctl,
python-dateutil, six, pytz and tzdata are pure Python (any platform);
kornia_rs, scikit-learn, scipy, pandas and safetensors are compiled (match
the Python version and platform). About 63 MB (80 MB with numpy). There::

    pip install --no-index --find-links wheels/ wheels/*.whl
    python benchmarks/gpu_check.py
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _loops import (  # noqa: E402
    compiled_prediction,
    library,
    plain_skorch,
    plain_torch,
    plain_torch_module,
    precompute_od,
    sync,
)

#: C-NMC 2019 (REFERENCE.md): cells of the training folders, all cells,
#: subjects of the training folders, and the protocol's defaults.
CNMC_TRAINING_CELLS = 10_661
CNMC_ALL_CELLS = 13_739
CNMC_TRAINING_SUBJECTS = 73
PROTOCOL = {
    "folds": 4,
    "test_subjects": 4,
    "validation_fraction": 0.2,
    "max_epochs": 30,
    "stage": "3C",
    "networks": ["1 (augment='all')", "2C"],
}


def _tile(array, n):
    return np.concatenate([array] * -(-n // len(array)))[:n]


def _cells(n, size, seed=0, distinct=128):
    """``n`` synthetic cells: ``distinct`` ones, tiled (speed does not care)."""
    from sklearn_leuko.datasets import make_cells

    base = min(n, distinct)
    data = make_cells(
        n_subjects=max(4, base // 16),
        cells_per_subject=16,
        image_size=size,
        random_state=seed,
    )
    return _tile(data.images, n), _tile(data.target, n), _tile(data.groups, n)


class Report:
    def __init__(self, path, header):
        self.path = path
        self.data = dict(header)

    def add(self, section, result, line):
        self.data[section] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, default=str))
        print(f"({section}) {line}", flush=True)


# ---------------------------------------------------------------- (a) stages
def _count_syncs(device, images, labels):
    """Host synchronisations per training batch (augment="normal": masked path)."""
    from sklearn_leuko import LeukoNetClassifier

    counts = {}
    for n in (16, 64):
        clf = LeukoNetClassifier(
            preprocessing="od",
            augment="normal",
            max_epochs=1,
            batch_size=8,
            validation_fraction=None,
            device=device,
            verbose=0,
            random_state=0,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                clf.fit(images[:n], labels[:n])
            finally:
                torch.cuda.set_sync_debug_mode("default")
        n_batches = len(clf.history_[-1, "batches"])
        counts[n_batches] = sum("synchroniz" in str(w.message) for w in caught)
    (b1, c1), (b2, c2) = sorted(counts.items())
    return counts, (c2 - c1) / (b2 - b1)


def check_stages(device, quick):
    from sklearn_leuko import STAGES, make_stage

    size, n = (32, 32) if quick else (64, 96)
    images, labels, groups = _cells(n, size)
    rows = {}
    for name in STAGES:
        start = time.perf_counter()
        est = make_stage(
            name,
            max_epochs=1,
            batch_size=16,
            device=device,
            verbose=0,
            random_state=0,
            **(
                {"widths": (4, 8, 8, 8, 8, 8, 8, 8)}
                if name == "vgg11" and quick
                else {}
            ),
        )
        if hasattr(est, "named_steps"):
            est.fit(images, labels, net__groups=groups)
            nets = [est.named_steps["net"]]
        else:
            est.fit(images, labels, groups=groups)
            nets = [pipe[-1] for pipe in est.estimators_]
        proba = est.predict_proba(images)
        rows[name] = {
            "fit_s": round(time.perf_counter() - start, 3),
            "predict_shape": list(proba.shape),
            "proba_finite": bool(np.isfinite(proba).all()),
            "network_devices": sorted(
                {next(net.net_.module_.parameters()).device.type for net in nets}
            ),
            "autocast_dtype": sorted(
                {str(net.module_spec_["autocast_dtype"]) for net in nets}
            ),
        }
    ok = all(
        r["proba_finite"] and r["predict_shape"] == [n, 2] for r in rows.values()
    ) and all(
        r["network_devices"] in ([torch.device(device).type], []) for r in rows.values()
    )
    result = {"ok": ok, "image_size": size, "cells": n, "stages": rows}
    line = f"{'OK' if ok else 'FAILED'}: {len(rows)} stages fit and predict on {device}"
    if torch.device(device).type == "cuda":
        counts, per_batch = _count_syncs(device, images, labels)
        result["sync_counts_by_batches"] = counts
        result["syncs_per_training_batch"] = per_batch
        line += f"; host syncs per training batch: {per_batch:g}"
    line += f" ({sum(r['fit_s'] for r in rows.values()):.1f} s)"
    return result, line


# ----------------------------------------------------------- (b) persistence
_LOAD_ON_CPU = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    warnings.simplefilter("ignore")
    from sklearn_leuko import load_model
    folder = sys.argv[2]
    images = np.load(folder + "/images.npy")
    out = {}
    for name in json.loads(sys.argv[3]):
        model = load_model(folder + "/" + name, device="cpu")
        out[name] = model.predict_proba(images).tolist()
    json.dump(out, open(folder + "/cpu.json", "w"))
    """
)


def check_persistence(device, quick):
    from sklearn_leuko import LeukoNetClassifier, save_model

    size, n = (32, 32) if quick else (64, 128)
    images, labels, groups = _cells(n, size, seed=1)
    tolerances = {"float32": 1e-4, "auto": 3e-2}
    expected, files = {}, []
    with tempfile.TemporaryDirectory() as folder:
        np.save(f"{folder}/images.npy", images)
        for precision, amp in (("float32", False), ("auto", "auto")):
            clf = LeukoNetClassifier(
                preprocessing="od",
                max_epochs=1,
                batch_size=16,
                mixed_precision=amp,
                device=device,
                verbose=0,
                random_state=0,
            ).fit(images, labels, groups=groups)
            proba = clf.predict_proba(images)
            for suffix in ("joblib", "safetensors"):
                name = f"{precision}.{suffix}"
                save_model(clf, Path(folder) / name)
                expected[name] = (proba, precision, clf.module_spec_["autocast_dtype"])
                files.append(name)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        proc = subprocess.run(
            [sys.executable, "-c", _LOAD_ON_CPU, str(ROOT), folder, json.dumps(files)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"loading on the CPU failed:\n{proc.stderr[-3000:]}")
        loaded = json.loads(Path(folder, "cpu.json").read_text())
    rows = {}
    for name, (proba, precision, dtype) in expected.items():
        diff = float(np.abs(np.asarray(loaded[name]) - proba).max())
        rows[name] = {
            "trained_autocast_dtype": dtype,
            "max_abs_diff": diff,
            "tolerance": tolerances[precision],
            "ok": diff <= tolerances[precision],
        }
    ok = all(r["ok"] for r in rows.values())
    worst = max(rows.items(), key=lambda kv: kv[1]["max_abs_diff"] / kv[1]["tolerance"])
    line = (
        f"{'OK' if ok else 'FAILED'}: models trained on {device}, loaded in a "
        f"process without GPU, predict the same (worst {worst[0]}: "
        f"{worst[1]['max_abs_diff']:.2g} <= {worst[1]['tolerance']:g})"
    )
    return {"ok": ok, "models": rows}, line


# ------------------------------------------------------------ (c) throughput
def _best(run, repeats):
    best = None
    for _ in range(repeats):
        times = run()
        best = (
            times
            if best is None
            else tuple(min(a, b) for a, b in zip(best, times, strict=True))
        )
    return best


def check_throughput(device, quick):
    from sklearn_leuko.nn import _precision

    on_cuda = torch.device(device).type == "cuda"
    size = 32 if quick else 350
    n = 64 if quick else 4096
    epochs = 1 if quick else 2
    repeats = 1 if quick else 2
    # make_cells at 350x350 takes ~0.1-0.2 s a cell: 64 distinct cells, tiled.
    distinct = 64
    images, labels, _ = _cells(n, size, seed=2, distinct=distinct)
    y = (labels == "hem").astype(np.int64)
    od = _tile(precompute_od(images[:distinct]), n)
    native_bf16 = (
        _precision.cuda_has_native_bf16()
        if on_cuda
        else _precision.cpu_has_native_bf16()
    )
    common = dict(device=device, batch_size=32, epochs=epochs)
    variants = {}
    for precision in ("fp32", "bf16") if native_bf16 else ("fp32",):
        bf16 = precision == "bf16"
        prototype = library(images[:32], labels[:32], bf16=bf16, **common)[2]
        variants[f"plain torch, same module {precision}"] = lambda prototype=prototype: (
            plain_torch_module(prototype, images, y, **common)
        )
        variants[f"plain torch {precision}"] = lambda bf16=bf16: plain_torch(
            od, y, bf16=bf16, **common
        )
        variants[f"Stage-1 {precision}"] = lambda bf16=bf16: library(
            images, labels, bf16=bf16, **common
        )[:2]
    best_precision = "bf16" if native_bf16 else "fp32"
    bf16 = native_bf16
    variants[f"Stage-1 {best_precision} streamed"] = lambda: library(
        images, labels, bf16=bf16, data_on_device=False, **common
    )[:2]
    variants[f"Stage-1 {best_precision} augment=all"] = lambda: library(
        images, labels, bf16=bf16, augment="all", **common
    )[:2]
    variants[f"Stage-2C {best_precision}"] = lambda: library(
        images, labels, bf16=bf16, preprocessing="od+log_dct", **common
    )[:2]
    # The fronts and activations of issue 35, in the best precision.
    variants[f"plain torch {best_precision} P-TELU"] = lambda: plain_torch(
        od, y, bf16=bf16, activation="ptelu", **common
    )
    for name, params in (
        ("fixed front", {}),
        ("fixed front P-TELU", {"activation": "ptelu"}),
    ):
        variants[f"Stage-1 {best_precision} {name}"] = lambda params=params: library(
            images, labels, bf16=bf16, stain_layer="fixed", **params, **common
        )[:2]
    variants["plain skorch fp32"] = lambda: plain_skorch(od, y, **common)
    rows = {}
    peak = None
    for name, run in variants.items():
        if on_cuda and name == f"Stage-1 {best_precision}":
            torch.cuda.reset_peak_memory_stats()
        train_s, predict_s = _best(run, repeats)
        if on_cuda and name == f"Stage-1 {best_precision}":
            peak = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        rows[name] = {
            "train_cells_per_s": n * epochs / train_s,
            "predict_cells_per_s": n / predict_s,
        }
    for name, row in rows.items():
        precision = "bf16" if " bf16" in name else "fp32"
        for key, base_name in (
            ("plain_torch", f"plain torch {precision}"),
            ("same_module", f"plain torch, same module {precision}"),
        ):
            base = rows.get(base_name)
            if base is not None:
                row[f"train_vs_{key}"] = (
                    row["train_cells_per_s"] / base["train_cells_per_s"]
                )
                row[f"predict_vs_{key}"] = (
                    row["predict_cells_per_s"] / base["predict_cells_per_s"]
                )
    main = rows[f"Stage-1 {best_precision}"]
    fixed = rows[f"Stage-1 {best_precision} fixed front"]
    ptelu_plain = rows[f"plain torch {best_precision} P-TELU"]
    ptelu_fixed = rows[f"Stage-1 {best_precision} fixed front P-TELU"]
    plain = rows[f"plain torch {best_precision}"]
    # Time ratios (higher = slower): P-TELU vs ReLU, SD-Layer vs fixed front.
    step_ratios = {
        "ptelu_vs_relu_plain": plain["train_cells_per_s"]
        / ptelu_plain["train_cells_per_s"],
        "ptelu_vs_relu_fixed_front": fixed["train_cells_per_s"]
        / ptelu_fixed["train_cells_per_s"],
        "sd_layer_vs_fixed_front": fixed["train_cells_per_s"]
        / main["train_cells_per_s"],
    }
    from sklearn_leuko.nn import _ptelu_kernel

    result = {
        "image_size": size,
        "cells": n,
        "epochs": epochs,
        "batch_size": 32,
        "repeats": repeats,
        "precision": best_precision,
        "variants": rows,
        "step_ratios": step_ratios,
        "ptelu_kernel": _ptelu_kernel.KERNEL,
    }
    if not quick:
        result["compile_predict"] = _compiled_prediction(
            images, labels, device, bf16, repeats
        )
    line = (
        f"Stage-1 {best_precision} at {size}x{size}: train "
        f"{main['train_cells_per_s']:.0f} cells/s "
        f"({main['train_vs_same_module']:.2f}x the plain loop over the same module, "
        f"{main['train_vs_plain_torch']:.2f}x over precomputed OD, "
        f"{main['train_cells_per_s'] / rows['plain skorch fp32']['train_cells_per_s']:.2f}x "
        f"plain skorch), predict {main['predict_cells_per_s']:.0f} cells/s "
        f"({main['predict_vs_same_module']:.2f}x, "
        f"{main['predict_vs_plain_torch']:.2f}x); fixed front "
        f"{fixed['train_vs_plain_torch']:.2f}x the plain loop; P-TELU step "
        f"{step_ratios['ptelu_vs_relu_plain']:.2f}x ReLU (plain loop), "
        f"{step_ratios['ptelu_vs_relu_fixed_front']:.2f}x (fixed front, "
        f"{_ptelu_kernel.KERNEL} kernel); SD-Layer "
        f"{step_ratios['sd_layer_vs_fixed_front']:.2f}x the fixed front"
    )
    compiled = result.get("compile_predict", {})
    if "cells_per_s" in compiled.get("compiled", {}) and "cells_per_s" in compiled.get(
        "eager", {}
    ):
        ratio = compiled["compiled"]["cells_per_s"] / compiled["eager"]["cells_per_s"]
        line += f"; compile=True predicts {ratio:.2f}x"
    return result, line, peak


def _compiled_prediction(images, labels, device, bf16, repeats):
    """predict_proba cells/s with compile=False and True (first call apart)."""
    from sklearn_leuko import LeukoNetClassifier

    clf = LeukoNetClassifier(
        preprocessing="od",
        max_epochs=1,
        validation_fraction=None,
        mixed_precision=bool(bf16),
        device=device,
        verbose=0,
    ).fit(images[:64], labels[:64])
    return compiled_prediction(clf, images, device, repeats)


# ---------------------------------------------------------------- (d) memory
def check_memory(device, peak, throughput):
    if peak is None:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return (
            {"device": device, "gpu": None, "host_peak_rss_bytes": rss},
            f"no GPU: host peak RSS {rss / 2**30:.2f} GiB",
        )
    allocated, reserved = peak
    cell_bytes = throughput["image_size"] ** 2 * 3
    data = throughput["cells"] * cell_bytes
    working = allocated - data
    cnmc = CNMC_ALL_CELLS * 350 * 350 * 3 + working
    total = torch.cuda.get_device_properties(device).total_memory
    result = {
        "gpu": torch.cuda.get_device_name(device),
        "gpu_total_bytes": total,
        "peak_allocated_bytes": allocated,
        "peak_reserved_bytes": reserved,
        "images_on_device_bytes": data,
        "working_memory_bytes": working,
        "projected_cnmc_peak_bytes": cnmc,
    }
    line = (
        f"peak {allocated / 2**30:.2f} GiB allocated ({reserved / 2**30:.2f} reserved) "
        f"for {throughput['cells']} cells on the device; C-NMC's 13,739 cells: "
        f"~{cnmc / 2**30:.1f} GiB of {total / 2**30:.0f} GiB"
    )
    return result, line


# ------------------------------------------------------------ (e) projection
def project(throughput):
    rows = throughput["variants"]
    p = throughput["precision"]
    s1_aug = rows[f"Stage-1 {p} augment=all"]
    s1 = rows[f"Stage-1 {p}"]
    s2c = rows[f"Stage-2C {p}"]
    epoch_s = CNMC_TRAINING_CELLS / s1["train_cells_per_s"]
    epoch_aug_s = CNMC_TRAINING_CELLS / s1_aug["train_cells_per_s"]
    cells = CNMC_TRAINING_CELLS * (
        1 - PROTOCOL["test_subjects"] / CNMC_TRAINING_SUBJECTS
    )
    fold_train = cells * (PROTOCOL["folds"] - 1) / PROTOCOL["folds"]
    inner_train = fold_train * (1 - PROTOCOL["validation_fraction"])
    inner_valid = fold_train * PROTOCOL["validation_fraction"]
    per_epoch = (
        inner_train / s1_aug["train_cells_per_s"]
        + inner_valid / s1["predict_cells_per_s"]
        + inner_train / s2c["train_cells_per_s"]
        + inner_valid / s2c["predict_cells_per_s"]
    )
    # Features of every cell of the fold (training, validation fold, test)
    # from both networks, for the fusion layer and the scores.
    features = CNMC_TRAINING_CELLS * (
        1 / s1["predict_cells_per_s"] + 1 / s2c["predict_cells_per_s"]
    )
    fold_s = PROTOCOL["max_epochs"] * per_epoch + features
    total = PROTOCOL["folds"] * fold_s
    result = {
        "assumptions": {
            **PROTOCOL,
            "cnmc_training_cells": CNMC_TRAINING_CELLS,
            "cnmc_training_subjects": CNMC_TRAINING_SUBJECTS,
            "inner_training_cells_per_fold": inner_train,
            "inner_validation_cells_per_fold": inner_valid,
            "image_size": throughput["image_size"],
            "precision": p,
        },
        "cnmc_epoch_s": epoch_s,
        "cnmc_epoch_augmented_s": epoch_aug_s,
        "stage3c_fold_s": fold_s,
        "stage3c_protocol_s": total,
    }
    line = (
        f"one C-NMC epoch ({CNMC_TRAINING_CELLS:,} cells, Stage-1): {epoch_s:.1f} s "
        f"({epoch_aug_s:.1f} s augmented); Stage-3C 4-fold protocol, "
        f"{PROTOCOL['max_epochs']} epochs: {total / 60:.1f} min"
    )
    if throughput["image_size"] != 350:
        line += f" (rates at {throughput['image_size']}x{throughput['image_size']}: not C-NMC)"
    return result, line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks the script, not speed"
    )
    parser.add_argument("--out", default=None, help="JSON path (default: results/)")
    args = parser.parse_args(argv)
    device = args.device
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here; use --device cpu --quick")
    tag = "quick" if args.quick else "full"
    out = (
        Path(args.out)
        if args.out
        else HERE / "results" / f"gpu_check_{device}_{tag}.json"
    )
    import sklearn_leuko

    header = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "device": device,
        "gpu": torch.cuda.get_device_name(device)
        if device.startswith("cuda")
        else None,
        "cpu": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "sklearn_leuko": sklearn_leuko.__version__,
        "quick": args.quick,
    }
    print(f"# gpu_check: {header}", flush=True)
    start = time.perf_counter()
    report = Report(out, header)
    report.add("stages", *check_stages(device, args.quick))
    report.add("persistence", *check_persistence(device, args.quick))
    throughput, line, peak = check_throughput(device, args.quick)
    report.add("throughput", throughput, line)
    report.add("memory", *check_memory(device, peak, throughput))
    report.add("projection", *project(throughput))
    sync(device)
    report.data["total_s"] = time.perf_counter() - start
    report.add(
        "total_s",
        report.data["total_s"],
        f"done in {report.data['total_s']:.0f} s: {out}",
    )


if __name__ == "__main__":
    main()
