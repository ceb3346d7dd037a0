"""Reading a ``.safetensors`` model file: validate everything, then rebuild."""

import json
import os
import re

import numpy as np
import torch

from .. import __version__
from ._format import ADDED_PARAMS, FORMAT, FORMAT_VERSION, all_finite, registry
from ._schema import (
    FITTED_CHECKS,
    LEUKONET,
    MAX_DEPTH,
    STRUCTURE_CHECKS,
    FileError,
    check_node_keys,
    check_param_names,
    check_params,
    check_state_names,
    fail,
    file_digest,
    json_depth_exceeds,
)

__all__ = ["load_safetensors"]

_TENSOR_DTYPES = {
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
}
_TORCH_DTYPES = {"float16", "bfloat16", "float32", "float64"}
# "<U12" (NumPy string arrays) or "|O" (object arrays of str); bounded length.
_STR_DTYPE = re.compile(r"^[<>=|]?U([1-9][0-9]{0,4})$|^\|O$")
_TAGS = {
    "__tensor__": {"__tensor__"},
    "__torch_tensor__": {"__torch_tensor__"},
    "__strarray__": {"__strarray__", "dtype", "shape"},
    "__npscalar__": {"__npscalar__", "value"},
    "__tuple__": {"__tuple__"},
    "__dict__": {"__dict__"},
    "__bunch__": {"__bunch__"},
    "__torch_dtype__": {"__torch_dtype__"},
    "__ref__": {"__ref__"},
}


