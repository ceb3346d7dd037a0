"""The argument parser of ``sklearn-leuko``: options, their types and help.

Only :mod:`argparse` and the torch-free stage registry are imported, so
``--help`` is instant.
"""

import argparse

from .._registry import DEFAULT_PROTOCOL_STAGES, PAPER_BEST_STAGE, STAGES, get_stage
from ._console import EXIT_USAGE, PROG

# Defaults of the synthetic demo, chosen so that ``sklearn-leuko cv`` (stages
# 1, 2, 2C, 3, 3C, 4 folds) runs in a few minutes on a 2-core CPU.
SYNTHETIC_DEFAULTS = {
    "n_subjects": 40,
    "cells_per_subject": 30,
    "image_size": 72,
    "subject_variability": 1.0,
}
_DEFAULT_WIDTHS = "8,8,16,16,16,16"
_DEFAULT_VGG_WIDTHS = "8,8,16,16,16,16,16,16"


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
    try:
        return get_stage(text).name
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown stage {text!r}; choose from {', '.join(STAGES)}"
        ) from None


def _stage_list():
    """``1 (Basic Network on ...), ...`` for help texts, from the registry."""
    return ", ".join(f"{name} ({get_stage(name).description})" for name in STAGES)


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
        help="your images: a CSV with path,label,subject columns (paths relative "
        "to the CSV), a folder of one sub-folder per class, or the C-NMC 2019 "
        "training data (holding fold_0, fold_1, fold_2, or up to three levels "
        "above them; subjects and labels from the file names)",
    )
    group.add_argument(
        "--crop-size",
        type=_positive_int,
        metavar="PX",
        help="--data: cut a square of this side around each cell's centroid at "
        "native scale before resizing (350 of 450 as in the paper; default: "
        "the whole image)",
    )
    group.add_argument(
        "--no-subject",
        choices=("error", "per_image"),
        default="error",
        help="--data: images without a subject are an error, or each is its own "
        "subject (per_image; only honest when no two share a patient) "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--image-size",
        type=_positive_int,
        metavar="PX",
        help="image side in pixels. Synthetic data: the generated size "
        f"(default {SYNTHETIC_DEFAULTS['image_size']}). --data: resize every "
        "image (after --crop-size) to this size (default: the images' own size, "
        "which must then be the same for all)",
    )
    _add_center(group)
    _add_segment(group)
    group.add_argument(
        "--n-subjects",
        type=_positive_int,
        default=SYNTHETIC_DEFAULTS["n_subjects"],
        metavar="N",
        help="synthetic data: number of subjects, about 2/3 of them leukemic; "
        "fewer than about 30 and the networks memorise subjects instead of "
        "learning cells (default: %(default)s)",
    )
    group.add_argument(
        "--cells-per-subject",
        type=_positive_int,
        default=SYNTHETIC_DEFAULTS["cells_per_subject"],
        metavar="N",
        help="synthetic data: cells per subject (default: %(default)s)",
    )
    group.add_argument(
        "--subject-variability",
        type=_non_negative_float,
        default=SYNTHETIC_DEFAULTS["subject_variability"],
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


def _add_segment(group):
    group.add_argument(
        "--segment",
        nargs="?",
        const="raise",
        choices=("raise", "flag"),
        metavar="raise|flag",
        help="--data/--images are smear crops (one white cell among red cells on a "
        "light background): cut each white cell out onto black, centred, as C-NMC "
        "cells are (CellSegmenter, before --crop-size and --image-size). A crop "
        "without exactly one white cell is an error naming the files (raise, the "
        "default), or a warning naming them (flag; the crop is used as segmented, "
        "all black when no cell was found)",
    )


def _add_center(group):
    group.add_argument(
        "--center",
        choices=("centroid", "image"),
        default="centroid",
        help="when an image is cropped or padded to the size: put the centroid of "
        "its cell (non-black pixels) at the centre, as the paper's 350x350 canvas "
        "does, or keep the image centre (default: %(default)s)",
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
        choices=("off", "all", "normal", "minority"),
        default="off",
        help="data augmentation (flips, rotation, shear, blur) in image space: "
        "'all' augments every training cell ('w/ aug' in the paper), 'normal' "
        "only the normal (hem) cells, resampled to the count of the 'all' cells "
        "('w/ Normal aug'), 'minority' the same for whichever class is smaller. "
        "In the fusion stages it applies to the Stage-1 network only, as in the "
        "paper (default: %(default)s)",
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
    from .. import __version__

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
        default=list(DEFAULT_PROTOCOL_STAGES),
        metavar="STAGE",
        help=f"stages to evaluate, from {_stage_list()} (default: "
        f"{' '.join(DEFAULT_PROTOCOL_STAGES)})",
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
        "--epoch-selection",
        choices=("inner", "validation_fold"),
        default="inner",
        help="how each network's epoch is chosen: 'inner' on held-out training "
        "subjects (honest, default) or 'validation_fold' on the fold that is "
        "reported, as the paper did (optimistic; to compare with its numbers)",
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
        "--html",
        action="store_true",
        help="also write report.html into --output: one self-contained file "
        "(images embedded, no JavaScript, opens offline) with the settings and "
        "versions, Table 2, ROC AUC and subject tables, ROC, calibration and "
        "training curves, and the most confidently misclassified test cells with "
        "their Grad-CAM heatmaps",
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
        default=PAPER_BEST_STAGE,
        help=f"stage to fit: {', '.join(STAGES)} (default: %(default)s, the "
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
        "Images are brought to the model's training geometry: the same share "
        "of the canvas is cut around the cell's centroid (the whole image for a "
        "model trained on whole cells, e.g. the synthetic default) and resized "
        "to the model's input (a note says how many were resized).",
    )
    group = predict.add_argument_group("prediction")
    _add_center(group)
    _add_segment(group)
    group.add_argument(
        "--model",
        required=True,
        metavar="PATH",
        help="model file written by 'train' (.joblib: only from sources you "
        "trust, loading it runs code; .safetensors: safe)",
    )
    inputs = group.add_mutually_exclusive_group(required=True)
    inputs.add_argument(
        "--images",
        metavar="DIR",
        help="folder of cell images (not searched recursively)",
    )
    inputs.add_argument(
        "--data",
        metavar="PATH",
        help="the images of a CSV with a path column (paths relative to the CSV), "
        "of class folders or of a C-NMC tree, in their order; the output names "
        "each image by its path relative to the CSV or folder",
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
    group.add_argument(
        "--tta",
        type=int,
        choices=(1, 2, 4, 8),
        default=None,
        metavar="N",
        help="test-time augmentation: average each image's prediction over N exact "
        "flips and 90-degree rotations (1: none, 2: + left-right flip, 4: all "
        "flips, 8: flips and rotations); takes N times as long (default: the "
        "model's own setting, none unless it was saved with one)",
    )
    _add_common(predict)
    return parser
