"""The paper's choices, measured: learnable vs fixed SD-Layer, and epoch selection.

Subject-level protocol (``sklearn_leuko.evaluation.run_protocol``) on synthetic
``make_cells`` data, 4 folds of at least 6 subjects each:

1. ``stain_layer="learnable"`` (the paper's SD-Layer) vs ``"fixed"`` for
   Stage-1 and Stage-3C: mean +- std over the validation folds, and how far
   the learnt stain vectors moved from the initial (Giemsa) ones, in degrees;
2. ``epoch_selection="validation_fold"`` (the paper: best epoch on the fold it
   reports) vs ``"inner"`` (held-out training subjects): the inflation of the
   validation accuracy in points;
3. ``--throughput``: training cells/s of Stage-1 at 350x350 with the learnable
   SD-Layer vs the fixed deconvolution (the layer must cost <= 5%).

    python benchmarks/accuracy/paper_fidelity.py                  # 1 and 2 (~15 min on 2 cores)
    python benchmarks/accuracy/paper_fidelity.py --throughput     # 3 (~2 min per precision)

Results go to ``benchmarks/results/paper_fidelity.json``.
"""

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # _loops.py

from _loops import fresh_module, train_epochs  # noqa: E402

from sklearn_leuko import LeukoNetClassifier  # noqa: E402
from sklearn_leuko.datasets import make_cells  # noqa: E402
from sklearn_leuko.evaluation import run_protocol  # noqa: E402
from sklearn_leuko.nn import cpu_has_native_bf16  # noqa: E402
from sklearn_leuko.utils import reuse_freed_memory  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results" / "paper_fidelity.json"


def _angles(initial, learnt):
    """Angle in degrees between each initial and learnt stain vector (rows)."""
    out = []
    for a, b in zip(initial, learnt, strict=True):
        cos = abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))
        out.append(float(np.degrees(np.arccos(np.clip(cos, -1, 1)))))
    return out


def _summary(result, label):
    cv = result.cv_results[label]
    return {
        key: [float(np.mean(cv[f"test_{key}"])), float(np.std(cv[f"test_{key}"]))]
        for key in ("accuracy", "f1_normal", "f1_cancer", "f1_weighted")
    }


def _line(name, summary):
    acc, f1n, f1c = (summary[k] for k in ("accuracy", "f1_normal", "f1_cancer"))
    return (
        f"{name:<34} Acc {100 * acc[0]:5.1f} +- {100 * acc[1]:4.1f}  "
        f"F1-N {100 * f1n[0]:5.1f} +- {100 * f1n[1]:4.1f}  "
        f"F1-C {100 * f1c[0]:5.1f} +- {100 * f1c[1]:4.1f}"
    )


def accuracy_runs(args):
    data = make_cells(
        n_subjects=args.subjects,
        cells_per_subject=args.cells,
        image_size=args.size,
        random_state=args.seed,
    )
    net_params = {
        "max_epochs": args.epochs,
        "widths": (8, 8, 16, 16, 16, 16),
        "verbose": 0,
    }
    runs = {}
    for name, stain_layer, selection in (
        ("learnable, inner", "learnable", "inner"),
        ("fixed, inner", "fixed", "inner"),
        ("learnable, validation_fold", "learnable", "validation_fold"),
    ):
        start = time.perf_counter()
        result = run_protocol(
            data.images,
            data.target,
            data.groups,
            stages=["1", "3C"],
            n_splits=4,
            test_subjects=0,
            net_params={**net_params, "stain_layer": stain_layer},
            epoch_selection=selection,
            random_state=args.seed,
            progress=False,
        )
        runs[name] = {
            "seconds": time.perf_counter() - start,
            "Stage-1": _summary(result, "Stage-1"),
            "Stage-3C": _summary(result, "Stage-3C"),
            "subjects_per_fold": [len(set(data.groups[va])) for _, va in result.folds],
        }
        if stain_layer == "learnable":
            angles = [
                _angles(net[-1].initial_stain_matrix_, net[-1].stain_matrix_)
                for net in result.estimators["Stage-1"]
            ]
            runs[name]["stage1_stain_vector_angles_deg"] = angles
        for label in ("Stage-1", "Stage-3C"):
            print(_line(f"{label} {name}", runs[name][label]), flush=True)
    inflation = {
        label: 100
        * (
            runs["learnable, validation_fold"][label]["accuracy"][0]
            - runs["learnable, inner"][label]["accuracy"][0]
        )
        for label in ("Stage-1", "Stage-3C")
    }
    angles = np.array(runs["learnable, inner"]["stage1_stain_vector_angles_deg"])
    print(
        "Learnt vs initial (Giemsa) stain vectors, Stage-1, mean over folds: "
        + ", ".join(f"{a:.1f}" for a in angles.mean(axis=0))
        + " degrees (methylene blue, eosin, residual)"
    )
    print(
        "Epoch chosen on the reported fold inflates the validation accuracy by "
        + ", ".join(f"{k} {v:+.1f} points" for k, v in inflation.items())
    )
    return {"runs": runs, "inflation_points": inflation}