class _Reader:
    """Decode and check a config tree (phase 1), then build the networks
    (phase 2, :meth:`build_networks`), each after its tensor shapes were
    checked against the config."""

    def __init__(self, tensors, device, path, version):
        self.registry = registry()
        self.tensors = tensors
        self.device = device
        self.path = path
        self.version = version
        self.objects = {}
        self.used = set()
        self.networks = []  # (classifier, net node, field), built in phase 2

    def fail(self, field, problem):
        return fail(self.path, field, problem)

    def tensor(self, key, field):
        if not isinstance(key, str) or key not in self.tensors:
            raise self.fail(field, f"the tensor {key!r:.80} is not in the file")
        self.used.add(key)
        return self.tensors[key]

    def value(self, node, field):
        try:
            return self._value(node, field)
        except (FileError, MemoryError):
            raise
        except Exception as exc:  # anything else: name the field, not a traceback
            raise self.fail(
                field,
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            ) from exc

    def _value(self, node, field):
        if node is None or isinstance(node, (bool, str)):
            return node
        if isinstance(node, (int, float)):
            return node
        if isinstance(node, list):
            return [self.value(v, f"{field}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, dict):
            raise self.fail(field, f"unexpected JSON value {node!r:.80}")
        if "__estimator__" in node:
            return self.estimator(node, field)
        tags = [tag for tag in _TAGS if tag in node]
        if len(tags) != 1 or set(node) != _TAGS[tags[0]]:
            raise self.fail(
                field, f"unexpected JSON object with keys {sorted(node)[:6]}"
            )
        tag = tags[0]
        body = node[tag]
        if tag == "__tensor__":
            tensor = self.tensor(body, field)
            if str(tensor.dtype).removeprefix("torch.") == "bfloat16":
                raise self.fail(field, "a NumPy array cannot be bfloat16")
            return tensor.numpy()
        if tag == "__torch_tensor__":
            return self.tensor(body, field).clone()
        if tag == "__strarray__":
            return self.strarray(node, field)
        if tag == "__npscalar__":
            return self.npscalar(node, field)
        if tag == "__tuple__":
            if not isinstance(body, list):
                raise self.fail(field, "__tuple__ must hold a list")
            return tuple(self.value(v, f"{field}[{i}]") for i, v in enumerate(body))
        if tag in ("__dict__", "__bunch__"):
            if not isinstance(body, list) or not all(
                isinstance(item, list) and len(item) == 2 for item in body
            ):
                raise self.fail(field, f"{tag} must hold a list of [key, value] pairs")
            out = {}
            for key, value in body:
                key = self.value(key, f"{field}.key")
                if not isinstance(key, (str, int, float, bool, type(None), tuple)):
                    raise self.fail(field, f"the key {key!r:.40} cannot be a dict key")
                out[key] = self.value(value, f"{field}[{key!r:.40}]")
            if tag == "__bunch__":
                from sklearn.utils import Bunch

                if not all(isinstance(k, str) for k in out):
                    raise self.fail(field, "Bunch keys must be strings")
                return Bunch(**out)
            return out
        if tag == "__torch_dtype__":
            if body not in _TORCH_DTYPES:
                raise self.fail(field, f"unknown torch dtype {body!r:.40}")
            return getattr(torch, body)
        # __ref__
        if not isinstance(body, str) or body not in self.objects:
            raise self.fail(field, f"dangling reference {body!r:.80}")
        return self.objects[body]

    def strarray(self, node, field):
        dtype, shape, values = node["dtype"], node["shape"], node["__strarray__"]
        if not isinstance(dtype, str) or not _STR_DTYPE.match(dtype):
            raise self.fail(field, f"unsupported string dtype {dtype!r:.40}")
        if not (
            isinstance(shape, list)
            and all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
            )
            and len(shape) <= 4
        ):
            raise self.fail(field, f"shape {shape!r:.80} is not a list of sizes")
        leaves = (
            np.asarray(values, dtype=object) if values != [] else np.empty(0, object)
        )
        if leaves.shape != tuple(shape) or not all(
            isinstance(v, str) for v in leaves.ravel()
        ):
            raise self.fail(field, f"the strings do not form an array of shape {shape}")
        return np.array(values, dtype=np.dtype(dtype)).reshape(shape)

    def npscalar(self, node, field):
        code, value = node["__npscalar__"], node["value"]
        try:
            dtype = np.dtype(code) if isinstance(code, str) and len(code) < 8 else None
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in "biufU":
            raise self.fail(field, f"unsupported NumPy scalar type {code!r:.40}")
        expected = {
            "b": (bool,),
            "i": (int,),
            "u": (int,),
            "f": (int, float),
            "U": (str,),
        }[dtype.kind]
        if not isinstance(value, expected) or (
            dtype.kind in "iuf" and isinstance(value, bool)
        ):
            raise self.fail(field, f"{value!r:.40} is not a {dtype} value")
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if not info.min <= value <= info.max:
                raise self.fail(field, f"{value} does not fit {dtype}")
        return dtype.type(value)

    def estimator(self, node, field):
        name = node["__estimator__"]
        if not isinstance(name, str) or name not in self.registry:
            raise self.fail(
                f"{field}.__estimator__",
                f"it names the class {name!r:.80}, which is not one of the classes this "
                f"version of sklearn-leuko ({__version__}) can rebuild",
            )
        cls = self.registry[name]
        check_node_keys(node, field, self.path, name == LEUKONET)
        if node["path"] in self.objects:
            raise self.fail(f"{field}.path", f"{node['path']!r:.80} is used twice")
        stored = node["params"]
        # Parameters added after a file was written take the value that
        # reproduces the model it holds (e.g. files from before the
        # learnable SD-Layer used the fixed stain deconvolution).
        node = {**node, "params": {**ADDED_PARAMS.get(name, {}), **stored}}
        check_param_names(name, cls, node["params"], field, self.path)
        params = {
            k: self.value(v, f"{field}.params.{k}") for k, v in node["params"].items()
        }
        check_params(cls, params, field, self.path)
        try:
            est = cls(**params)
        except TypeError as exc:
            raise ValueError(
                f"{self.path}: {name} no longer accepts the stored parameters ({exc}); "
                "the file was written by another version of sklearn-leuko or "
                "scikit-learn. Load it with that version."
            ) from exc
        if name == LEUKONET:
            try:
                est._check_params()
            except (TypeError, ValueError) as exc:
                raise self.fail(f"{field}.params", str(exc).rstrip(".")) from None
        state = node["state"]
        check_state_names(name, cls, state, field, self.path)
        for attr, value in state.items():
            setattr(est, attr, self.value(value, f"{field}.state.{attr}"))
        if name in STRUCTURE_CHECKS:
            STRUCTURE_CHECKS[name](est, field, self.path)
        if name == LEUKONET:
            if bool(state) != ("net" in node):
                raise self.fail(field, "a fitted network needs both 'state' and 'net'")
            if "net" in node:
                self.net_spec(est, node["net"], f"{field}.net")
        if state and name in FITTED_CHECKS:
            FITTED_CHECKS[name](est, field, self.path)
        self.objects[node["path"]] = est
        return est

    def net_spec(self, clf, spec, field):
        """Check the net node; the network itself is built in phase 2."""
        if not isinstance(spec, dict):
            raise self.fail(field, "must be an object")
        v1_keys = {"in_channels", "rgb_input", "autocast_dtype", "channels_last"}
        allowed = {"history", "path"} | (v1_keys if self.version == 1 else set())
        if not {"history", "path"} <= set(spec) or set(spec) - allowed:
            raise self.fail(
                field, f"must have the keys {sorted(allowed)}, has {sorted(spec)}"
            )
        if not isinstance(spec["path"], str):
            raise self.fail(f"{field}.path", "must be a string")
        history = spec["history"]
        if not isinstance(history, list) or not all(
            isinstance(row, dict)
            and isinstance(row.get("epoch"), int)
            and all(
                v is None or isinstance(v, (bool, int, float, str))
                for v in row.values()
            )
            for row in history
        ):
            raise self.fail(f"{field}.history", "must be a list of epoch rows")
        if not hasattr(clf, "module_spec_"):
            # Files of format version 1 kept the module spec in the net node.
            if not v1_keys <= set(spec):
                raise self.fail(
                    f"{field[: -len('.net')]}.state.module_spec_", "it is missing"
                )
            clf.module_spec_ = {k: spec[k] for k in sorted(v1_keys)}
        if clf.best_epoch_ is not None and clf.best_epoch_ > len(history):
            raise self.fail(
                f"{field[: -len('.net')]}.state.best_epoch_",
                f"{clf.best_epoch_} but the history has {len(history)} epochs",
            )
        self.networks.append((clf, spec, field))

    # ------------------------------------------------------------ phase 2
    def check_unused(self):
        prefixes = [f"{spec['path']}.module." for _, spec, _ in self.networks]
        unused = sorted(
            k
            for k in self.tensors
            if k not in self.used and not any(k.startswith(p) for p in prefixes)
        )
        if unused:
            raise FileError(
                f"{self.path}: not a valid sklearn-leuko model file: the tensor "
                f"{unused[0]!r} belongs to no part of the model."
            )

    def build_networks(self):
        checked = []
        for clf, spec, field in self.networks:
            checked.append((clf, spec, field, self.check_shapes(clf, spec, field)))
        # Only now, with every network's shapes checked, is memory allocated.
        for clf, spec, field, state in checked:
            clf.net_ = self.net(clf, spec, field, state)

    def check_shapes(self, clf, spec, field):
        """Compare the stored tensors with the network the config describes,
        built on the ``meta`` device (no memory, no computation)."""
        prefix = f"{spec['path']}.module."
        state = {
            k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)
        }
        try:
            with torch.device("meta"):
                meta = clf.build_module()
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise self.fail(
                f"{field[: -len('.net')]}.params",
                "they do not describe a network this version can build "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
            ) from exc
        expected = meta.state_dict()
        where = f"{spec['path']}.module"
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        if missing or extra:
            raise ValueError(
                f"{self.path}: the stored weights of {where} do not fit the network that "
                f"sklearn-leuko {__version__} builds from the stored parameters (missing "
                f"{missing[:3]}, unexpected {extra[:3]}); the file was probably written "
                "by another version, or edited."
            )
        for key, tensor in expected.items():
            stored = state[key]
            if (
                tuple(stored.shape) != tuple(tensor.shape)
                or stored.dtype != tensor.dtype
            ):
                raise FileError(
                    f"{self.path}: not a valid sklearn-leuko model file: the config "
                    f"describes {where}.{key} of shape {tuple(tensor.shape)} "
                    f"({tensor.dtype}), but the file stores shape {tuple(stored.shape)} "
                    f"({stored.dtype}): a shape mismatch between the parameters (e.g. "
                    "widths, classes_, module_spec_) and the weights."
                )
        n_features = int(meta.network.n_features)
        if clf.n_features_out_ != n_features:
            raise self.fail(
                f"{field[: -len('.net')]}.state.n_features_out_",
                f"{clf.n_features_out_}, but the network gives {n_features} features",
            )
        return state

    def net(self, clf, spec, field, state):
        from skorch.history import History

        # Building the layers draws initial weights; keep the caller's RNG untouched.
        with torch.random.fork_rng(devices=[]):
            module = clf.build_module()
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(
                f"{self.path}: the stored weights of {spec['path']} do not fit the "
                f"network that sklearn-leuko {__version__} builds from the stored "
                "parameters; the file was probably written by another version. "
                f"Details: {str(exc).splitlines()[0]}"
            ) from exc
        net = clf.build_net(module, device=self.device)
        net.initialize()
        net.module_.eval()
        net.history_ = History(spec["history"])
        return net


