"""One cost table: cells/s of every kind of training step and prediction, side by side.

    python benchmarks/speed/cost_table.py                  # 128 and 350 px, fp32 and bf16
    python benchmarks/speed/cost_table.py --quick          # tiny, seconds (CI, smoke test)
    python benchmarks/speed/cost_table.py --sizes 128 --precision bf16 --n 512

Every variant trains the default BasicNetwork (Adam, lr 1e-3, batch 32) on
the same synthetic cells, in the same precision, on the same device. One
round runs every variant once, in a fixed order; the rounds repeat
``--repeats`` times after one warm-up round (compilation, allocator), and the
table shows medians: of cells/s, and of the ratio to the reference within a
round (the machine's drift between rounds does not skew a ratio). Variants:

- ``plain loop``: the PyTorch loop of ``_loops.plain_torch`` (optical
  density precomputed once, on the device, channels-last, the same
  autocast): the reference of every "vs plain" ratio;
- ``plain loop P-TELU`` / ``PReLU``: the same loop, another activation: the
  activation's own cost, without the library;
- ``fixed front``: ``LeukoNetClassifier(stain_layer="fixed")`` on the raw
  uint8 images (the optical density per batch, on the device);
- ``SD-Layer front``: ``stain_layer="learnable"`` (the default);
- ``fixed front P-TELU`` / ``PReLU``; ``fixed front augment=all``;
- ``fixed front TTA 8``: the fixed-front model predicting with ``tta=8``.

"train" is the training epochs alone (skorch's per-epoch ``dur``; the plain
loop's timed loop); "fit" is the whole ``fit`` call (the preprocessing fitted
on a sample, the module built, the domain summary of the training cells).
"predict" is ``predict_proba`` over every cell against the plain loop's
inference (softmax, one copy to the host). The machine (CPU model, vector
extensions, GPU) and the load average are printed and saved with the figures
in ``benchmarks/results/cost_table_<device>.json``.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parents[1]  # benchmarks/: _loops.py, results/
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _loops import library, plain_torch, precompute_od, sync  # noqa: E402
from bench_training import machine_info  # noqa: E402

from sklearn_leuko.datasets import make_cells  # noqa: E402
from sklearn_leuko.utils import reuse_freed_memory  # noqa: E402

_VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "neon")


def cpu_vector_extensions():
    """The CPU's vector extensions that matter to torch (from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    return [f for f in _VECTOR_FLAGS if f in flags]
    except OSError:
        pass
    return []


def _library_run(images, labels, *, bf16, common, **params):
    train_s, predict_s, clf = library(images, labels, bf16=bf16, **common, **params)
    epochs_s = sum(row["dur"] for row in clf.net_.history)
    return {"train_s": epochs_s, "fit_s": train_s, "predict_s": predict_s}, clf


def _tta_predict_s(clf, images, device, tta=8):
    clf.set_params(tta=tta)
    start = time.perf_counter()
    clf.predict_proba(images)
    sync(device)
    clf.set_params(tta=False)
    return time.perf_counter() - start


def variants_for(images, labels, y, od, *, bf16, common):
    """``{name: run}``; ``run()`` returns train_s, fit_s, predict_s (some None)."""

    def plain(activation):
        def run():
            train_s, predict_s = plain_torch(
                od, y, bf16=bf16, activation=activation, **common
            )
            return {"train_s": train_s, "fit_s": None, "predict_s": predict_s}

        return run

    def lib(**params):
        def run():
            return _library_run(images, labels, bf16=bf16, common=common, **params)[0]

        return run

    def fixed_with_tta():
        times, clf = _library_run(
            images, labels, bf16=bf16, common=common, stain_layer="fixed"
        )
        times = dict(times, predict_s=_tta_predict_s(clf, images, common["device"]))
        return times

    return {
        "plain loop": plain("relu"),
        "plain loop PReLU": plain("prelu"),
        "plain loop P-TELU": plain("ptelu"),
        "fixed front": lib(stain_layer="fixed"),
        "SD-Layer front": lib(stain_layer="learnable"),
        "fixed front PReLU": lib(stain_layer="fixed", activation="prelu"),
        "fixed front P-TELU": lib(stain_layer="fixed", activation="ptelu"),
        "fixed front augment=all": lib(stain_layer="fixed", augment="all"),
        "fixed front TTA 8": fixed_with_tta,
    }


