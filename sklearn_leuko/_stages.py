"""The paper's configurations ("stages") as ready-to-fit estimators.

The stages themselves are described in :mod:`sklearn_leuko._registry`;
:func:`make_stage` turns a registry entry into an unfitted estimator.
"""

from ._registry import get_stage, network_checkpoint_dir

__all__ = ["make_stage", "stage_networks"]

# Fixed by the stage itself: changing them makes another stage.
_STAGE_DEFINED = ("preprocessing", "architecture")
_FUSION_PARAMS = ("cv", "final_estimator", "n_jobs")
# Network parameters that a fusion stage gives to the fusion instead: there
# they act at inference only (the networks' tta would also average the
# features the final layer is trained on).
_FUSION_OWNED = ("tta",)


def _net_param_names():
    from ._classifier import LeukoNetClassifier

    return tuple(
        sorted(set(LeukoNetClassifier().get_params(deep=False)) - set(_STAGE_DEFINED))
    )


def _single(spec, net_params):
    from sklearn.pipeline import Pipeline

    from ._classifier import LeukoNetClassifier

    net = LeukoNetClassifier(
        preprocessing=spec.preprocessing, architecture=spec.architecture, **net_params
    )
    return Pipeline([("net", net)])


def _check_params(spec, params, net_names):
    allowed = net_names + (_FUSION_PARAMS if spec.is_fusion else ())
    for key in params:
        if key in _STAGE_DEFINED:
            raise ValueError(
                f"make_stage({spec.name!r}): {key!r} is fixed by the stage (see "
                "STAGES and the docstring); build LeukoNetClassifier yourself to "
                "change it."
            )
        if key not in allowed and not _is_pass_through(key):
            hint = (
                f" ({key!r} is a fusion parameter, only for the fusion stages.)"
                if key in _FUSION_PARAMS
                else ""
            )
            raise ValueError(
                f"make_stage({spec.name!r}) got an unknown parameter {key!r}.{hint} "
                f"Valid parameters: {', '.join(allowed)}, and skorch-style prefixed "
                "ones such as optimizer__betas."
            )


def _is_pass_through(key):
    from ._classifier import is_pass_through_param

    return is_pass_through_param(key)


