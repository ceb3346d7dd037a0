"""skorch-style ``**kwargs`` parameters (``optimizer__betas=...``) as estimator params.

:class:`~sklearn_leuko.LeukoNetClassifier` takes skorch's prefixed arguments
as ``**kwargs`` and stores them as public attributes; this mixin makes
:meth:`get_params` and :meth:`set_params` see them, so that ``clone`` and
``GridSearchCV`` treat them like the named parameters.
"""

from ._params import is_pass_through_param

__all__ = ["PassThroughParamsMixin"]


class PassThroughParamsMixin:
    """``get_params`` / ``set_params`` over the named and the prefixed parameters."""

    def _extra_param_names(self):
        """Names given as ``**kwargs`` (public attributes that are not fitted)."""
        named = set(self._get_param_names())
        return sorted(
            key
            for key in vars(self)
            if key not in named and not key.startswith("_") and not key.endswith("_")
        )

    def get_params(self, deep=True):
        """Get the parameters, the skorch-style prefixed ones included.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of contained estimators (a
            ``preprocessing`` transformer).

        Returns
        -------
        params : dict
        """
        params = super().get_params(deep=deep)
        for key in self._extra_param_names():
            params[key] = getattr(self, key)
        return params

    def set_params(self, **params):
        """Set parameters, skorch-style prefixed ones (``optimizer__betas``) included.

        Parameters
        ----------
        **params : dict

        Returns
        -------
        self : estimator
        """
        named = {}
        for key, value in params.items():
            if is_pass_through_param(key):
                setattr(self, key, value)
            else:
                named[key] = value
        if named:
            super().set_params(**named)
        return self

    def _pass_through(self):
        return {key: getattr(self, key) for key in self._extra_param_names()}