#: (name, numerator variant, denominator variant, what): step-time ratios.
STEP_RATIOS = (
    ("P-TELU / ReLU, plain loop", "plain loop P-TELU", "plain loop"),
    ("PReLU / ReLU, plain loop", "plain loop PReLU", "plain loop"),
    ("P-TELU / ReLU, fixed front", "fixed front P-TELU", "fixed front"),
    ("SD-Layer / fixed front", "SD-Layer front", "fixed front"),
    ("augment=all / off, fixed front", "fixed front augment=all", "fixed front"),
)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(rounds, n_train, n_predict):
    """Medians over rounds: cells/s, and ratios within each round."""
    ref = rounds["plain loop"]
    table = {}
    for name, runs in rounds.items():
        row = {}
        for key, n in (("train", n_train), ("fit", n_train), ("predict", n_predict)):
            row[f"{key}_cells_per_s"] = _median(
                [n / r[f"{key}_s"] if r[f"{key}_s"] else None for r in runs]
            )
        for key in ("train", "fit", "predict"):
            ref_key = "train" if key == "fit" else key
            row[f"{key}_vs_plain"] = _median(
                [
                    p[f"{ref_key}_s"] / r[f"{key}_s"] if r[f"{key}_s"] else None
                    for p, r in zip(ref, runs, strict=True)
                ]
            )
        table[name] = row
    ratios = {
        label: _median(
            [
                a["train_s"] / b["train_s"]
                for a, b in zip(rounds[num], rounds[den], strict=True)
            ]
        )
        for label, num, den in STEP_RATIOS
    }
    return table, ratios


def _fmt(value, spec):
    if value is None:
        return format("-", ">" + spec.split(".")[0])
    return format(value, spec)


def _ratio(value, width):
    return f"{value:{width - 1}.2f}x" if value is not None else "-".rjust(width)


def print_table(title, table, ratios):
    print(f"\n## {title}")
    header = (
        f"{'variant':<26}{'train':>9}{'fit':>9}{'predict':>9}"
        f"{'train':>9}{'fit':>8}{'predict':>9}"
    )
    print(f"{'':<26}{'cells/s (median)':^27}{'vs plain loop':^26}")
    print(header)
    for name, row in table.items():
        print(
            f"{name:<26}{_fmt(row['train_cells_per_s'], '9.1f')}"
            f"{_fmt(row['fit_cells_per_s'], '9.1f')}"
            f"{_fmt(row['predict_cells_per_s'], '9.1f')}"
            f"{_ratio(row['train_vs_plain'], 9)}"
            f"{_ratio(row['fit_vs_plain'], 8)}"
            f"{_ratio(row['predict_vs_plain'], 9)}"
        )
    print("training step time ratios (median within rounds):")
    for label, value in ratios.items():
        print(f"  {label:<34}{_fmt(value, '.3f')}")


