"""Which networks the protocol trains in every fold, and which stages use them.

The fusion stages need no network of their own: they fuse the trained
networks of other stages (Mourya et al. 2018, section 4). A fusion whose
Stage-1 and Stage-2 / Stage-2C networks have the same parameters as a
requested single stage reuses that stage's network instead of training it
twice.
"""

from dataclasses import dataclass, field

import numpy as np

from .._registry import get_stage, network_stages
from .._stages import make_stage

__all__ = ["Plan", "make_plan", "stage_template"]

# Parameters that do not change what a network learns.
_IRRELEVANT = ("checkpoint_dir", "verbose", "progress_bar")


@dataclass
class Plan:
    """The networks to train once per fold, and the stages that use them.

    Attributes
    ----------
    networks : list of (str, Pipeline)
        Unfitted single-network pipelines with unique names (the registry's
        network names, e.g. ``"stage1"``; ``"stage1-2"`` for a second,
        differently configured Stage-1 network).
    uses : dict of str -> list of int
        Stage name -> indices into ``networks`` (one for a single stage, the
        fused parts, in order, for a fusion stage).
    """

    networks: list = field(default_factory=list)
    uses: dict = field(default_factory=dict)

    def add(self, name, pipe):
        """Index of the network equal to ``pipe``, adding it if new."""
        for i, (_, known) in enumerate(self.networks):
            if same_configuration(known, pipe):
                return i
        taken = {n for n, _ in self.networks}
        unique, k = name, 2
        while unique in taken:
            unique, k = f"{name}-{k}", k + 1
        self.networks.append((unique, pipe))
        return len(self.networks) - 1


def stage_template(stage, net_params, stage_params, random_state):
    """Unfitted estimator of one stage with the protocol's parameters.

    A fusion stage comes with ``cv="prefit"``: the protocol hands it its
    fold's trained networks.
    """
    spec = get_stage(stage)
    params = {**net_params, **stage_params.get(spec.name, {})}
    params.setdefault("random_state", random_state)
    estimator = make_stage(spec.name, **params)
    if spec.is_fusion:
        estimator.set_params(cv="prefit")
    return estimator


def make_plan(stages, net_params, stage_params, random_state):
    """Plan the networks of ``stages``.

    Parameters
    ----------
    stages : list of str
        Canonical stage names.
    net_params, stage_params : dict
        As in :func:`~sklearn_leuko.evaluation.run_protocol`.
    random_state : int

    Returns
    -------
    plan : Plan
    """
    plan = Plan()
    for name in network_stages(stages):
        pipe = stage_template(name, net_params, stage_params, random_state)
        index = plan.add(get_stage(name).network_name, pipe)
        if name in stages:
            plan.uses[name] = [index]
    for name in stages:
        spec = get_stage(name)
        if spec.is_fusion:
            template = stage_template(name, net_params, stage_params, random_state)
            plan.uses[name] = [
                plan.add(part_name, pipe) for part_name, pipe in template.estimators
            ]
    return plan


def same_configuration(a, b):
    """True when two unfitted estimators would train the same model."""
    if type(a) is not type(b):
        return False
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    keys = set(pa) | set(pb)
    return all(
        key in pa and key in pb and _same_value(pa[key], pb[key])
        for key in keys
        if key not in _IRRELEVANT
    )


def _same_value(a, b):
    if a is b:
        return True
    if hasattr(a, "get_params") and hasattr(b, "get_params"):
        return same_configuration(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # values without a truth value (tensors, ...)
        return False
