"""Parameters of LeukoNetClassifier: constraints and skorch-style pass-through.

skorch routes keyword arguments by prefix (``optimizer__betas`` goes to the
optimizer, ``iterator_train__num_workers`` to the training DataLoader, ...).
:class:`~sklearn_leuko.LeukoNetClassifier` accepts the same prefixed
arguments, stores them as attributes (so ``get_params``, ``set_params``,
``clone`` and ``GridSearchCV`` see them) and hands them to the skorch net it
builds in ``fit``.
"""

import difflib
from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import HasMethods, Interval, Options, StrOptions

__all__ = [
    "AUGMENT_MODES",
    "PARAMETER_CONSTRAINTS",
    "PASS_THROUGH_PREFIXES",
    "check_pass_through",
    "is_pass_through_param",
]

#: Prefixes routed to the skorch net, as in ``skorch.NeuralNet``.
PASS_THROUGH_PREFIXES = (
    "optimizer__",
    "criterion__",
    "iterator_train__",
    "iterator_valid__",
    "callbacks__",
)

# Set by the classifier from its own parameters or required by its data path:
# a prefixed argument must not silently contradict them.
_OWNED = {
    "optimizer__lr": "lr",
    "optimizer__weight_decay": "weight_decay",
    "optimizer__momentum": "momentum",
    "iterator_train__batch_size": "batch_size",
    "iterator_train__collate_fn": None,
    "iterator_valid__collate_fn": None,
    "iterator_train__drop_last": None,
    # The batch order comes from BatchLoader's own permutation (the same for
    # device-resident and streamed data); a sampler would contradict it.
    "iterator_train__sampler": None,
    "iterator_valid__sampler": None,
    "iterator_train__batch_sampler": None,
    "iterator_valid__batch_sampler": None,
    "iterator_train__device": "device",
    "iterator_valid__device": "device",
}

#: Accepted values of ``augment`` and the mode each one means.
AUGMENT_MODES = {
    False: "off",
    "off": "off",
    None: "off",
    True: "all",
    "all": "all",
    "minority": "minority",
    "normal": "normal",
}

PARAMETER_CONSTRAINTS = {
    "preprocessing": [
        None,
        StrOptions({"od", "log_dct", "od+log_dct"}),
        HasMethods(["fit", "transform"]),
    ],
    "stain_layer": [StrOptions({"learnable", "fixed"})],
    "stain_matrix": [
        StrOptions({"giemsa", "cnmc", "hed", "identity", "macenko"}),
        "array-like",
    ],
    "architecture": [StrOptions({"basic", "vgg11"})],
    "widths": [None, "array-like"],
    "activation": [StrOptions({"relu", "prelu", "ptelu"})],
    "bilinear_channels": [None, Interval(Integral, 1, None, closed="left")],
    "augment": ["boolean", None, StrOptions({"off", "all", "minority", "normal"})],
    "rotation": [Interval(Real, 0, 180, closed="both")],
    "flip": ["boolean"],
    "shear": [Interval(Real, 0, 90, closed="left")],
    "blur_sigma": ["array-like"],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    # 1 is refused in fit with the reason (batch norm), not here.
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "lr": [Interval(Real, 0, None, closed="neither")],
    "optimizer": [StrOptions({"adam", "adamw", "sgd"})],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "momentum": [Interval(Real, 0, 1, closed="both")],
    "validation_fraction": [None, Interval(Real, 0, 1, closed="left")],
    "patience": [None, Interval(Integral, 1, None, closed="left")],
    "device": [str, torch.device],
    "data_on_device": [StrOptions({"auto"}), "boolean"],
    "mixed_precision": [StrOptions({"auto"}), "boolean"],
    "channels_last": [StrOptions({"auto"}), "boolean"],
    "preprocessing_fit_samples": [Interval(Integral, 1, None, closed="left")],
    "checkpoint_dir": [None, str, HasMethods(["__fspath__"])],
    "resume": ["boolean"],
    "verbose": ["verbose"],
    "progress_bar": ["boolean"],
    "tta": ["boolean", Options(Integral, {1, 2, 4, 8})],
    "compile": ["boolean"],
    "callbacks": [None, list],
    "random_state": ["random_state"],
}


def is_pass_through_param(name):
    """True for a skorch-style prefixed parameter name (``optimizer__betas``)."""
    return isinstance(name, str) and name.startswith(PASS_THROUGH_PREFIXES)


def check_pass_through(kwargs, known):
    """Validate the extra keyword arguments of LeukoNetClassifier.

    Parameters
    ----------
    kwargs : dict
        The keyword arguments that are not named parameters.
    known : iterable of str
        The named parameters, for "did you mean" hints.

    Raises
    ------
    TypeError
        An argument that is neither a named parameter nor prefixed.
    ValueError
        A prefixed argument that duplicates a named parameter or would break
        the data path.
    """
    for key in sorted(kwargs):
        if not is_pass_through_param(key):
            close = difflib.get_close_matches(
                key, [*known, *(p + "..." for p in PASS_THROUGH_PREFIXES)], n=1
            )
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"LeukoNetClassifier got an unexpected parameter {key!r}.{hint} Named "
                "parameters are listed in the docstring; skorch-style arguments "
                f"start with one of {', '.join(PASS_THROUGH_PREFIXES)}."
            )
        if key in _OWNED:
            own = _OWNED[key]
            fix = (
                f"set {own}= instead"
                if own is not None
                else "the classifier's data path sets it"
            )
            raise ValueError(
                f"LeukoNetClassifier: {key!r} cannot be passed through to skorch: {fix}."
            )
