"""Safe model files: fitted estimators as one ``.safetensors`` file.

``joblib`` / ``pickle`` files run code when they are loaded, so a model file
from an untrusted source can do anything on the machine that opens it. The
format written here cannot: a ``.safetensors`` file holds named tensors and a
string-to-string metadata header, nothing executable. The estimator is stored
as

- **tensors**: the network weights and buffers (convolutions, batch-norm
  running statistics, PReLU / PTELU parameters, the preprocessing buffers),
  every numeric fitted array (stain matrix, log-DCT thresholds, a final
  classifier's ``coef_`` / ``intercept_``, a scaler's ``mean_`` /
  ``scale_``), each under the dotted path of the attribute that holds it,
  e.g. ``estimator.estimators_[0].steps[0][1].net_.module.network.stem.0.weight``;
- **metadata** ``"config"``: a JSON tree describing every estimator of the
  model (its class, from a fixed list, its ``get_params(deep=False)`` and its
  non-array fitted attributes such as ``classes_`` and ``input_shape_``),
  plus ``"format"``, ``"format_version"`` and the library versions.

:func:`load_safetensors` rebuilds the estimators by calling their
constructors with the stored parameters, sets the fitted attributes and
loads the tensors; nothing is unpickled and no class outside the fixed list
is ever instantiated.
"""

import json
import os
import warnings

import numpy as np
import torch

from .. import __version__
from ..utils._files import atomic_write

__all__ = ["FORMAT", "FORMAT_VERSION", "load_safetensors", "save_safetensors"]

#: Value of the ``"format"`` metadata entry of the files written here.
FORMAT = "sklearn-leuko"
#: Layout version of the ``"config"`` tree; bumped on incompatible changes.
FORMAT_VERSION = 2

# The LeukoNetClassifier attributes that are not plain fitted values: the
# skorch net is stored as the state dict of its module plus a small spec.
_NET_ATTRIBUTE = "net_"
# Parameters that only act during training and may hold arbitrary objects:
# stored as None (with a warning) rather than refusing the whole model.
_TRAINING_ONLY_PARAMS = {"sklearn_leuko.LeukoNetClassifier": ("callbacks",)}
# Set by ``set_fit_request`` & co.; routing requests are not part of a model.
_SKIPPED_ATTRIBUTES = ("_metadata_request",)


