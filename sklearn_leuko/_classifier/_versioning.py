"""Record the library version in pickles and warn when another version loads them."""

import warnings

from .. import __version__

_KEY = "_sklearn_leuko_version"


class VersionedPickleMixin:
    """Mixin for estimators: joblib/pickle files remember the sklearn-leuko
    version that wrote them; loading with another version warns."""

    def __getstate__(self):
        # A copy: on Python >= 3.11 BaseEstimator hands out ``self.__dict__``
        # itself, and the version must not become an attribute of the model.
        state = dict(super().__getstate__())
        state[_KEY] = __version__
        return state

    def __setstate__(self, state):
        version = state.pop(_KEY, None)
        if version is not None and version != __version__:
            warnings.warn(
                f"This {type(self).__name__} was saved with sklearn-leuko {version} and "
                f"is loaded with {__version__}; results may differ. Re-train, or export "
                "with sklearn_leuko.save_safetensors and load that instead.",
                UserWarning,
                stacklevel=2,
            )
        super().__setstate__(state)