def _read_file(path):
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except SafetensorError as exc:
        raise ValueError(
            f"{path} is not a safetensors file ({exc}); save_safetensors writes them. "
            "A joblib/pickle file must be loaded with joblib.load (only if you trust it)."
        ) from exc
    return metadata, tensors


def _check_metadata(path, metadata):
    """The header entries; returns (format version, config tree)."""
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{path} is a safetensors file but not an sklearn-leuko model (its metadata "
            f"has format={metadata.get('format')!r:.80}); it was not written by "
            "sklearn_leuko.save_safetensors."
        )
    text = metadata.get("format_version")
    if not (
        isinstance(text, str) and text.isascii() and text.isdigit() and len(text) < 6
    ):
        raise FileError(
            f"{path}: not a valid sklearn-leuko model file: metadata format_version: "
            f"{text!r:.40} is not a whole number."
        )
    version = int(text)
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses format version {version}, written by sklearn-leuko "
            f"{metadata.get('sklearn_leuko_version')!r:.40}; this is sklearn-leuko "
            f"{__version__}, which reads versions up to {FORMAT_VERSION}. Upgrade "
            "sklearn-leuko."
        )
    if version < 1:
        raise FileError(
            f"{path}: not a valid sklearn-leuko model file: metadata format_version: "
            f"{version} (versions start at 1)."
        )
    if "config" not in metadata:
        raise FileError(
            f"{path}: not a valid sklearn-leuko model file: the metadata entry "
            "'config' is missing."
        )
    try:
        config = json.loads(metadata["config"])
    except RecursionError:
        config = None
        deep = True
    except ValueError as exc:  # JSONDecodeError, too long integers
        raise FileError(
            f"{path}: not a valid sklearn-leuko model file: metadata config: not JSON "
            f"({exc})."
        ) from None
    else:
        deep = json_depth_exceeds(config)
    if deep:
        raise FileError(
            f"{path}: not a valid sklearn-leuko model file: metadata config: nested "
            f"more than {MAX_DEPTH} levels deep."
        )
    if not isinstance(config, dict) or "__estimator__" not in config:
        raise FileError(
            f"{path}: not a valid sklearn-leuko model file: config: must be an "
            f"estimator object, got {type(config).__name__} {config!r:.40}."
        )
    if metadata.get("estimator") != config["__estimator__"]:
        raise FileError(
            f"{path}: not a valid sklearn-leuko model file: metadata estimator "
            f"{metadata.get('estimator')!r:.80} disagrees with the config's "
            f"{config['__estimator__']!r:.80}."
        )
    return version, config


