"""The registry of LeukoNet's stages: the only place that knows each stage.

Mourya et al. (2018), section 4 and Tables 1-2, define the configurations
("stages") compared in the paper. Each is described here once, by a
:class:`StageSpec`: its name and aliases, its Table-2 label, the
preprocessing and architecture of its network, or, for the hybrid stages,
the stages whose networks it fuses and which of them takes the
augmentation. :func:`~sklearn_leuko.make_stage`, the evaluation protocol,
the command line, persistence and the report read this table; adding a
stage means adding one entry to ``_SPECS``.

This module imports neither torch nor scikit-learn, so the command line can
read it at start-up.
"""

import os
from dataclasses import dataclass

__all__ = [
    "DEFAULT_PROTOCOL_STAGES",
    "PAPER_BEST_STAGE",
    "STAGES",
    "StageSpec",
    "get_stage",
    "network_checkpoint_dir",
    "network_stages",
]


@dataclass(frozen=True)
class StageSpec:
    """One stage of the paper.

    Parameters
    ----------
    name : str
        Canonical name, as accepted by :func:`~sklearn_leuko.make_stage`.
    label : str
        Row label in Table 2.
    description : str
        One line for ``--help`` texts and reports.
    network_name : str
        Name of the stage's network when it is part of a fusion stage (the
        step name in :class:`~sklearn_leuko.FeatureFusionClassifier`) and of
        its checkpoint sub-folder. Empty for fusion stages.
    preprocessing : str or None, default=None
        ``LeukoNetClassifier(preprocessing=...)`` of a single-network stage.
    architecture : str or None, default=None
        ``LeukoNetClassifier(architecture=...)`` of a single-network stage.
    parts : tuple of str, default=()
        Fusion stages: the single-network stages whose trained networks are
        fused, Stage-1 first.
    augmented_parts : tuple of str, default=()
        Fusion stages: the parts that take the stage's ``augment`` setting;
        the others train without augmentation.
    aliases : tuple of str, default=()
        Other accepted names (matched case-insensitively, like ``name``).
    """

    name: str
    label: str
    description: str
    network_name: str = ""
    preprocessing: str | None = None
    architecture: str | None = None
    parts: tuple[str, ...] = ()
    augmented_parts: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    @property
    def is_fusion(self):
        """True for the hybrid stages that fuse the features of other stages."""
        return bool(self.parts)

    def part_specs(self):
        """The :class:`StageSpec` of each fused network (empty for single stages)."""
        return tuple(get_stage(part) for part in self.parts)


_SPECS = (
    StageSpec(
        name="1",
        label="Stage-1",
        description="Basic Network on optical density (stain deconvolution)",
        network_name="stage1",
        preprocessing="od",
        architecture="basic",
    ),
    StageSpec(
        name="2",
        label="Stage-2",
        description="Basic Network on the thresholded log-DCT",
        network_name="stage2",
        preprocessing="log_dct",
        architecture="basic",
    ),
    StageSpec(
        name="2C",
        label="Stage-2C",
        description="Basic Network on optical density and log-DCT stacked",
        network_name="stage2c",
        preprocessing="od+log_dct",
        architecture="basic",
    ),
    StageSpec(
        name="3",
        label="Stage-3",
        description="fusion of the Stage-1 and Stage-2 networks' features",
        parts=("1", "2"),
        augmented_parts=("1",),
    ),
    StageSpec(
        name="3C",
        label="Stage-3C",
        description="fusion of the Stage-1 and Stage-2C networks' features",
        parts=("1", "2C"),
        augmented_parts=("1",),
    ),
    StageSpec(
        name="vgg11",
        label="VGG-11",
        description="VGG-11 baseline on optical density",
        network_name="vgg11",
        preprocessing="od",
        architecture="vgg11",
        aliases=("vgg", "vgg-11"),
    ),
)

_BY_NAME = {}
# Every accepted spelling, lower-cased -> canonical name.
_LOOKUP = {}


def _register(spec):
    """Add a stage to the tables (the entries of ``_SPECS`` at import)."""
    if spec.name in _BY_NAME:
        raise ValueError(f"stage {spec.name!r} is registered already.")
    for part in spec.parts:
        if get_stage(part).is_fusion:
            raise ValueError(f"stage {spec.name!r} fuses {part!r}, another fusion.")
    _BY_NAME[spec.name] = spec
    for key in (spec.name, spec.label, *spec.aliases):
        _LOOKUP[key.lower()] = spec.name


def _unregister(name):
    spec = _BY_NAME.pop(name)
    for key in (spec.name, spec.label, *spec.aliases):
        _LOOKUP.pop(key.lower(), None)


_PREFIXES = ("stage-", "stage_", "stage")


def get_stage(name):
    """The :class:`StageSpec` of a stage, by any accepted spelling.

    Names are case-insensitive; ``"Stage-3C"``, ``"stage3c"`` and ``"3c"``
    all name Stage-3C.

    Parameters
    ----------
    name : str or int
        A stage name (``int`` 1 and 2 are accepted for ``"1"`` and ``"2"``).

    Returns
    -------
    spec : StageSpec

    Raises
    ------
    ValueError
        Unknown name; the message lists the valid ones.

    Examples
    --------
    >>> from sklearn_leuko import get_stage
    >>> get_stage("stage-3c").parts
    ('1', '2C')
    """
    if isinstance(name, StageSpec):
        return name
    key = None
    if isinstance(name, (str, int)) and not isinstance(name, bool):
        key = str(name).strip().lower()
        if key not in _LOOKUP:
            for prefix in _PREFIXES:
                if key.startswith(prefix) and key[len(prefix) :] in _LOOKUP:
                    key = key[len(prefix) :]
                    break
    if key not in _LOOKUP:
        raise ValueError(
            f"Unknown stage {name!r}; valid stages are {', '.join(map(repr, STAGES))} "
            "(case-insensitive)."
        )
    return _BY_NAME[_LOOKUP[key]]


def network_stages(stages):
    """The single-network stages that ``stages`` need, in training order.

    Parameters
    ----------
    stages : iterable of str
        Stage names.

    Returns
    -------
    names : list of str
        Canonical names of the stages with their own network: the requested
        single stages and the parts of the requested fusion stages, each once.
    """
    needed = []
    for name in stages:
        spec = get_stage(name)
        for part in spec.parts if spec.is_fusion else (spec.name,):
            if part not in needed:
                needed.append(part)
    return needed


def network_checkpoint_dir(root, network_name, fold=None):
    """Checkpoint folder of one network.

    The layout: ``<root>/<network_name>`` for a network of a fitted stage
    (e.g. ``ckpt/stage1`` and ``ckpt/stage2c`` for Stage-3C), and
    ``<root>/fold<k>/<network_name>`` for the networks of fold ``k`` of the
    protocol.

    Parameters
    ----------
    root : str or path-like
    network_name : str
    fold : int or None, default=None

    Returns
    -------
    path : str
    """
    if fold is None:
        return os.path.join(root, network_name)
    return os.path.join(root, f"fold{fold}", network_name)


for _spec in _SPECS:
    _register(_spec)
del _spec

#: Canonical names of all stages, in the paper's order.
STAGES = tuple(spec.name for spec in _SPECS)

#: The stages that the protocol and ``sklearn-leuko cv`` evaluate by default.
DEFAULT_PROTOCOL_STAGES = ("1", "2", "2C", "3", "3C")

#: The stage with the paper's best test results (Table 2, "Stage-3C w/ aug").
PAPER_BEST_STAGE = "3C"
