"""Fit any estimator with subject IDs, whether metadata routing is on or off.

Subject IDs (``groups``) must reach the network's inner validation split, or
its best-epoch choice is made on cells of subjects it trains on. How they get
there depends on scikit-learn's metadata routing (see REFERENCE.md, "How
subject IDs travel"): with routing on, routers forward ``groups`` to the
consumers that request it; with routing off (scikit-learn's default) a
:class:`~sklearn.pipeline.Pipeline` only forwards ``<step>__groups``.
"""

from sklearn import get_config
from sklearn.pipeline import Pipeline
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    get_routing_for_object,
    process_routing,
)
from sklearn.utils.validation import has_fit_parameter

__all__ = ["fit_with_groups", "groups_fit_params"]


def _pipeline_groups_key(pipeline):
    """``"<last step>__groups"`` (nested for pipelines in pipelines) or None."""
    name, last = pipeline.steps[-1]
    if last is None or isinstance(last, str):  # "passthrough"
        return None
    if isinstance(last, Pipeline):
        inner = _pipeline_groups_key(last)
        return None if inner is None else f"{name}__{inner}"
    return f"{name}__groups" if has_fit_parameter(last, "groups") else None


def _routed_wants_groups(estimator, groups):
    routing = get_routing_for_object(estimator)
    if routing.consumes(method="fit", params=["groups"]):
        return True
    if isinstance(routing, MetadataRouter):
        # Nobody requests groups. If some consumer accepts them without
        # saying whether it wants them, scikit-learn's dry run raises its own
        # UnsetMetadataPassedError (asking for set_fit_request) instead of
        # the groups being dropped silently; if nobody accepts them, it
        # raises TypeError and the estimator is fitted without.
        try:
            process_routing(estimator, "fit", groups=groups)
        except TypeError:
            return False
        return False
    # A plain consumer called directly: give groups unless it declined them.
    return (
        has_fit_parameter(estimator, "groups")
        and routing.fit.requests.get("groups") is not False
    )


def groups_fit_params(estimator, groups):
    """Fit parameters that carry ``groups`` to ``estimator``.

    Parameters
    ----------
    estimator : estimator
        Any scikit-learn compatible estimator (a Pipeline included).
    groups : array-like of shape (n_samples,) or None
        Subject IDs.

    Returns
    -------
    fit_params : dict
        ``{}`` (plain fit), ``{"groups": groups}`` or, for a Pipeline with
        routing off, ``{"<last step>__groups": groups}``.
    """
    if groups is None:
        return {}
    if get_config()["enable_metadata_routing"]:
        return {"groups": groups} if _routed_wants_groups(estimator, groups) else {}
    if isinstance(estimator, Pipeline):
        key = _pipeline_groups_key(estimator)
        return {} if key is None else {key: groups}
    return {"groups": groups} if has_fit_parameter(estimator, "groups") else {}


def fit_with_groups(estimator, X, y, groups):
    """Fit ``estimator`` on ``(X, y)`` and give it the subject IDs the right way.

    - Metadata routing enabled: ``estimator.fit(X, y, groups=groups)`` when
      the estimator (or, for a router such as a Pipeline, one of its steps)
      requests ``groups`` (scikit-learn's public ``consumes`` of the
      estimator's routing); routers route them. An estimator that accepts
      ``groups`` without requesting them gets none (our estimators request
      them by default).
    - Routing disabled: a Pipeline gets ``<last step>__groups`` when its last
      step's ``fit`` accepts ``groups`` (recursively for nested pipelines);
      an estimator whose ``fit`` has a ``groups`` parameter gets ``groups=``.
    - Otherwise, and whenever ``groups`` is None: ``estimator.fit(X, y)``.

    Parameters
    ----------
    estimator : estimator
        The estimator to fit (modified in place).
    X : array-like
        Training data.
    y : array-like of shape (n_samples,)
        Labels.
    groups : array-like of shape (n_samples,) or None
        Subject IDs, one per sample.

    Returns
    -------
    estimator : estimator
        The fitted estimator (what its ``fit`` returned).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import BaseEstimator, ClassifierMixin
    >>> from sklearn.pipeline import Pipeline
    >>> from sklearn_leuko.utils._groups import fit_with_groups
    >>> class Spy(ClassifierMixin, BaseEstimator):
    ...     def fit(self, X, y, groups=None):
    ...         self.groups_ = groups
    ...         return self
    >>> pipe = fit_with_groups(Pipeline([("net", Spy())]), np.zeros((4, 1)),
    ...                        [0, 1, 0, 1], groups=["a", "a", "b", "b"])
    >>> list(pipe[-1].groups_)
    ['a', 'a', 'b', 'b']
    """
    return estimator.fit(X, y, **groups_fit_params(estimator, groups))
