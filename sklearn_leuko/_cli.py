"""The ``sklearn-leuko`` command line (also ``python -m sklearn_leuko``).

Three subcommands:

- ``cv``: the paper's protocol (subject-level folds, held-out test subjects)
  for the chosen stages; prints Table 2 and the subject-level diagnosis and
  writes tables and figures;
- ``train``: fit one stage on all the data and save it;
- ``predict``: classify a folder of cell images with a saved model.

Only :mod:`argparse` and NumPy are imported at start-up, so ``--help`` is instant; the
heavy libraries (torch, matplotlib) are imported by the subcommands.
"""

import argparse
import functools
import os
import sys
import warnings
from pathlib import Path

import numpy as np

PROG = "sklearn-leuko"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_STAGE_CHOICES = ("1", "2", "2C", "3", "3C", "vgg11")
_IMAGE_SUFFIXES = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff")

# Defaults of the synthetic demo, chosen so that ``sklearn-leuko cv`` (stages
# 1, 2, 2C, 3, 3C, 4 folds) runs in a few minutes on a 2-core CPU.
_SYNTHETIC_DEFAULTS = {
    "n_subjects": 40,
    "cells_per_subject": 40,
    "image_size": 32,
    "subject_variability": 1.0,
}
_DEFAULT_WIDTHS = "8,8,16,16,16,16"
_DEFAULT_VGG_WIDTHS = "8,8,16,16,16,16,16,16"