def throughput(args):
    """Training cost of the learnable SD-Layer over the fixed deconvolution.

    Per precision (float32, and bfloat16 autocast where the CPU has it
    natively: what ``mixed_precision="auto"`` picks there), two measures of
    Stage-1 at 350x350, batch 32, the two variants interleaved so that a busy
    machine slows both alike: whole 1-epoch fits of ``args.n`` cells (best of
    ``args.repeats``), and single training steps of the same module (the
    median of ``args.steps`` per-pair ratios, which leaves out what a fit
    does besides training).
    """
    data = make_cells(
        n_subjects=8, cells_per_subject=args.n // 8, image_size=350, random_state=0
    )
    native = cpu_has_native_bf16()
    out = {"cpu_native_bf16": native, "load_average": [os.getloadavg()]}
    for precision in args.precision.split(","):
        if precision not in ("fp32", "bf16"):
            raise SystemExit(f"--precision takes fp32 and bf16, got {precision!r}")
        if precision == "bf16" and not native:
            print("bf16: skipped, this CPU has no native bfloat16")
            continue
        out[precision] = throughput_at(args, data, mixed_precision=precision == "bf16")
    out["load_average"].append(os.getloadavg())
    out["reuse_freed_memory"] = args.reuse_freed_memory
    return out


def throughput_at(args, data, mixed_precision):
    label = "bf16" if mixed_precision else "fp32"
    variants = ("fixed", "learnable")
    best = dict.fromkeys(variants, 0.0)
    fitted = {}
    for _ in range(args.repeats):
        for stain_layer in variants:
            clf = LeukoNetClassifier(
                preprocessing="od",
                stain_layer=stain_layer,
                mixed_precision=mixed_precision,
                max_epochs=1,
                validation_fraction=None,
                verbose=0,
                random_state=0,
            )
            start = time.perf_counter()
            clf.fit(data.images, data.target)
            speed = len(data.images) / (time.perf_counter() - start)
            best[stain_layer] = max(best[stain_layer], speed)
            fitted[stain_layer] = clf
    out = {"fit_cells_per_s": best}
    for stain_layer in variants:
        print(
            f"{label}: Stage-1 1-epoch fit at 350x350, {stain_layer:>9}: "
            f"{best[stain_layer]:6.1f} cells/s (best of {args.repeats})"
        )
    out["fit_cost_percent"] = 100 * (best["fixed"] / best["learnable"] - 1)
    print(
        f"{label}: the learnable SD-Layer costs {out['fit_cost_percent']:+.1f}% "
        "per epoch."
    )

    steps = step_times(fitted, data, args.steps)
    median = {v: float(np.median(t)) for v, t in steps.items()}
    out["step_ms_median"] = {v: 1000 * t for v, t in median.items()}
    # Each learnable step against the fixed step run just before it: the
    # machine's speed drifts between runs far more than between two steps.
    ratios = np.asarray(steps["learnable"]) / np.asarray(steps["fixed"])
    out["step_cost_percent"] = 100 * (float(np.median(ratios)) - 1)
    out["step_cost_percent_quartiles"] = [
        100 * (float(q) - 1) for q in np.percentile(ratios, [25, 75])
    ]
    for stain_layer in variants:
        print(
            f"{label}: Stage-1 training step at 350x350, {stain_layer:>9}: "
            f"{1000 * median[stain_layer]:6.0f} ms per batch of 32 "
            f"(median of {args.steps})"
        )
    low, high = out["step_cost_percent_quartiles"]
    print(
        f"{label}: the learnable SD-Layer costs {out['step_cost_percent']:+.1f}% "
        f"per training step (median of the {args.steps} paired steps; quartiles "
        f"{low:+.1f}%, {high:+.1f}%)."
    )
    out["layer_ms"] = layer_times(mixed_precision, args.steps)
    extra, conv = out["layer_ms"]["extra"], out["layer_ms"]["input_gradient_conv"]
    print(
        f"{label}: SD-Layer + stem alone, forward and backward: {extra:.1f} ms more "
        f"than the fixed deconvolution + stem, of which {conv:.1f} ms is the "
        "convolution that computes the stem's input gradient (medians); a 5% "
        f"budget is {0.05 * out['step_ms_median']['fixed']:.1f} ms."
    )
    tanh = out["layer_ms"]["tanh"]
    print(
        f"{label}: the SD-Layer's tanh on the deconvolved batch: "
        f"{tanh['sd_layer_tanh']:.1f} ms (torch.tanh_ {tanh['torch.tanh_']:.1f} ms)."
    )
    return out