def _registry():
    """Public name -> class of every estimator a file may contain."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import LabelEncoder, StandardScaler

    from .._classifier import LeukoNetClassifier
    from ..ensemble import FeatureFusionClassifier
    from ..preprocessing import ChannelUnion, LogDCT, StainDeconvolution

    return {
        "sklearn_leuko.LeukoNetClassifier": LeukoNetClassifier,
        "sklearn_leuko.FeatureFusionClassifier": FeatureFusionClassifier,
        "sklearn_leuko.preprocessing.StainDeconvolution": StainDeconvolution,
        "sklearn_leuko.preprocessing.LogDCT": LogDCT,
        "sklearn_leuko.preprocessing.ChannelUnion": ChannelUnion,
        "sklearn.pipeline.Pipeline": Pipeline,
        "sklearn.preprocessing.StandardScaler": StandardScaler,
        "sklearn.preprocessing.LabelEncoder": LabelEncoder,
        "sklearn.linear_model.LogisticRegression": LogisticRegression,
    }


def _is_estimator(value):
    return hasattr(value, "get_params") and not isinstance(value, type)


# ---------------------------------------------------------------- writing
class _Writer:
    """Turn an estimator tree into a JSON-safe config and a dict of tensors."""

    def __init__(self):
        self.registry = {cls: name for name, cls in _registry().items()}
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
        if _is_estimator(value):
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
        for key in _TRAINING_ONLY_PARAMS.get(name, ()):
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
            if attr in params or attr.startswith(_SKIPPED_ATTRIBUTES):
                continue
            if attr == _NET_ATTRIBUTE and name == "sklearn_leuko.LeukoNetClassifier":
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
    if not _is_estimator(estimator) or type(estimator) not in writer.registry:
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
    for note in writer.notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    with atomic_write(path, mode=None) as tmp:
        save_file(writer.tensors, tmp, metadata=metadata)


# ---------------------------------------------------------------- reading
class _Reader:
    def __init__(self, tensors, device, path):
        self.registry = _registry()
        self.tensors = tensors
        self.device = device
        self.path = path
        self.objects = {}

    def corrupt(self, what):
        return ValueError(
            f"{self.path} is not a valid sklearn-leuko model file: {what}."
        )

    def value(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.value(v) for v in node]
        if not isinstance(node, dict):
            raise self.corrupt(f"unexpected JSON value {node!r:.80}")
        if "__tensor__" in node:
            key = node["__tensor__"]
            if key not in self.tensors:
                raise self.corrupt(f"the tensor {key!r} is missing")
            return self.tensors[key].numpy()
        if "__torch_tensor__" in node:
            key = node["__torch_tensor__"]
            if key not in self.tensors:
                raise self.corrupt(f"the tensor {key!r} is missing")
            return self.tensors[key].clone()
        if "__strarray__" in node:
            array = np.array(node["__strarray__"], dtype=np.dtype(node["dtype"]))
            return array.reshape(node["shape"])
        if "__npscalar__" in node:
            return np.dtype(node["__npscalar__"]).type(node["value"])
        if "__tuple__" in node:
            return tuple(self.value(v) for v in node["__tuple__"])
        if "__dict__" in node:
            return {self.value(k): self.value(v) for k, v in node["__dict__"]}
        if "__bunch__" in node:
            from sklearn.utils import Bunch

            return Bunch(**{self.value(k): self.value(v) for k, v in node["__bunch__"]})
        if "__torch_dtype__" in node:
            dtype = getattr(torch, node["__torch_dtype__"], None)
            if not isinstance(dtype, torch.dtype):
                raise self.corrupt(f"unknown torch dtype {node['__torch_dtype__']!r}")
            return dtype
        if "__ref__" in node:
            if node["__ref__"] not in self.objects:
                raise self.corrupt(f"dangling reference {node['__ref__']!r}")
            return self.objects[node["__ref__"]]
        if "__estimator__" in node:
            return self.estimator(node)
        raise self.corrupt(f"unexpected JSON object with keys {sorted(node)[:4]}")

    def estimator(self, node):
        name = node["__estimator__"]
        cls = self.registry.get(name)
        if cls is None:
            raise self.corrupt(
                f"it names the class {name!r}, which is not one of the classes this "
                f"version of sklearn-leuko ({__version__}) can rebuild"
            )
        params = {k: self.value(v) for k, v in node["params"].items()}
        try:
            est = cls(**params)
        except TypeError as exc:
            raise ValueError(
                f"{self.path}: {name} no longer accepts the stored parameters ({exc}); "
                "the file was written by another version of sklearn-leuko or "
                "scikit-learn. Load it with that version."
            ) from exc
        for attr, value in node["state"].items():
            setattr(est, attr, self.value(value))
        if "net" in node:
            est.net_ = self.net(est, node["net"])
        self.objects[node["path"]] = est
        return est

    def net(self, clf, spec):
        from skorch.history import History

        path = spec["path"]
        prefix = f"{path}.module."
        state = {
            k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)
        }
        if not hasattr(clf, "module_spec_"):
            # Files of format version 1 kept the module spec in the net node.
            dtype = spec.get("autocast_dtype")
            clf.module_spec_ = {
                "in_channels": spec["in_channels"],
                "rgb_input": spec["rgb_input"],
                "autocast_dtype": dtype,
                "channels_last": spec["channels_last"],
            }
        # Building the layers draws initial weights; keep the caller's RNG untouched.
        with torch.random.fork_rng(devices=[]):
            module = clf.build_module()
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(
                f"{self.path}: the stored weights of {path} do not fit the network that "
                f"sklearn-leuko {__version__} builds from the stored parameters; the file "
                "was probably written by another version. Details: "
                f"{str(exc).splitlines()[0]}"
            ) from exc
        net = clf.build_net(module, device=self.device)
        net.initialize()
        net.module_.eval()
        net.history_ = History(spec["history"])
        return net


def load_safetensors(path, *, device="cpu"):
    """Load a model written by :func:`save_safetensors`, without running stored code.

    The file is read with :func:`safetensors.safe_open` (tensors and a JSON
    header only; no pickle). Each estimator is rebuilt by calling its class,
    taken from a fixed list of supported classes, with the stored
    parameters; then the fitted attributes are set and the network weights
    loaded. The result predicts exactly as the saved model did on the same
    device and software versions (see ``docs/reliability.md``).

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save_safetensors`.
    device : str, default="cpu"
        Where the networks run (``"cpu"``, ``"cuda"``, ``"auto"``, ...).

    Returns
    -------
    estimator : estimator
        The fitted model, ready for ``predict``, ``predict_proba`` and
        ``transform``; ``net_.history`` holds the epoch rows of the training
        history (without per-batch rows). Calling ``fit`` on it trains
        afresh with the stored parameters.

    Raises
    ------
    ValueError
        The file is not a safetensors file, was not written by
        :func:`save_safetensors`, or was written by a newer format version.

    See Also
    --------
    save_safetensors : Writes the file; its Examples round-trip a model.
    """
    from safetensors import SafetensorError, safe_open

    from ..utils import resolve_device

    device = resolve_device(device)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model file at {path!r}.")
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except SafetensorError as exc:
        raise ValueError(
            f"{path} is not a safetensors file ({exc}); save_safetensors writes them. "
            "A joblib/pickle file must be loaded with joblib.load (only if you trust it)."
        ) from exc
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{path} is a safetensors file but not an sklearn-leuko model (its metadata "
            f"has format={metadata.get('format')!r}); it was not written by "
            "sklearn_leuko.save_safetensors."
        )
    version = int(metadata.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses format version {version}, written by sklearn-leuko "
            f"{metadata.get('sklearn_leuko_version')}; this is sklearn-leuko {__version__}, "
            f"which reads versions up to {FORMAT_VERSION}. Upgrade sklearn-leuko."
        )
    try:
        config = json.loads(metadata["config"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{path}: the 'config' metadata entry is missing or not JSON."
        ) from exc
    reader = _Reader(tensors, device, path)
    return reader.value(config)
