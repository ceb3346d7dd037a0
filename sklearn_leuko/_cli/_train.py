"""``sklearn-leuko train``: fit one stage on all the data and save it."""

from ._common import (
    check_checkpoint_args,
    check_data_path,
    load_data,
    net_params,
    setup_torch,
    stage_params,
)
from ._console import EXIT_OK, CLIError
from ._models import fitted_networks, input_shape, size_text


def cmd_train(args, console):
    check_checkpoint_args(args)
    check_data_path(args)
    from .._persistence import save_model
    from .._registry import get_stage
    from ..evaluation import fit_stage
    from ..utils._files import check_writable

    try:
        # Before the training, not after it.
        model_path = check_writable(args.model, "--model")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    setup_torch(args)
    X, y, groups, _ = load_data(args, console)
    spec = get_stage(args.stage)
    what = (
        f"the {' then the '.join(p.label for p in spec.part_specs())} network, "
        "then the fusion layer"
        if spec.is_fusion
        else "one network"
    )
    console.info(
        f"Training {spec.label} on {len(y)} cells: {what} ({args.epochs} epochs per "
        "network)."
    )
    model = fit_stage(
        spec.name,
        X,
        y,
        groups,
        net_params=net_params(args, verbose=1),
        stage_params=stage_params(args, [spec.name]),
        random_state=args.seed,
    )
    for name, net in fitted_networks(model):
        if net.best_epoch_ is not None:
            acc = net.history_[net.best_epoch_ - 1, "valid_acc"]
            console.out(
                f"{name}: best epoch {net.best_epoch_} of {len(net.history_)}, "
                f"accuracy {100 * acc:.2f}% on the held-out training subjects."
            )
        else:
            # No inner split held both classes (InnerSplitWarning above): an
            # accuracy on one class would mean nothing, so none is printed.
            console.out(
                f"{name}: last epoch of {len(net.history_)} kept, trained on every "
                "cell; no held-out accuracy (no inner validation split held both "
                "classes: use more subjects of each class)."
            )
    from ..datasets import record_geometry

    record_geometry(model, args.data_description["geometry"])
    save_model(model, model_path)
    height, width = input_shape(model)[:2]
    console.out(
        f"Saved {spec.label} model ({size_text(model_path.stat().st_size)}, input "
        f"{height}x{width} px) to {model_path}"
    )
    return EXIT_OK