def _check_tensors(path, tensors):
    for name, tensor in tensors.items():
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in _TENSOR_DTYPES:
            raise FileError(
                f"{path}: not a valid sklearn-leuko model file: the tensor {name!r} has "
                f"dtype {dtype}."
            )
        if tensor.is_floating_point() and not all_finite(tensor):
            raise FileError(
                f"{path}: not a valid sklearn-leuko model file: the tensor {name!r} "
                "holds NaN or infinite values; a model with such weights predicts "
                "nonsense."
            )


def load_safetensors(path, *, device="cpu"):
    """Load a model written by :func:`save_safetensors`, without running stored code.

    The file is read with :func:`safetensors.safe_open` (tensors and a JSON
    header only; no pickle) and checked against a schema before anything is
    built: the digest over config and tensors (files of format version 3 on),
    every estimator's class (from a fixed list), parameters (the class's own
    constraints) and fitted attributes (a fixed list per class, consistent
    with each other), finite weights, and each network's stored tensor
    shapes against the network the config describes. Every violation is a
    ``ValueError`` that names the file and the field. Then each estimator is
    rebuilt by calling its class with the stored parameters, the fitted
    attributes are set and the network weights loaded. The result predicts
    exactly as the saved model did on the same device and software versions
    (see ``docs/reliability.md``).

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
        :func:`save_safetensors`, was changed after it was written (digest),
        breaks the schema, or was written by a newer format version.

    See Also
    --------
    save_safetensors : Writes the file; its Examples round-trip a model.
    """
    from sklearn.utils.validation import check_is_fitted

    from ..utils import resolve_device

    device = resolve_device(device)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model file at {path!r}.")
    metadata, tensors = _read_file(path)
    version, config = _check_metadata(path, metadata)
    if version >= 3:
        stored = metadata.get("digest")
        if stored is None:
            raise FileError(
                f"{path}: not a valid sklearn-leuko model file: the metadata entry "
                "'digest' is missing (every file of format version 3 has one)."
            )
        if stored != file_digest(metadata, tensors):
            raise FileError(
                f"{path}: the file was changed after save_safetensors wrote it: its "
                "digest does not match its config and tensors (an edited config, e.g. "
                "swapped classes_, or a damaged copy). Use the original file."
            )
    _check_tensors(path, tensors)
    reader = _Reader(tensors, device, path, version)
    model = reader.value(config, "estimator")
    reader.check_unused()
    reader.build_networks()
    try:
        check_is_fitted(model)
    except Exception as exc:
        raise FileError(
            f"{path}: not a valid sklearn-leuko model file: config estimator: the model "
            f"is not fitted ({exc})."
        ) from None
    return model
