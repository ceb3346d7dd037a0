"""The paper's configurations ("stages") as ready-to-fit estimators."""

import os

from sklearn.pipeline import Pipeline

from ._classifier import LeukoNetClassifier
from .ensemble._fusion import FeatureFusionClassifier, default_final_estimator

__all__ = ["STAGES", "make_stage"]

STAGES = ("1", "2", "2C", "3", "3C", "vgg11")

# Stage name -> device-side preprocessing and architecture of its network.
_SINGLE = {
    "1": ("od", "basic"),
    "2": ("log_dct", "basic"),
    "2C": ("od+log_dct", "basic"),
    "vgg11": ("od", "vgg11"),
}
# Fusion stage -> (name, single stage) of its two networks, Stage-1 first.
_FUSION = {
    "3": (("stage1", "1"), ("stage2", "2")),
    "3C": (("stage1", "1"), ("stage2c", "2C")),
}
# Fixed by the stage itself: changing them makes another stage.
_STAGE_DEFINED = ("preprocessing", "architecture")
_FUSION_PARAMS = ("cv", "final_estimator", "n_jobs")


def _canonical(name):
    lookup = {stage.lower(): stage for stage in STAGES}
    key = str(name).strip().lower() if isinstance(name, (str, int)) else None
    # "stage-3c", "Stage3C" and the like are accepted too.
    if key is not None:
        for prefix in ("stage-", "stage_", "stage"):
            if key.startswith(prefix) and key[len(prefix) :] in lookup:
                key = key[len(prefix) :]
                break
    if key not in lookup or isinstance(name, bool):
        raise ValueError(
            f"Unknown stage {name!r}; valid stages are {', '.join(map(repr, STAGES))} "
            "(case-insensitive)."
        )
    return lookup[key]


def _net_param_names():
    return tuple(
        sorted(set(LeukoNetClassifier().get_params(deep=False)) - set(_STAGE_DEFINED))
    )


def _single(stage, net_params):
    preprocessing, architecture = _SINGLE[stage]
    net = LeukoNetClassifier(
        preprocessing=preprocessing, architecture=architecture, **net_params
    )
    return Pipeline([("net", net)])


def make_stage(name, **params):
    """Build one of the paper's configurations as an unfitted estimator.

    All networks use the "device form": they take the raw uint8 images
    ``(n, H, W, 3)`` and preprocess each batch on the device after
    augmentation (see :class:`~sklearn_leuko.LeukoNetClassifier`).

    ========  ==============================================================
    stage     estimator (Mourya et al. 2018, section 4 and Tables 1-2)
    ========  ==============================================================
    ``"1"``   ``Pipeline([("net", LeukoNetClassifier(preprocessing="od"))])``:
              Basic Network on optical density / stain concentrations.
    ``"2"``   the same with ``preprocessing="log_dct"`` (thresholded log-DCT).
    ``"2C"``  ``preprocessing="od+log_dct"``: both inputs, channels stacked.
    ``"vgg11"`` ``LeukoNetClassifier(preprocessing="od", architecture="vgg11")``
              in the same Pipeline: the first baseline ("OD w/ VGG 11").
    ``"3"``   :class:`~sklearn_leuko.FeatureFusionClassifier` of
              ``("stage1", make_stage("1"))`` and ``("stage2", make_stage("2"))``.
    ``"3C"``  the same with ``("stage2c", make_stage("2C"))`` as second network.
    ========  ==============================================================

    Parameters
    ----------
    name : {"1", "2", "2C", "3", "3C", "vgg11"}
        The stage; case-insensitive (``"3c"`` is ``"3C"``).
    **params
        Any :class:`~sklearn_leuko.LeukoNetClassifier` parameter except
        ``preprocessing`` and ``architecture`` (the stage fixes them):
        ``widths``, ``max_epochs``, ``batch_size``, ``lr``, ``activation``,
        ``device``, ``random_state``, ... They apply to every network of the
        stage, with one exception that follows the paper: in the fusion
        stages ``augment`` (and only ``augment``) applies to the Stage-1
        network alone, and the Stage-2 / Stage-2C network is trained without
        augmentation ("the w/o tag in the hybrid experiment represents the
        training configuration of the corresponding Stage-1 model"; the
        paper did not augment Stage-2). So ``make_stage("3C",
        augment="all")`` is "Stage-3C w/ aug" and ``augment="minority"``
        "Stage-3C w/ Normal aug". A ``checkpoint_dir`` gets one sub-folder
        per network (``<checkpoint_dir>/stage1``, ``.../stage2c``).

        For ``"3"`` and ``"3C"`` also the fusion parameters ``cv``,
        ``final_estimator`` and ``n_jobs`` of
        :class:`~sklearn_leuko.FeatureFusionClassifier`. The fusion's final
        estimator is set explicitly (default:
        :func:`~sklearn_leuko.ensemble.default_final_estimator`), so its
        parameters can be tuned by name, e.g.
        ``final_estimator__C``.

    Returns
    -------
    estimator : Pipeline or FeatureFusionClassifier
        Unfitted. Give it the subject IDs so every inner validation split is
        by subject: a fusion stage with ``fit(X, y, groups=subject_ids)``, a
        single stage (a Pipeline) with ``fit(X, y, net__groups=subject_ids)``
        (with metadata routing on, ``groups=subject_ids`` works for both).

    Raises
    ------
    ValueError
        Unknown stage name or parameter; the message lists the valid ones.

    Examples
    --------
    >>> from sklearn_leuko import make_stage
    >>> stage = make_stage("3c", widths=(4, 4, 8, 8, 8, 8), max_epochs=2, augment="all")
    >>> stage.get_params()["stage1__net__augment"], stage.get_params()["stage2c__net__augment"]
    ('all', 'off')
    >>> stage.get_params()["stage2c__net__preprocessing"]
    'od+log_dct'
    """
    stage = _canonical(name)
    net_names = _net_param_names()
    fusion = stage in _FUSION
    allowed = net_names + (_FUSION_PARAMS if fusion else ())
    for key in params:
        if key in _STAGE_DEFINED:
            raise ValueError(
                f"make_stage({stage!r}): {key!r} is fixed by the stage (see STAGES and the "
                "docstring); build LeukoNetClassifier yourself to change it."
            )
        if key not in allowed:
            hint = (
                f" ({key!r} is a fusion parameter, only for stages '3' and '3C'.)"
                if key in _FUSION_PARAMS
                else ""
            )
            raise ValueError(
                f"make_stage({stage!r}) got an unknown parameter {key!r}.{hint} Valid "
                f"parameters: {', '.join(allowed)}."
            )
    net_params = {k: v for k, v in params.items() if k in net_names}
    if not fusion:
        return _single(stage, net_params)

    fusion_params = {k: v for k, v in params.items() if k in _FUSION_PARAMS}
    if fusion_params.get("final_estimator") is None:
        fusion_params["final_estimator"] = default_final_estimator()
    (name1, stage1), (name2, stage2) = _FUSION[stage]
    first_params = dict(net_params)
    second_params = {**net_params, "augment": "off"}
    if net_params.get("checkpoint_dir") is not None:
        # Two networks must not overwrite each other's checkpoints.
        first_params["checkpoint_dir"] = os.path.join(
            net_params["checkpoint_dir"], name1
        )
        second_params["checkpoint_dir"] = os.path.join(
            net_params["checkpoint_dir"], name2
        )
    return FeatureFusionClassifier(
        [
            (name1, _single(stage1, first_params)),
            (name2, _single(stage2, second_params)),
        ],
        **fusion_params,
    )
