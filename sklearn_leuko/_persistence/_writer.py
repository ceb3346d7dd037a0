"""Writing a fitted model as one ``.safetensors`` file (see ``_safetensors``)."""

import json
import os
import warnings

import numpy as np
import torch

from .. import __version__
from ..utils._files import atomic_write
from ._format import (
    FORMAT,
    FORMAT_VERSION,
    NET_ATTRIBUTE,
    SKIPPED_ATTRIBUTES,
    TRAINING_ONLY_PARAMS,
    all_finite,
    is_estimator,
    registry,
)
from ._schema import file_digest

__all__ = ["save_safetensors"]


class _Writer:
    """Turn an estimator tree into a JSON-safe config and a dict of tensors."""

    def __init__(self):
        self.registry = {cls: name for name, cls in registry().items()}
        self.tensors = {}
        # Warnings about values stored as None, raised once writing succeeded.
        self.notes = []
        # id(estimator) -> path of its first occurrence; the objects are kept
        # alive in ``self._alive`` so that an id cannot be reused meanwhile.
        self.seen = {}
        self._alive = []

    def unsupported(self, value, path, what):
        supported = ", ".join(
            sorted(name.rsplit(".", 1)[1] for name in self.registry.values())
        )
        return TypeError(
            f"save_safetensors cannot store {path}: {what} {type(value).__name__} is not "
            f"supported (supported estimators: {supported}; values: numbers, strings, "
            "numeric arrays and lists, tuples and dicts of them). Save this model with "
            "joblib.dump instead; a joblib file is a pickle, so only load it if you trust "
            "where it comes from."
        )

    def value(self, value, path):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)) and type(value) in (int, float):
            return value
        if isinstance(value, np.generic):
            if value.dtype.kind not in "biufU":
                raise self.unsupported(value, path, "the value of type")
            return {"__npscalar__": value.dtype.str, "value": value.item()}
        if isinstance(value, np.ndarray):
            return self.array(value, path)
        if isinstance(value, torch.dtype):
            return {"__torch_dtype__": str(value).removeprefix("torch.")}
        if isinstance(value, torch.Tensor):
            self.tensors[path] = value.detach().cpu().contiguous().clone()
            return {"__torch_tensor__": path}
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, tuple):
            return {
                "__tuple__": [
                    self.value(v, f"{path}[{i}]") for i, v in enumerate(value)
                ]
            }
        if isinstance(value, list):
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            from sklearn.utils import Bunch

            tag = "__bunch__" if isinstance(value, Bunch) else "__dict__"
            return {
                tag: [
                    [self.value(k, f"{path}.key"), self.value(v, f"{path}[{k!r}]")]
                    for k, v in value.items()
                ]
            }
        if isinstance(value, (np.random.RandomState, np.random.Generator)):
            self.notes.append(
                f"save_safetensors: {path} is a {type(value).__name__}, which a "
                "safetensors file cannot hold; it is stored as None. Predictions are "
                "unaffected; pass an int random_state to keep refits reproducible."
            )
            return None
        if is_estimator(value):
            return self.estimator(value, path)
        raise self.unsupported(value, path, "the value of type")

    def array(self, array, path):
        if array.dtype.kind in "biuf":
            key = path
            self.tensors[key] = torch.from_numpy(np.array(array, order="C", copy=True))
            return {"__tensor__": key}
        if array.dtype.kind == "U" or (
            array.dtype == object and all(isinstance(v, str) for v in array.ravel())
        ):
            return {
                "__strarray__": array.tolist(),
                "dtype": array.dtype.str,
                "shape": list(array.shape),
            }
        raise self.unsupported(array, path, f"the array of dtype {array.dtype}, a")

    def estimator(self, est, path):
        if id(est) in self.seen:
            return {"__ref__": self.seen[id(est)]}
        name = self.registry.get(type(est))
        if name is None:
            raise self.unsupported(est, path, "the estimator")
        self.seen[id(est)] = path
        self._alive.append(est)
        params = est.get_params(deep=False)
        for key in TRAINING_ONLY_PARAMS.get(name, ()):
            if params.get(key):
                self.notes.append(
                    f"save_safetensors: {path}.{key} (training-time only, e.g. skorch "
                    "callbacks) cannot be stored safely and is saved as None; the "
                    "predictions are unaffected. Pass it again before refitting."
                )
                params[key] = None
        node = {
            "__estimator__": name,
            "path": path,
            "params": {k: self.value(v, f"{path}.{k}") for k, v in params.items()},
        }
        state = {}
        for attr, value in vars(est).items():
            if attr in params or attr.startswith(SKIPPED_ATTRIBUTES):
                continue
            if attr == NET_ATTRIBUTE and name == "sklearn_leuko.LeukoNetClassifier":
                node["net"] = self.net(value, f"{path}.{attr}")
                node["net"]["path"] = f"{path}.{attr}"
                continue
            state[attr] = self.value(value, f"{path}.{attr}")
        node["state"] = state
        return node

    def net(self, net, path):
        # The module is rebuilt by LeukoNetClassifier.build_module from the
        # parameters and the fitted state (module_spec_); only its tensors and
        # the training history are stored here.
        for key, tensor in net.module_.state_dict().items():
            self.tensors[f"{path}.module.{key}"] = (
                tensor.detach().cpu().contiguous().clone()
            )
        return {"history": _json_safe_history(net.history)}