def make_stage(name, **params):
    """Build one of the paper's configurations as an unfitted estimator.

    All networks use the "device form": they take the raw uint8 images
    ``(n, H, W, 3)`` and preprocess each batch on the device after
    augmentation (see :class:`~sklearn_leuko.LeukoNetClassifier`). The
    stages are listed in :data:`~sklearn_leuko.STAGES` and described by
    :func:`~sklearn_leuko.get_stage`:

    ==========  ==============================================================
    stage       estimator (Mourya et al. 2018, section 4 and Tables 1-2)
    ==========  ==============================================================
    ``1``       ``Pipeline([("net", LeukoNetClassifier(preprocessing="od"))])``:
                Basic Network on optical density / stain concentrations.
    ``2``       the same with ``preprocessing="log_dct"`` (thresholded log-DCT).
    ``2C``      ``preprocessing="od+log_dct"``: both inputs, channels stacked.
    ``vgg11``   ``LeukoNetClassifier(preprocessing="od", architecture="vgg11")``
                in the same Pipeline: the first baseline ("OD w/ VGG 11").
    ``3``       :class:`~sklearn_leuko.FeatureFusionClassifier` of the
                Stage-1 and Stage-2 pipelines, named ``stage1`` and ``stage2``.
    ``3C``      the same with the Stage-2C pipeline, named ``stage2c``.
    ==========  ==============================================================

    Parameters
    ----------
    name : str
        The stage, one of :data:`~sklearn_leuko.STAGES`; case-insensitive,
        ``"Stage-3C"`` and ``"3c"`` are accepted too.
    **params
        Any :class:`~sklearn_leuko.LeukoNetClassifier` parameter except
        ``preprocessing`` and ``architecture`` (the stage fixes them):
        ``widths``, ``max_epochs``, ``batch_size``, ``lr``, ``activation``,
        ``device``, ``random_state``, skorch-style prefixed parameters such
        as ``optimizer__betas``, ... They apply to every network of the
        stage, with one exception that follows the paper: in the fusion
        stages ``augment`` (and only ``augment``) applies to the Stage-1
        network alone, and the Stage-2 / Stage-2C network is trained without
        augmentation ("the w/o tag in the hybrid experiment represents the
        training configuration of the corresponding Stage-1 model"; the
        paper did not augment Stage-2). So a fusion stage with
        ``augment="all"`` is "Stage-3C w/ aug" and with ``augment="normal"``
        "Stage-3C w/ Normal aug". A ``checkpoint_dir`` gets one sub-folder
        per network (``<checkpoint_dir>/stage1``, ``.../stage2c``). ``tta``
        (test-time augmentation) goes to the
        :class:`~sklearn_leuko.FeatureFusionClassifier` of a fusion stage,
        which applies it to every network at inference.

        For the fusion stages also the fusion parameters ``cv``,
        ``final_estimator`` and ``n_jobs`` of
        :class:`~sklearn_leuko.FeatureFusionClassifier`. The fusion's final
        estimator is set explicitly (default:
        :func:`~sklearn_leuko.ensemble.default_final_estimator`), so its
        parameters can be tuned by name, e.g. ``final_estimator__C``.

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
    >>> params = stage.get_params()
    >>> params["stage1__net__augment"], params["stage2c__net__augment"]
    ('all', 'off')
    >>> params["stage2c__net__preprocessing"]
    'od+log_dct'
    """
    spec = get_stage(name)
    net_names = _net_param_names()
    _check_params(spec, params, net_names)
    if not spec.is_fusion:
        return _single(spec, params)

    from .ensemble import FeatureFusionClassifier, default_final_estimator

    fusion_keys = _FUSION_PARAMS + _FUSION_OWNED
    net_params = {k: v for k, v in params.items() if k not in fusion_keys}
    fusion_params = {k: v for k, v in params.items() if k in fusion_keys}
    if fusion_params.get("final_estimator") is None:
        fusion_params["final_estimator"] = default_final_estimator()
    parts = []
    for part in spec.part_specs():
        part_params = dict(net_params)
        if part.name not in spec.augmented_parts:
            part_params["augment"] = "off"
        if net_params.get("checkpoint_dir") is not None:
            # Two networks must not overwrite each other's checkpoints.
            part_params["checkpoint_dir"] = network_checkpoint_dir(
                net_params["checkpoint_dir"], part.network_name
            )
        parts.append((part.network_name, _single(part, part_params)))
    return FeatureFusionClassifier(parts, **fusion_params)


def stage_networks(model):
    """The fitted networks of a stage, by name.

    Parameters
    ----------
    model : estimator
        A fitted stage: a :class:`~sklearn_leuko.LeukoNetClassifier`, a
        Pipeline ending in one (the single stages), or a
        :class:`~sklearn_leuko.FeatureFusionClassifier` of such pipelines
        (the fusion stages).

    Returns
    -------
    networks : list of (str, LeukoNetClassifier)
        ``[("network", clf)]`` for a single network; the fused parts' names
        (``"stage1"``, ``"stage2c"``) for a fusion; ``[]`` when the model
        holds no network.

    Examples
    --------
    >>> from sklearn_leuko import make_stage, stage_networks
    >>> from sklearn_leuko.datasets import make_cells
    >>> data = make_cells(n_subjects=6, cells_per_subject=4, image_size=24,
    ...                   random_state=0)
    >>> stage = make_stage("3C", widths=(4,) * 6, max_epochs=1, verbose=0)
    >>> stage = stage.fit(data.images, data.target, groups=data.groups)
    >>> [name for name, _ in stage_networks(stage)]
    ['stage1', 'stage2c']
    """
    from ._classifier import LeukoNetClassifier

    if isinstance(model, LeukoNetClassifier):
        return [("network", model)]
    if hasattr(model, "steps"):
        return stage_networks(model.steps[-1][1])
    named = getattr(model, "named_estimators_", None)
    if named is None:
        return []
    found = []
    for name, est in named.items():
        found.extend((name, net) for _, net in stage_networks(est))
    return found