class CLIError(Exception):
    """A problem with the user's data, files or model: one line, exit code 1."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line on stderr, exit code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


# ------------------------------------------------------------ option types
def _number(cast, minimum, strict, expected):
    """An argparse type: ``cast(text)`` above (``strict``) or at least ``minimum``."""

    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not (value > minimum if strict else value >= minimum):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected
    return parse


_positive_int = _number(int, 0, True, "a positive integer")
_non_negative_int = _number(int, 0, False, "an integer >= 0")
_positive_float = _number(float, 0, True, "a positive number")
_non_negative_float = _number(float, 0, False, "a number >= 0")


def _widths(count):
    def parse(text):
        try:
            values = tuple(int(v) for v in text.replace(" ", ",").split(",") if v)
        except ValueError:
            values = ()
        if len(values) != count or min(values) < 1:
            raise argparse.ArgumentTypeError(
                f"expected {count} positive integers separated by commas, e.g. "
                f"{_DEFAULT_WIDTHS if count == 6 else _DEFAULT_VGG_WIDTHS!r}, got {text!r}"
            )
        return values

    parse.__name__ = "widths"
    return parse


def _stage(text):
    lookup = {s.lower(): s for s in _STAGE_CHOICES}
    key = text.strip().lower()
    for prefix in ("stage-", "stage"):
        if key.startswith(prefix) and key[len(prefix) :] in lookup:
            key = key[len(prefix) :]
    if key not in lookup:
        raise argparse.ArgumentTypeError(
            f"unknown stage {text!r}; choose from {', '.join(_STAGE_CHOICES)}"
        )
    return lookup[key]


def _threads(text):
    if text == "auto":
        return None
    return _positive_int(text)


# ------------------------------------------------------------------ parser
def _add_common(parser):
    group = parser.add_argument_group("output and diagnostics")
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars, training logs or informational messages on stderr; "
        "results and errors are still printed",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        help="on errors, show the full Python traceback instead of one line",
    )


def _add_data(parser):
    group = parser.add_argument_group(
        "data",
        "Without --data, synthetic C-NMC-like cells from "
        "sklearn_leuko.datasets.make_cells are used (nothing is downloaded).",
    )
    group.add_argument(
        "--data",
        metavar="PATH",
        help="folder of the C-NMC 2019 training data (holding fold_0, fold_1, "
        "fold_2, or up to three levels above them); subject IDs and labels are "
        "read from the file names",
    )
    group.add_argument(
        "--image-size",
        type=_positive_int,
        metavar="PX",
        help="image side in pixels. Synthetic data: the generated size "
        f"(default {_SYNTHETIC_DEFAULTS['image_size']}). --data: centre crop or pad "
        "every image to this size (e.g. 350 as in the paper; default: the images' "
        "own size, which must then be the same for all)",
    )
    group.add_argument(
        "--n-subjects",
        type=_positive_int,
        default=_SYNTHETIC_DEFAULTS["n_subjects"],
        metavar="N",
        help="synthetic data: number of subjects, about 2/3 of them leukemic; "
        "fewer than about 30 and the networks memorise subjects instead of "
        "learning cells (default: %(default)s)",
    )
    group.add_argument(
        "--cells-per-subject",
        type=_positive_int,
        default=_SYNTHETIC_DEFAULTS["cells_per_subject"],
        metavar="N",
        help="synthetic data: cells per subject (default: %(default)s)",
    )
    group.add_argument(
        "--subject-variability",
        type=_non_negative_float,
        default=_SYNTHETIC_DEFAULTS["subject_variability"],
        metavar="S",
        help="synthetic data: strength of the per-subject staining and imaging "
        "differences that a network can memorise instead of the cells' "
        "morphology (make_cells' subject_variability; 0 for none) (default: "
        "%(default)s)",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed of the synthetic data, the test subjects, the folds and "
        "the networks; the same seed gives the same results on CPU (default: "
        "%(default)s)",
    )


def _add_model(parser):
    group = parser.add_argument_group(
        "networks", "Settings of every network (LeukoNetClassifier parameters)."
    )
    group.add_argument(
        "--epochs",
        type=_positive_int,
        default=10,
        metavar="N",
        help="training epochs of each network; the epoch with the best accuracy "
        "on held-out training subjects is kept (default: %(default)s)",
    )
    group.add_argument(
        "--widths",
        type=_widths(6),
        default=_DEFAULT_WIDTHS,
        metavar="W1,...,W6",
        help="channel widths of the Basic Network: stem and five blocks; the "
        "bilinear features have W6^2 values (default: %(default)s; "
        "LeukoNetClassifier's own default is 16,32,32,64,64,64)",
    )
    group.add_argument(
        "--vgg-widths",
        type=_widths(8),
        default=_DEFAULT_VGG_WIDTHS,
        metavar="W1,...,W8",
        help="channel widths of the VGG-11 baseline (stage vgg11) (default: "
        "%(default)s)",
    )
    group.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        metavar="N",
        help="mini-batch size (default: %(default)s)",
    )
    group.add_argument(
        "--lr",
        type=_positive_float,
        default=1e-3,
        help="learning rate of the Adam optimizer (default: %(default)s)",
    )
    group.add_argument(
        "--augment",
        choices=("off", "all", "minority"),
        default="off",
        help="data augmentation (flips, rotation, shear, blur) in image space: "
        "'all' augments every training cell ('w/ aug' in the paper), 'minority' "
        "only the normal class, oversampled to balance ('w/ Normal aug'). In "
        "Stage-3/3C it applies to the Stage-1 network only, as in the paper "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--activation",
        choices=("relu", "prelu", "ptelu"),
        default="relu",
        help="activation of every block (the paper's Table 1 compares them) "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--device",
        default="auto",
        help="'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or "
        "'cuda:N' (default: %(default)s)",
    )
    group.add_argument(
        "--threads",
        type=_threads,
        default=None,
        metavar="N",
        help="CPU threads of torch (default: 'auto', half the logical cores, at "
        "least 1, or OMP_NUM_THREADS when set). More threads than free cores slow "
        "training down many times",
    )


def build_parser():
    """The argument parser of the ``sklearn-leuko`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    from . import __version__

    parser = _Parser(
        prog=PROG,
        description="LeukoNet (Mourya et al. 2018) on single-cell images: tell "
        "leukemic B-ALL blasts ('all') from normal cells ('hem').",
        epilog="Run '%(prog)s COMMAND --help' for the options of a command. Exit "
        "codes: 0 success, 1 data or model error, 2 usage error, 130 interrupted.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    cv = commands.add_parser(
        "cv",
        help="evaluate stages with the paper's protocol and print Table 2",
        description="Evaluate LeukoNet's stages with the paper's protocol: a few "
        "subjects are held out as the test set, the others are split into "
        "subject-level folds; in each fold every network is trained once "
        "(Stage-3/3C fuse that fold's Stage-1 and Stage-2/2C networks and train "
        "only their final layer); the Test column uses each stage's model of the "
        "fold with the best validation accuracy. Prints Table 2, the "
        "subject-level diagnosis and the misclassified subjects, and writes "
        "tables and figures to --output.",
    )
    group = cv.add_argument_group("protocol")
    group.add_argument(
        "--stages",
        nargs="+",
        type=_stage,
        default=["1", "2", "2C", "3", "3C"],
        metavar="STAGE",
        help="stages to evaluate, from 1 (optical density), 2 (log-DCT), 2C (both "
        "stacked), 3 (fusion of 1 and 2), 3C (fusion of 1 and 2C), vgg11 "
        "(baseline) (default: 1 2 2C 3 3C)",
    )
    group.add_argument(
        "--folds",
        type=_positive_int,
        default=4,
        metavar="K",
        help="number of subject-level validation folds, at least 2 (default: "
        "%(default)s, as in the paper)",
    )
    group.add_argument(
        "--test-subjects",
        type=_non_negative_int,
        default=4,
        metavar="N",
        help="subjects held out as the test set, stratified by class; 0 for none "
        "(default: %(default)s, as in the paper: 2 leukemic and 2 healthy)",
    )
    group.add_argument(
        "--output",
        default="leuko-output",
        metavar="DIR",
        help="folder for table2.csv, table2.md, subjects.csv, predictions.csv and "
        "the figures; created if needed, files in it are overwritten (default: "
        "%(default)s)",
    )
    group.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="write a checkpoint of every network after every epoch (one "
        "sub-folder per fold and network)",
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help="with --checkpoint-dir: continue an interrupted run from its "
        "checkpoints (same options and data)",
    )
    group.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="folds trained in parallel by joblib processes; -1 for one per core "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the folds on a Dask distributed cluster at this scheduler address "
        "(e.g. tcp://host:8786; needs 'pip install sklearn-leuko[dask]'); the images "
        "are sent to each worker once and every worker trains on its own device",
    )
    _add_data(cv)
    _add_model(cv)
    _add_common(cv)

    train = commands.add_parser(
        "train",
        help="fit one stage on all the data and save it",
        description="Fit one stage on all the given cells (the subject IDs keep "
        "each network's inner validation split subject-level) and save the model.",
    )
    group = train.add_argument_group("training")
    group.add_argument(
        "--stage",
        type=_stage,
        default="3C",
        help="stage to fit: 1, 2, 2C, 3, 3C or vgg11 (default: %(default)s, the "
        "paper's best)",
    )
    group.add_argument(
        "--model",
        default="leuko-model.joblib",
        metavar="PATH",
        help="where to save the fitted model. '.safetensors': a file that loads "
        "without running code (safe to share); any other suffix: joblib (a "
        "pickle; only load such files from sources you trust) (default: "
        "%(default)s)",
    )
    group.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="write a resumable checkpoint after every epoch (a sub-folder per "
        "network for Stage-3/3C)",
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help="with --checkpoint-dir: continue an interrupted training from its "
        "last checkpoint (same options and data)",
    )
    _add_data(train)
    _add_model(train)
    _add_common(train)

    predict = commands.add_parser(
        "predict",
        help="classify a folder of cell images with a saved model",
        description="Classify every image (.bmp, .png, .jpg, .tif) of a folder "
        "with a model saved by 'train' and write one CSV row per image: "
        "filename, predicted label ('all' or 'hem'), probability of 'all'. "
        "Images of another size than the model's input are centre cropped or "
        "padded with black to it (a note says how many).",
    )
    group = predict.add_argument_group("prediction")
    group.add_argument(
        "--model",
        required=True,
        metavar="PATH",
        help="model file written by 'train' (.joblib: only from sources you "
        "trust, loading it runs code; .safetensors: safe)",
    )
    group.add_argument(
        "--images",
        required=True,
        metavar="DIR",
        help="folder of cell images (not searched recursively)",
    )
    group.add_argument(
        "--out",
        default="predictions.csv",
        metavar="CSV",
        help="output CSV file (default: %(default)s)",
    )
    group.add_argument(
        "--batch-size",
        type=_positive_int,
        default=256,
        metavar="N",
        help="images read and classified at a time (bounds memory) (default: "
        "%(default)s)",
    )
    group.add_argument(
        "--device",
        default="cpu",
        help="where the network runs for a .safetensors model: 'cpu', 'cuda', "
        "'auto' (default: %(default)s)",
    )
    _add_common(predict)
    return parser


# --------------------------------------------------------------- messages
class _Console:
    def __init__(self, quiet):
        self.quiet = quiet

    def info(self, message):
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    @staticmethod
    def out(message=""):
        print(message, flush=True)


def _one_line(exc):
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    first = str(message).strip().splitlines()[0] if str(message).strip() else ""
    print(
        f"{PROG}: warning: {first} ({category.__name__})", file=sys.stderr, flush=True
    )


# ------------------------------------------------------------------- data
def _load_data(args, console):
    """Images, labels, subject IDs and file names, from --data or make_cells."""
    if args.data is None:
        from .datasets import make_cells

        size = args.image_size or _SYNTHETIC_DEFAULTS["image_size"]
        if size < 16:
            raise CLIError(
                f"--image-size {size} is too small for a cell; use 16 or more."
            )
        data = make_cells(
            n_subjects=args.n_subjects,
            cells_per_subject=args.cells_per_subject,
            image_size=size,
            subject_variability=args.subject_variability,
            random_state=args.seed,
        )
        source = (
            f"synthetic cells (make_cells, subject_variability="
            f"{args.subject_variability:g}, seed {args.seed})"
        )
    else:
        from .datasets import load_cnmc

        root = _check_data_path(args)
        console.info(f"Reading C-NMC images under {root} ...")
        data = load_cnmc(root, image_size=args.image_size)
        source = f"C-NMC images from {root}"
    groups = data.groups.astype(str)
    target = data.target.astype(str)
    n_all = len(set(groups[target == "all"]))
    n_hem = len(set(groups[target == "hem"]))
    console.info(
        f"Data: {source}: {len(target)} cells of {data.images.shape[1]}x"
        f"{data.images.shape[2]} px from {n_all + n_hem} subjects ({n_all} leukemic, "
        f"{n_hem} healthy)."
    )
    return data.images, target, groups, np.asarray(data.filenames).astype(str)


def _check_data_path(args):
    if args.data is None:
        return None
    root = Path(args.data)
    if not root.exists():
        raise CLIError(f"--data {args.data}: no such folder.")
    if not root.is_dir():
        raise CLIError(f"--data {args.data}: not a folder; pass the C-NMC data folder.")
    return root


def _net_params(args, quiet, verbose=0):
    params = {
        "widths": args.widths,
        "max_epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "augment": args.augment,
        "activation": args.activation,
        "device": args.device,
        "random_state": args.seed,
        "verbose": 0 if quiet else verbose,
    }
    if getattr(args, "checkpoint_dir", None) is not None:
        params["checkpoint_dir"] = args.checkpoint_dir
        params["resume"] = bool(args.resume)
    return params


def _check_checkpoint_args(args):
    if args.resume and args.checkpoint_dir is None:
        raise _UsageError(
            "--resume needs --checkpoint-dir, the folder of the interrupted run"
        )


class _UsageError(Exception):
    """An inconsistent combination of options: exit code 2."""


class _Interrupted(BaseException):
    """Ctrl-C. Not a KeyboardInterrupt, which skorch's ``fit`` catches to end
    training early and return as if it had finished."""


def _raise_interrupted(signum, frame):
    raise _Interrupted


def _catch_sigint():
    """Install the Ctrl-C handler; returns the previous one (None if not possible)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # e.g. nohup / background
        return None
    return signal.signal(signal.SIGINT, _raise_interrupted)


def _setup_torch(args):
    import torch

    threads = args.threads
    if threads is None and "OMP_NUM_THREADS" not in os.environ:
        # Half the logical cores: small networks gain little from more
        # threads, and threads competing with other processes for the cores
        # slow training down many times (measured: 16x on a busy 2-core CPU).
        threads = min(torch.get_num_threads(), max(1, (os.cpu_count() or 2) // 2))
    if threads is not None:
        torch.set_num_threads(threads)
    from .utils import resolve_device

    try:
        resolve_device(args.device)
    except ValueError as exc:
        raise _UsageError(f"--device {args.device}: {_one_line(exc)}") from None


# --------------------------------------------------------------------- cv
def _cmd_cv(args, console):
    _check_checkpoint_args(args)
    if args.folds < 2:
        raise _UsageError(f"--folds must be at least 2, got {args.folds}")
    _check_data_path(args)
    _setup_torch(args)
    from ._protocol import run_protocol, stage_label
    from .report import format_table2

    X, y, groups, filenames = _load_data(args, console)
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CLIError(f"--output {output}: exists and is not a folder.")
    net_params = _net_params(args, args.quiet)
    stage_params = (
        {"vgg11": {"widths": args.vgg_widths}} if "vgg11" in args.stages else {}
    )
    console.info(
        f"Protocol: {args.test_subjects} test subjects, {args.folds} subject-level "
        f"folds over the others; stages {', '.join(stage_label(s) for s in args.stages)}; "
        f"{args.epochs} epochs per network."
    )
    import time

    start = time.perf_counter()
    protocol = functools.partial(
        run_protocol,
        X,
        y,
        groups,
        stages=args.stages,
        n_splits=args.folds,
        test_subjects=args.test_subjects,
        net_params=net_params,
        stage_params=stage_params,
        random_state=args.seed,
        progress=not args.quiet,
    )
    if args.scheduler:
        from ._distributed import dask_backend

        console.info(f"Running the folds on the Dask cluster at {args.scheduler}.")
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise CLIError(
                "--scheduler needs Dask: pip install 'sklearn-leuko[dask]'."
            ) from None
        with dask_backend(args.scheduler, scatter=[X]):
            result = protocol(n_jobs=-1)
    else:
        result = protocol(n_jobs=None if args.jobs == 1 else args.jobs)
    elapsed = time.perf_counter() - start

    _print_cv_report(result, groups, args.folds, console, format_table2)
    written = _write_cv_outputs(result, output, X, y, filenames, args)
    console.out(
        f"Best stage on the validation folds: {result.best_stage}. Finished in "
        f"{elapsed:.0f} s."
    )
    console.out(f"Wrote to {output}/:")
    for path, what in written:
        console.out(f"  {path.name:<22} {what}")
    return EXIT_OK


def _summary_table(result):
    """Per stage: weighted F1, subject-level diagnosis and training time."""
    import pandas as pd

    has_test = len(result.test_index) > 0
    rows = {}
    for label in result.stages:
        cv = result.cv_results[label]
        subjects = result.subjects[label]
        row = {"Val F1-W": 100 * float(np.mean(cv["test_f1_weighted"]))}
        if has_test:
            row["Test F1-W"] = 100 * result.test_metrics[label]["f1_weighted"]
        for split, name in (("val", "Val subjects"), ("test", "Test subjects")):
            part = subjects[subjects["split"] == split]
            if len(part):
                row[name] = (
                    f"{int(part['correct'].sum())}/{len(part)} "
                    f"({100 * part['correct'].mean():.1f}%)"
                )
        row["Train s/fold"] = float(np.mean(cv["fit_time"]))
        rows[label] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "Model"
    return table


def _print_cv_report(result, groups, n_folds, console, format_table2):
    test = result.test_index
    table = result.table2
    paper = table[[c for c in table.columns if c[1] in ("Acc", "F1-N", "F1-C")]]
    console.out()
    console.out(
        "Table 2: accuracy (Acc), F1 of the normal (F1-N) and of the cancer (F1-C) "
        "class, per cell, in percent."
    )
    line = (
        f"Val0..Val{n_folds - 1}: validation folds (subjects unseen in training); "
        "Mean: their mean"
    )
    if len(test):
        subjects = sorted(np.unique(groups[test]))
        line += (
            f"; Test: the {len(subjects)} held-out subjects ({', '.join(subjects)}), "
            "each stage's model of its fold with the best validation accuracy"
        )
    console.out(line + ".")
    console.out()
    console.out(format_table2(paper))
    console.out()
    console.out(
        "Weighted F1 (F1-W, the C-NMC challenge metric), subjects diagnosed "
        "correctly (leukemic when the mean P(all) of their cells is >= 0.5) and "
        "training time:"
    )
    console.out()
    console.out(format_table2(_summary_table(result), floatfmt=".2f"))
    console.out()
    console.out(
        "Misclassified subjects (at least half of their cells wrong; split, share "
        "of cells wrong):"
    )
    for label in result.stages:
        bad = result.misclassified[label]
        items = (
            ", ".join(
                f"{row.subject} ({row.split}, {100 * row.cell_error:.0f}%)"
                for row in bad.itertuples()
            )
            if len(bad)
            else "none"
        )
        console.out(f"  {label}: {items}")
    console.out()


def _write_cv_outputs(result, output, X, y, filenames, args):
    import pandas as pd

    from .report import (
        format_table2,
        plot_cell_spaces,
        plot_confusion_matrix,
        plot_fold_metrics,
        plot_history,
        save_table2,
    )

    output.mkdir(parents=True, exist_ok=True)
    written = []
    path = save_table2(result.table2, output / "table2.csv")
    written.append((path, "Table 2 (CSV)"))
    path = output / "table2.md"
    path.write_text(
        "## Table 2\n\n"
        + format_table2(result.table2, "markdown")
        + "\n\n## Subject-level diagnosis\n\n"
        + format_table2(result.subject_table, "markdown")
        + "\n"
    )
    written.append((path, "Table 2 and subject-level table (Markdown)"))

    subjects = pd.concat(
        [df.assign(stage=label) for label, df in result.subjects.items()],
        ignore_index=True,
    )
    subjects = subjects[["stage", *[c for c in subjects.columns if c != "stage"]]]
    path = output / "subjects.csv"
    subjects.to_csv(path, index=False)
    written.append((path, "subject-level diagnosis per stage"))

    cells = pd.concat(
        [df.assign(stage=label) for label, df in result.predictions.items()],
        ignore_index=True,
    )
    cells.insert(0, "filename", filenames[cells["index"].to_numpy()])
    cells = cells[["stage", *[c for c in cells.columns if c != "stage"]]]
    path = output / "predictions.csv"
    cells.to_csv(path, index=False)
    written.append((path, "cell predictions (validation folds and test)"))

    best = result.best_stage
    frame = result.predictions[best]
    split = "test" if len(result.test_index) else "val"
    part = frame[frame["split"] == split]
    where = "test subjects" if split == "test" else "validation folds, pooled"
    path = plot_confusion_matrix(
        part["y_true"].to_numpy(),
        part["y_pred"].to_numpy(),
        output / "confusion_matrix.png",
        title=f"{best} on the {where} (n = {len(part)} cells)",
    )
    written.append((path, f"confusion matrix of {best} ({where})"))

    path = plot_fold_metrics(
        result.table2, output / "fold_metrics.png", title="Table 2 per split"
    )
    written.append((path, "metrics per fold and test set"))

    if result.histories:
        label = next(iter(result.histories))
        fold = result.test_fold.get(label, 0)
        path = plot_history(
            result.histories[label][fold],
            output / "history.png",
            title=f"{label} network, fold {fold}: training and inner validation",
        )
        written.append((path, f"training curves of the {label} network (fold {fold})"))

    index = result.test_index[0] if len(result.test_index) else 0
    path = plot_cell_spaces(
        X[index],
        output / "cell_spaces.png",
        title=f"{filenames[index]} ({y[index]}): RGB, optical density, log-DCT",
    )
    written.append((path, "one cell in RGB, OD and log-DCT space"))
    return written


# ------------------------------------------------------------------ train
def _cmd_train(args, console):
    _check_checkpoint_args(args)
    _check_data_path(args)
    _setup_torch(args)
    from ._protocol import fit_stage, stage_label

    model_path = Path(args.model)
    if model_path.is_dir():
        raise CLIError(f"--model {model_path}: is a folder; pass a file name.")
    X, y, groups, _ = _load_data(args, console)
    net_params = _net_params(args, args.quiet, verbose=1)
    stage_params = {"vgg11": {"widths": args.vgg_widths}}
    label = stage_label(args.stage)
    what = {
        "3": "the Stage-1 then the Stage-2 network, then the fusion layer",
        "3C": "the Stage-1 then the Stage-2C network, then the fusion layer",
    }.get(args.stage, "one network")
    console.info(
        f"Training {label} on {len(y)} cells: {what} ({args.epochs} epochs per "
        "network)."
    )
    model = fit_stage(
        args.stage,
        X,
        y,
        groups,
        net_params=net_params,
        stage_params=stage_params,
        random_state=args.seed,
    )
    for name, net in _networks(model):
        if net.best_epoch_ is not None:
            acc = net.history_[net.best_epoch_ - 1, "valid_acc"]
            console.out(
                f"{name}: best epoch {net.best_epoch_} of {len(net.history_)}, "
                f"accuracy {100 * acc:.2f}% on the held-out training subjects."
            )
    _save_model(model, model_path)
    console.out(
        f"Saved {label} model ({_size(model_path.stat().st_size)}, input "
        f"{_input_shape(model)[0]}x{_input_shape(model)[1]} px) to {model_path}"
    )
    return EXIT_OK


def _size(n_bytes):
    return (
        f"{n_bytes / 2**20:.1f} MiB"
        if n_bytes >= 2**20
        else f"{n_bytes / 2**10:.0f} KiB"
    )


def _networks(model):
    """(name, LeukoNetClassifier) of a fitted stage."""
    from ._classifier import LeukoNetClassifier

    if isinstance(model, LeukoNetClassifier):
        return [("network", model)]
    if hasattr(model, "steps"):
        return _networks(model.steps[-1][1])
    named = getattr(model, "named_estimators_", None)
    if named is not None:
        found = []
        for name, est in named.items():
            found.extend((name, net) for _, net in _networks(est))
        return found
    return []


def _input_shape(model):
    nets = _networks(model)
    if not nets:
        raise CLIError(
            f"the model is a {type(model).__name__}, not a sklearn-leuko stage; "
            "save one with 'sklearn-leuko train'."
        )
    return nets[0][1].input_shape_


def _save_model(model, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from ._persistence import save_safetensors

        save_safetensors(model, path)
    else:
        import joblib

        joblib.dump(model, path)


def _load_model(path, device):
    path = Path(path)
    if not path.exists():
        raise CLIError(f"--model {path}: no such file.")
    if path.is_dir():
        raise CLIError(f"--model {path}: is a folder, not a model file.")
    try:
        if path.suffix == ".safetensors":
            from ._persistence import load_safetensors

            model = load_safetensors(path, device=device)
        else:
            import joblib

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                model = joblib.load(path)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        raise CLIError(
            f"--model {path}: cannot load the model ({type(exc).__name__}: "
            f"{_one_line(exc)}); is it a file "
            "written by 'sklearn-leuko train'?"
        ) from exc
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise CLIError(
            f"--model {path}: holds a {type(model).__name__}, not a fitted classifier "
            "written by 'sklearn-leuko train'."
        )
    return model


# ---------------------------------------------------------------- predict
def _natural_key(path):
    import re

    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _cmd_predict(args, console):
    import csv

    from PIL import Image

    from .datasets import read_images

    if not Path(args.model).exists():
        raise CLIError(f"--model {args.model}: no such file.")
    folder = Path(args.images)
    if not folder.exists():
        raise CLIError(f"--images {folder}: no such folder.")
    if not folder.is_dir():
        raise CLIError(f"--images {folder}: not a folder; pass the folder of images.")
    paths = sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES
        ),
        key=_natural_key,
    )
    if not paths:
        raise CLIError(
            f"--images {folder}: no image files ({', '.join(_IMAGE_SUFFIXES)}) in it."
        )
    out = Path(args.out)
    if out.is_dir():
        raise CLIError(f"--out {out}: is a folder; pass a CSV file name.")
    model = _load_model(args.model, args.device)
    height, width = _input_shape(model)[:2]
    if height != width:
        raise CLIError(
            f"the model expects {height}x{width} images; only square inputs are supported."
        )
    classes = [str(c) for c in model.classes_]
    if "all" not in classes:
        raise CLIError(f"the model's classes are {classes}; expected 'all' and 'hem'.")
    column = classes.index("all")

    resized = 0
    for path in paths:
        try:
            with Image.open(path) as img:
                if img.size != (width, height):
                    resized += 1
        except Exception as exc:
            raise CLIError(f"cannot read image {path}: {_one_line(exc)}") from exc
    if resized:
        console.info(
            f"Note: {resized} of {len(paths)} images "
            f"{'is' if resized == 1 else 'are'} not {width}x{height} px; "
            f"{'it is' if resized == 1 else 'they are'} centre cropped or padded with black to {width}x{height} px, the "
            "model's input size."
        )

    from tqdm.auto import tqdm

    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {"all": 0, "hem": 0}
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "predicted_label", "p_all"])
        bar = tqdm(total=len(paths), disable=args.quiet, unit="image", leave=False)
        try:
            for start in range(0, len(paths), args.batch_size):
                chunk = paths[start : start + args.batch_size]
                images = read_images(chunk, image_size=height)
                proba = model.predict_proba(images)
                for path, p in zip(chunk, proba[:, column], strict=True):
                    label = "all" if p >= 0.5 else "hem"
                    counts[label] += 1
                    writer.writerow([path.name, label, f"{p:.6f}"])
                bar.update(len(chunk))
        finally:
            bar.close()
    os.replace(tmp, out)
    console.out(
        f"Wrote {len(paths)} predictions ({counts['all']} all, {counts['hem']} hem) to {out}"
    )
    return EXIT_OK


# ------------------------------------------------------------------- main
_COMMANDS = {"cv": _cmd_cv, "train": _cmd_train, "predict": _cmd_predict}


def main(argv=None):
    """Run the ``sklearn-leuko`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``None`` uses ``sys.argv[1:]``.

    Returns
    -------
    exit_code : int
        0 success, 1 data or model error, 2 usage error, 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    console = _Console(args.quiet)
    old_showwarning = warnings.showwarning
    warnings.showwarning = _show_warning
    old_sigint = _catch_sigint()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("once")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            return _COMMANDS[args.command](args, console)
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except (KeyboardInterrupt, _Interrupted):
        hint = ""
        if getattr(args, "checkpoint_dir", None):
            hint = "; run the same command with --resume to continue"
        print(f"{PROG}: interrupted{hint}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except _UsageError as exc:
        print(
            f"{PROG}: error: {exc} (see '{PROG} {args.command} --help')",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_USAGE
    except Exception as exc:
        if args.debug:
            raise
        prefix = (
            ""
            if isinstance(exc, (CLIError, ValueError, TypeError, OSError))
            else (f"unexpected {type(exc).__name__}: ")
        )
        print(
            f"{PROG}: error: {prefix}{_one_line(exc)} (add --debug for the traceback)",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_ERROR
    finally:
        warnings.showwarning = old_showwarning
        if old_sigint is not None:
            import signal

            signal.signal(signal.SIGINT, old_sigint)