def markdown(report):
    """The tables of a results JSON as Markdown (for docs/performance.md)."""

    def cell(value, fmt):
        return "-" if value is None else format(value, fmt)

    m = report["machine"]
    out = [
        f"Machine: {m['cpu']}, {m['torch_threads']} torch threads, vector extensions "
        f"{', '.join(m.get('cpu_vector_extensions', [])) or '-'}"
        + (f", GPU {m['gpu']}" if m.get("gpu") else "")
        + f"; torch {m['torch']}; {report['date']}; load average "
        f"{m['load_average'][0]:.1f} at the start, {m['load_average_end'][0]:.1f} at "
        f"the end. Command: `{report['command']}`.",
    ]
    for title, table in report["tables"].items():
        out += [
            "",
            f"**{title}** (cells/s, median of {report['args']['repeats']} rounds)",
            "",
            "| variant | train | fit | predict | train vs plain | fit vs plain "
            "| predict vs plain |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, row in table["variants"].items():
            out.append(
                f"| {name} | {cell(row['train_cells_per_s'], '.0f')} "
                f"| {cell(row['fit_cells_per_s'], '.0f')} "
                f"| {cell(row['predict_cells_per_s'], '.0f')} "
                f"| {cell(row['train_vs_plain'], '.2f')} "
                f"| {cell(row['fit_vs_plain'], '.2f')} "
                f"| {cell(row['predict_vs_plain'], '.2f')} |"
            )
        ratios = "; ".join(
            f"{label} {cell(value, '.2f')}x"
            for label, value in table["step_ratios"].items()
        )
        out += ["", f"Training step time ratios: {ratios}."]
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,350", help="comma-separated pixels")
    parser.add_argument(
        "--n", default="256,128", help="cells, one per size (or one for all)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
    parser.add_argument("--precision", default="fp32,bf16", help="fp32, bf16 or both")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny: a smoke test")
    parser.add_argument("--out", default=None, help="JSON path (default: results/)")
    parser.add_argument(
        "--markdown", default=None, help="print the tables of this results JSON, exit"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return None
    if args.quick:
        args.sizes, args.n, args.batch_size = "32", "16", 8
        args.epochs, args.repeats = 1, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    reused = reuse_freed_memory()
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    info = machine_info(device)
    info.update(
        cpu_vector_extensions=cpu_vector_extensions(), reuse_freed_memory=reused
    )
    native_bf16 = device != "cpu" or info["cpu_native_bf16"]
    precisions = [
        p
        for p in args.precision.split(",")
        if p == "fp32" or (p == "bf16" and native_bf16)
    ]
    print(
        f"# cost table: {args.n} cells for {args.sizes} px, batch {args.batch_size}, {args.epochs} "
        f"epochs, 1 warm-up + {args.repeats} rounds; machine {info}",
        flush=True,
    )
    common = dict(device=device, batch_size=args.batch_size, epochs=args.epochs)
    report = {
        "machine": info,
        "args": vars(args),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": " ".join(
            ["python", "benchmarks/speed/cost_table.py", *(argv or sys.argv[1:])]
        ),
        "tables": {},
    }
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(n) for n in args.n.split(",")]
    counts = (counts * len(sizes))[: len(sizes)] if len(counts) == 1 else counts
    if len(counts) != len(sizes):
        parser.error(f"--n has {len(counts)} values for {len(sizes)} sizes")
    for size, n_cells in zip(sizes, counts, strict=True):
        data = make_cells(
            n_subjects=max(4, -(-n_cells // 32)),
            cells_per_subject=32,
            image_size=size,
            random_state=0,
        )
        images, labels = data.images[:n_cells], data.target[:n_cells]
        y = (labels == "hem").astype(np.int64)
        od = precompute_od(images)
        for precision in precisions:
            variants = variants_for(
                images, labels, y, od, bf16=precision == "bf16", common=common
            )
            rounds = {name: [] for name in variants}
            for round_ in range(args.repeats + 1):
                for name, run in variants.items():
                    times = run()
                    if round_:  # the first round warms up
                        rounds[name].append(times)
            table, ratios = summarise(rounds, len(images) * args.epochs, len(images))
            title = f"{size}x{size} px, {precision}, {n_cells} cells"
            print_table(title, table, ratios)
            report["tables"][title] = {
                "size": size,
                "precision": precision,
                "variants": table,
                "step_ratios": ratios,
                "rounds": rounds,
            }
            sys.stdout.flush()
    info["load_average_end"] = os.getloadavg()
    print(
        f"\nload average: start {info['load_average']}, end {info['load_average_end']}"
    )
    out = Path(args.out or HERE / "results" / f"cost_table_{device.split(':')[0]}.json")
    if args.quick and args.out is None:
        out = out.with_name(out.stem + "_quick.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written: {out}")
    return report


if __name__ == "__main__":
    main()
