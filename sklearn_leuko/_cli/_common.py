"""What the subcommands share: the data, the network settings, torch set-up."""

import os
from pathlib import Path

import numpy as np

from ._console import CLIError, UsageError, one_line
from ._parser import SYNTHETIC_DEFAULTS


def load_data(args, console):
    """Images, labels, subject IDs and file names, from --data or make_cells."""
    if args.data is None:
        from ..datasets import make_cells

        if args.segment:
            raise UsageError(
                "--segment needs --data: the synthetic cells are already alone on "
                "black."
            )

        size = args.image_size or SYNTHETIC_DEFAULTS["image_size"]
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
            f"synthetic cells (make_cells, n_subjects={args.n_subjects}, "
            f"cells_per_subject={args.cells_per_subject}, image_size={size}, "
            f"subject_variability={args.subject_variability:g}, seed {args.seed})"
        )
    else:
        from ..datasets import load_images

        root = check_data_path(args)
        console.info(f"Reading images from {root} ...")
        try:
            data = load_images(
                root,
                image_size=args.image_size,
                crop_size=args.crop_size,
                center=args.center,
                no_subject=args.no_subject,
                segment=segmenter(args),
            )
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        source = data.source
    groups = data.groups.astype(str)
    target = data.target.astype(str)
    per_class = ", ".join(
        f"{label}: {int((target == label).sum())} cells from "
        f"{len(set(groups[target == label]))} subjects"
        for label in sorted(set(target.tolist()))
    )
    side = int(data.images.shape[1])
    # make_cells gives its geometry (a 450 px cell resized); if not, whole images
    fallback = {"source_size": side, "crop_size": side, "image_size": side}
    geometry = dict(data.get("geometry") or fallback)
    console.info(
        f"Data: {source}: {len(target)} cells of {data.images.shape[1]}x"
        f"{data.images.shape[2]} px from {len(set(groups))} subjects ({per_class}); "
        f"geometry: {geometry['crop_size']} px cut from a {geometry['source_size']} "
        f"px canvas, resized to {geometry['image_size']} px."
    )
    args.data_description = {
        "source": source,
        "per_class": per_class,
        "geometry": geometry,
    }
    return data.images, target, groups, np.asarray(data.filenames).astype(str)


def segmenter(args):
    """The CellSegmenter of ``--segment``, or None."""
    if not args.segment:
        return None
    from ..preprocessing import CellSegmenter

    return CellSegmenter(on_failure=args.segment)


def check_data_path(args):
    if args.data is None:
        return None
    root = Path(args.data)
    if not root.exists():
        raise CLIError(f"--data {args.data}: no such folder or CSV file.")
    return root


def net_params(args, verbose=0):
    """LeukoNetClassifier parameters of every network, from the options."""
    params = {
        "widths": args.widths,
        "max_epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "augment": args.augment,
        "activation": args.activation,
        "device": args.device,
        "random_state": args.seed,
        "verbose": 0 if args.quiet else verbose,
    }
    if getattr(args, "checkpoint_dir", None) is not None:
        params["checkpoint_dir"] = args.checkpoint_dir
        params["resume"] = bool(args.resume)
    return params


def stage_params(args, stages):
    """Per-stage overrides: the VGG-11 widths for the stages built on VGG-11."""
    from .._registry import get_stage

    return {
        name: {"widths": args.vgg_widths}
        for name in stages
        if get_stage(name).architecture == "vgg11"
    }


def check_checkpoint_args(args):
    """The rules of ``checkpoint_dir`` (see LeukoNetClassifier), checked before
    the data are read: a writable folder, and no run's checkpoints overwritten
    without ``--resume``."""
    if args.resume and args.checkpoint_dir is None:
        raise UsageError(
            "--resume needs --checkpoint-dir, the folder of the interrupted run"
        )
    if args.checkpoint_dir is None:
        return
    from .._classifier._callbacks import CHECKPOINT_FILENAME, check_checkpoint_dir

    folder = Path(args.checkpoint_dir)
    try:
        check_checkpoint_dir(folder)
    except ValueError as exc:
        raise CLIError(f"--checkpoint-dir: {exc}") from None
    if not args.resume:
        found = sorted(folder.rglob(CHECKPOINT_FILENAME))
        if found:
            raise CLIError(
                f"--checkpoint-dir {folder} already holds checkpoints of a run (e.g. "
                f"{found[0]}); add --resume to continue that run (same options and "
                "data), or delete them, or choose another folder."
            )


def setup_torch(args):
    import torch

    threads = args.threads
    if threads is None and "OMP_NUM_THREADS" not in os.environ:
        # Half the logical cores: small networks gain little from more
        # threads, and threads competing with other processes for the cores
        # slow training down many times (measured: 16x on a busy 2-core CPU).
        threads = min(torch.get_num_threads(), max(1, (os.cpu_count() or 2) // 2))
    if threads is not None:
        torch.set_num_threads(threads)
    from ..utils import resolve_device

    try:
        resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(f"--device {args.device}: {one_line(exc)}") from None