def layer_times(mixed_precision, repeats, batch=32, size=350):
    """Milliseconds the learnable front adds around the stem, and its floor.

    ``extra``: learnable SD-Layer + stem against fixed deconvolution + stem,
    forward and backward (median of the paired differences); the gradient
    reaching the stem is random. ``input_gradient_conv``: the block
    convolution of ``nn.StridedConv2d`` alone, the part no amount of fusing
    of the rest removes. ``tanh``: the SD-Layer's float32 ``tanh`` in place
    on the deconvolved batch, and ``torch.tanh_`` on it.
    """
    from skimage.color import rgb_from_bex

    from sklearn_leuko.nn import SDLayer, StridedConv2d, od_to_stains, rgb_to_od
    from sklearn_leuko.nn._sd_layer import _tanh_in_place

    torch.manual_seed(0)
    rgb = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
    od = rgb_to_od(rgb.permute(0, 3, 1, 2).float())  # channels-last, as in a fit
    stem = StridedConv2d(3, 16, 5, stride=2, padding=2)
    sd_layer = SDLayer(rgb_from_bex)
    inverse = torch.linalg.inv(torch.as_tensor(rgb_from_bex, dtype=torch.float32))
    dtype = torch.bfloat16 if mixed_precision else torch.float32
    grad = torch.randn(batch, 16, size // 2, size // 2).to(dtype)
    grad = grad.contiguous(memory_format=torch.channels_last)

    def train_stem(front):
        # As in LeukoNetModule: the front (preprocessing) in float32, the
        # network under autocast.
        x = front()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed_precision):
            out = stem(x)
        out.backward(grad)

    block_kernel = torch.randn(16, 16, 3, 3).to(dtype)
    stains = od_to_stains(od, inverse)
    buffer = torch.empty_like(stains)
    variants = {
        "fixed": lambda: train_stem(lambda: od_to_stains(od, inverse)),
        "learnable": lambda: train_stem(lambda: sd_layer(od)),
        "conv": lambda: torch.nn.functional.conv2d(grad, block_kernel, padding=1),
        "copy": lambda: buffer.copy_(stains),
        "sd_layer_tanh": lambda: _tanh_in_place(buffer.copy_(stains)),
        "torch.tanh_": lambda: torch.tanh_(buffer.copy_(stains)),
    }
    times = {
        k: np.asarray(v) for k, v in interleaved_seconds(variants, repeats).items()
    }

    def median_ms(seconds):
        return 1000 * float(np.median(seconds))

    return {
        "extra": median_ms(times["learnable"] - times["fixed"]),
        "input_gradient_conv": median_ms(times["conv"]),
        "tanh": {
            name: median_ms(times[name] - times["copy"])
            for name in ("sd_layer_tanh", "torch.tanh_")
        },
    }


def step_times(fitted, data, n_steps, batch=32):
    """Seconds of one forward+backward+Adam step per variant, interleaved."""
    X = torch.from_numpy(np.ascontiguousarray(data.images[:batch]))
    y = torch.from_numpy((np.asarray(data.target[:batch]) == "all").astype(np.int64))
    runs = {}
    for variant, clf in fitted.items():
        torch.manual_seed(0)
        module = fresh_module(clf, "cpu").train()
        runs[variant] = (module, torch.optim.Adam(module.parameters(), lr=1e-3))

    def step(module, optimizer):  # one batch = one epoch of the shared loop
        train_epochs(module, optimizer, X, y, batch_size=batch, epochs=1)

    return interleaved_seconds(
        {variant: functools.partial(step, *run) for variant, run in runs.items()},
        n_steps,
    )


def interleaved_seconds(runs, repeats):
    """Seconds of each call of ``runs`` (name -> callable), ``repeats`` rounds.

    One warm-up call each, then rounds of one call per name, the order
    reversed every round so that no variant always runs first.
    """
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    order = list(runs)
    for _ in range(repeats):
        for name in order:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
        order.reverse()
    return times


def cpu_description():
    """The CPU's model name and the vector extensions that decide these figures."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in info.splitlines()[:40] if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    extensions = [
        f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags
    ]
    return f"{fields.get('model name', platform.machine())} ({', '.join(extensions)})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=36)
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--size", type=int, default=72)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "--precision",
        default="fp32,bf16",
        help="comma-separated, for --throughput: fp32, bf16 (bf16 skipped where "
        "the CPU has no native bfloat16)",
    )
    parser.add_argument(
        "--glibc-defaults",
        action="store_true",
        help="keep glibc's malloc defaults instead of reuse_freed_memory() "
        "(what the sklearn-leuko program applies to itself)",
    )
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {
        "cpu": cpu_description(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if args.throughput:
        args.reuse_freed_memory = not args.glibc_defaults and reuse_freed_memory()
        results["throughput"] = throughput(args)
    else:
        results["accuracy"] = {"args": vars(args), **accuracy_runs(args)}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"Wrote {RESULTS}")


if __name__ == "__main__":
    main()