def _json_safe_history(history):
    """Epoch rows of a skorch History, without the per-batch rows."""
    rows = []
    for epoch in history:
        row = {}
        for key, value in epoch.items():
            if key == "batches":
                continue
            if isinstance(value, np.generic):
                value = value.item()
            if value is None or isinstance(value, (bool, int, float, str)):
                row[key] = value
        rows.append(row)
    return rows


def save_safetensors(estimator, path):
    """Save a fitted model as one ``.safetensors`` file that loads without running code.

    Unlike ``joblib.dump`` (a pickle: loading it executes code stored in the
    file), the file holds only tensors and a JSON description; see
    :func:`load_safetensors` and ``docs/reliability.md``.

    Supported models: :class:`~sklearn_leuko.LeukoNetClassifier` (alone or in
    a :class:`~sklearn.pipeline.Pipeline`, i.e. every single-network stage of
    :func:`~sklearn_leuko.make_stage`: ``"1"``, ``"2"``, ``"2C"``,
    ``"vgg11"``), :class:`~sklearn_leuko.FeatureFusionClassifier` (stages
    ``"3"`` and ``"3C"``) with a :class:`~sklearn.linear_model.LogisticRegression`
    or ``Pipeline(StandardScaler, LogisticRegression)`` final estimator, and
    the preprocessing transformers :class:`~sklearn_leuko.StainDeconvolution`,
    :class:`~sklearn_leuko.LogDCT` and :class:`~sklearn_leuko.ChannelUnion`
    (also as a model's ``preprocessing``).

    Parameters
    ----------
    estimator : estimator
        A fitted supported model.
    path : str or path-like
        Destination file, conventionally ending in ``.safetensors``. Written
        atomically (a temporary file in the same folder, then renamed).

    Raises
    ------
    TypeError
        A piece of the model is not supported (e.g. a custom transformer or
        final estimator); the message names it. Use ``joblib.dump`` for such
        models.
    sklearn.exceptions.NotFittedError
        The estimator is not fitted.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn_leuko import (LeukoNetClassifier, load_safetensors,
    ...                            save_safetensors)
    >>> from sklearn_leuko.datasets import make_cells
    >>> data = make_cells(n_subjects=6, cells_per_subject=4, image_size=32,
    ...                   random_state=0)
    >>> clf = LeukoNetClassifier(preprocessing="od", widths=(4, 4, 4, 4, 4, 4),
    ...                          max_epochs=1, verbose=0, random_state=0,
    ...                          validation_fraction=None)
    >>> clf = clf.fit(data.images, data.target)
    >>> path = os.path.join(tempfile.mkdtemp(), "stage1.safetensors")
    >>> save_safetensors(clf, path)
    >>> loaded = load_safetensors(path)
    >>> bool((loaded.predict_proba(data.images) == clf.predict_proba(data.images)).all())
    True
    """
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    writer = _Writer()
    if not is_estimator(estimator) or type(estimator) not in writer.registry:
        raise writer.unsupported(estimator, "estimator", "the estimator")
    check_is_fitted(estimator)
    config = writer.value(estimator, "estimator")
    import sklearn

    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "sklearn_leuko_version": __version__,
        "torch_version": torch.__version__,
        "sklearn_version": sklearn.__version__,
        "estimator": config["__estimator__"],
        "config": json.dumps(config),
    }
    for name, tensor in writer.tensors.items():
        if tensor.is_floating_point() and not all_finite(tensor):
            raise ValueError(
                f"save_safetensors: {name} holds NaN or infinite values; such a model "
                "predicts nonsense (training diverged?) and is not saved."
            )
    metadata["digest"] = file_digest(metadata, writer.tensors)
    for note in writer.notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    with atomic_write(path, mode=None) as tmp:
        save_file(writer.tensors, tmp, metadata=metadata)
