"""What a model file may say: the schema that :func:`load_safetensors` checks.

A ``.safetensors`` model file is data from anywhere, so nothing in it is
trusted before it is checked. Every rule here raises :class:`FileError` (a
``ValueError``) that names the file and the field, e.g.
``model.safetensors: not a valid sklearn-leuko model file: config
estimator.steps[0][1].state.classes_: ...``.

The checks, in the order the loader applies them:

1. the metadata: ``format``, ``format_version`` (a whole number this library
   reads), ``config`` (JSON, at most :data:`MAX_DEPTH` levels deep) and, from
   format version 3 on, ``digest``, a SHA-256 of the metadata and of every
   tensor (:func:`file_digest`);
2. the tensors: known dtypes, finite values;
3. every estimator node of the config (:func:`check_node_keys`,
   :func:`check_params`, :func:`check_state_names`): a class from a fixed
   list; parameters the class has, with values its parameter constraints
   accept; fitted attributes from a fixed list per class (so that a file
   cannot shadow a method such as ``predict_proba``);
4. each fitted estimator for consistency (:data:`FITTED_CHECKS`), e.g.
   ``classes_`` unique labels that agree with the label encoder, the input
   shape with the module spec, coefficient shapes with each other;
5. for each network, before anything is allocated: the shapes of the stored
   tensors against the network the config describes (built on PyTorch's
   ``meta`` device, which holds no data).

This module is long because every rule a file must pass is kept in one place,
where a reviewer can read the whole trust boundary at once.
"""

import hashlib
import numbers

import numpy as np

from ._consistency import check_fusion_members

__all__ = [
    "FITTED_CHECKS",
    "MAX_DEPTH",
    "FileError",
    "check_node_keys",
    "check_params",
    "check_state_names",
    "file_digest",
    "json_depth_exceeds",
]

#: Deepest JSON nesting a config may have; real configs stay below 30.
MAX_DEPTH = 64

LEUKONET = "sklearn_leuko.LeukoNetClassifier"
FUSION = "sklearn_leuko.FeatureFusionClassifier"
PIPELINE = "sklearn.pipeline.Pipeline"

# Fitted attributes each class may carry (anything else, e.g. an attribute
# named like a method, is refused) and those a fitted one must carry.
_STATE = {
    LEUKONET: (
        {
            "_label_encoder",
            "classes_",
            "input_shape_",
            "input_kind_",
            "device_",
            "module_spec_",
            "n_features_out_",
            "best_epoch_",
            "preprocessing_",
            "domain_summary_",
            "geometry_",
        },
        {
            "classes_",
            "input_shape_",
            "input_kind_",
            "n_features_out_",
            "best_epoch_",
            "preprocessing_",
        },
    ),
    FUSION: (
        {
            "_label_encoder",
            "_kept_names",
            "classes_",
            "estimators_",
            "final_estimator_",
            "named_estimators_",
            "n_features_out_",
            "n_features_per_estimator_",
        },
        {
            "_label_encoder",
            "_kept_names",
            "classes_",
            "estimators_",
            "final_estimator_",
            "n_features_out_",
        },
    ),
    "sklearn_leuko.preprocessing.StainDeconvolution": ({"stain_matrix_"}, set()),
    "sklearn_leuko.preprocessing.LogDCT": (
        {"n_channels_in_", "nonzero_fraction_", "thresholds_"},
        set(),
    ),
    "sklearn_leuko.preprocessing.ChannelUnion": ({"transformers_"}, {"transformers_"}),
    PIPELINE: (set(), set()),
    # scikit-learn adds fitted attributes over its versions: any public name
    # ending in "_" that is not a class attribute, and these must be there.
    "sklearn.preprocessing.StandardScaler": (None, {"scale_", "mean_"}),
    "sklearn.preprocessing.LabelEncoder": (None, {"classes_"}),
    "sklearn.linear_model.LogisticRegression": (
        None,
        {"classes_", "coef_", "intercept_"},
    ),
}


class FileError(ValueError):
    """A model file that breaks the schema; the message names file and field."""


def fail(path, field, problem):
    where = f"config {field}" if field else "config"
    return FileError(
        f"{path}: not a valid sklearn-leuko model file: {where}: {problem}."
    )


def json_depth_exceeds(obj, limit=MAX_DEPTH):
    """True when ``obj`` nests deeper than ``limit`` (checked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return False


def file_digest(metadata, tensors):
    """SHA-256 over the metadata (but ``digest``) and every tensor's name,
    dtype, shape and bytes.

    It detects a file changed after :func:`save_safetensors` wrote it: an
    edited config (``classes_`` swapped, a width changed), a changed weight,
    a damaged copy. It does not prove who wrote the file: whoever edits it
    on purpose can compute a new digest. To know that a file is the one you
    were given, compare its SHA-256 (``sha256sum model.safetensors``) with
    one published by its author.
    """
    import torch

    digest = hashlib.sha256()

    def feed(text):
        data = text.encode()
        digest.update(len(data).to_bytes(8, "little") + data)

    for key in sorted(metadata):
        if key != "digest":
            feed(key)
            feed(metadata[key])
    for name in sorted(tensors):
        tensor = tensors[name]
        feed(name)
        feed(f"{tensor.dtype}{tuple(tensor.shape)}")
        raw = tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8)
        digest.update(memoryview(raw.numpy()))
    return digest.hexdigest()


# ------------------------------------------------------------ estimator nodes
def check_node_keys(node, field, path, is_net_class):
    allowed = {"__estimator__", "path", "params", "state"}
    if is_net_class:
        allowed.add("net")
    extra = sorted(set(node) - allowed)
    if extra:
        raise fail(path, field, f"unexpected keys {extra} (allowed: {sorted(allowed)})")
    for key in ("path", "params", "state"):
        if key not in node:
            raise fail(path, field, f"the key {key!r} is missing")
    if not isinstance(node["path"], str):
        raise fail(path, f"{field}.path", "must be a string")
    for key in ("params", "state"):
        if not isinstance(node[key], dict):
            raise fail(
                path, f"{field}.{key}", f"must be an object, not {_kind(node[key])}"
            )


def _kind(value):
    return "null" if value is None else type(value).__name__


def check_param_names(name, cls, params, field, path):
    """Only parameters the class has; every named parameter of our classes."""
    from .._classifier import is_pass_through_param

    known = set(cls._get_param_names())
    for key in params:
        if key in known:
            continue
        if name == LEUKONET and is_pass_through_param(key):
            continue
        raise fail(
            path,
            f"{field}.params.{key}",
            f"{cls.__name__} has no parameter {key!r} (the file was written by "
            "another version, or edited)",
        )
    if name.startswith("sklearn_leuko."):
        missing = sorted(known - set(params))
        if missing:
            raise fail(path, f"{field}.params", f"the parameters {missing} are missing")


def check_params(cls, params, field, path):
    """The class's own parameter constraints, as ``fit`` would apply them."""
    from sklearn.utils._param_validation import (
        InvalidParameterError,
        validate_parameter_constraints,
    )

    constraints = getattr(cls, "_parameter_constraints", None)
    if not constraints:
        return
    try:
        validate_parameter_constraints(constraints, params, caller_name=cls.__name__)
    except InvalidParameterError as exc:
        bad = next((k for k in params if f"'{k}' parameter" in str(exc)), None)
        where = f"{field}.params" + (f".{bad}" if bad else "")
        raise fail(path, where, str(exc).rstrip(".")) from None


def check_state_names(name, cls, state, field, path):
    allowed, required = _STATE.get(name, (set(), set()))
    for attr in state:
        where = f"{field}.state.{attr}"
        if not isinstance(attr, str):
            raise fail(path, where, "attribute names must be strings")
        if allowed is not None and attr not in allowed:
            raise fail(
                path,
                where,
                f"{cls.__name__} has no fitted attribute {attr!r} (allowed: "
                f"{sorted(allowed)})",
            )
        if allowed is None and not (attr.endswith("_") and not attr.startswith("_")):
            raise fail(path, where, f"{attr!r} is not a fitted attribute name")
        if hasattr(cls, attr):
            raise fail(
                path,
                where,
                f"{attr!r} would replace {cls.__name__}.{attr}, a method or property",
            )
    if state:
        missing = sorted(required - set(state))
        if missing:
            raise fail(
                path, f"{field}.state", f"the fitted attributes {missing} are missing"
            )


# ----------------------------------------------------- fitted consistency
def _is_int(value, low=0):
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and value >= low
    )


def check_classes(classes, field, path, min_classes=2):
    if not isinstance(classes, np.ndarray) or classes.ndim != 1:
        raise fail(path, field, f"must be a 1-D array of labels, not {_kind(classes)}")
    if classes.dtype.kind in "iu":
        pass
    elif classes.dtype.kind in "UO" and all(isinstance(c, str) for c in classes):
        pass
    else:
        raise fail(
            path, field, f"labels must be strings or integers, not {classes.dtype}"
        )
    if len(classes) < min_classes:
        raise fail(
            path, field, f"needs at least {min_classes} labels, got {len(classes)}"
        )
    if len(np.unique(classes)) != len(classes):
        raise fail(path, field, f"labels must be unique, got {classes.tolist()}")
    # fit stores them sorted (LabelEncoder, np.unique); label lookups rely on
    # it, and two swapped labels would silently invert every prediction.
    if list(classes) != sorted(classes):
        raise fail(
            path,
            field,
            f"labels must be in sorted order as fit stores them, got {classes.tolist()} "
            "(swapped labels would invert the predictions)",
        )


def _same_labels(a, b):
    return len(a) == len(b) and all(x == y for x, y in zip(a, b, strict=True))


def _array(value, field, path, ndim, kind="f"):
    if not isinstance(value, np.ndarray) or value.ndim != ndim:
        raise fail(path, field, f"must be a {ndim}-D array, not {_kind(value)}")
    if value.dtype.kind not in kind:
        raise fail(path, field, f"has dtype {value.dtype}")
    return value


def _check_leukonet(est, field, path):
    from sklearn.preprocessing import LabelEncoder

    check_classes(est.classes_, f"{field}.state.classes_", path)
    encoder = getattr(est, "_label_encoder", None)
    if encoder is not None and (
        not isinstance(encoder, LabelEncoder)
        or not _same_labels(getattr(encoder, "classes_", ()), est.classes_)
    ):
        raise fail(
            path,
            f"{field}.state._label_encoder",
            "must be a LabelEncoder with the same classes_ as the classifier",
        )
    shape = est.input_shape_
    if not (
        isinstance(shape, tuple)
        and len(shape) == 3
        and all(_is_int(s, 1) for s in shape)
    ):
        raise fail(
            path,
            f"{field}.state.input_shape_",
            f"must be 3 positive ints, got {shape!r}",
        )
    if est.input_kind_ not in ("rgb", "channels_first"):
        raise fail(
            path,
            f"{field}.state.input_kind_",
            f"must be 'rgb' or 'channels_first', got {est.input_kind_!r}",
        )
    spec = est.module_spec_
    keys = {"in_channels", "rgb_input", "autocast_dtype", "channels_last"}
    where = f"{field}.state.module_spec_"
    if not isinstance(spec, dict) or set(spec) != keys:
        raise fail(
            path, where, f"must be an object with exactly the keys {sorted(keys)}"
        )
    if not _is_int(spec["in_channels"], 1):
        raise fail(path, f"{where}.in_channels", "must be a positive int")
    for key in ("rgb_input", "channels_last"):
        if not isinstance(spec[key], bool):
            raise fail(path, f"{where}.{key}", "must be true or false")
    if spec["autocast_dtype"] not in (None, "bfloat16", "float16"):
        raise fail(
            path,
            f"{where}.autocast_dtype",
            f"must be null, 'bfloat16' or 'float16', got {spec['autocast_dtype']!r}",
        )
    if spec["rgb_input"] != (est.input_kind_ == "rgb"):
        raise fail(path, where, "rgb_input disagrees with input_kind_")
    if est.input_kind_ == "rgb" and shape[2] != 3:
        raise fail(
            path, f"{field}.state.input_shape_", "RGB input needs 3 channels last"
        )
    if est.input_kind_ == "channels_first":
        if shape[0] != spec["in_channels"]:
            raise fail(
                path, f"{field}.state.input_shape_", "disagrees with in_channels"
            )
        if est.preprocessing_ is not None:
            raise fail(
                path,
                f"{field}.state.preprocessing_",
                "must be null for channels_first input",
            )
    if not _is_int(est.n_features_out_, 1):
        raise fail(path, f"{field}.state.n_features_out_", "must be a positive int")
    if est.best_epoch_ is not None and not _is_int(est.best_epoch_, 1):
        raise fail(path, f"{field}.state.best_epoch_", "must be null or a positive int")
    from .._classifier._domain import check_domain_summary

    problem = check_domain_summary(
        getattr(est, "domain_summary_", None), est.n_features_out_, len(est.classes_)
    )
    if problem is not None:
        raise fail(path, f"{field}.state.domain_summary_", problem)
    _check_preprocessing_matches(est, field, path)


def _check_preprocessing_matches(est, field, path):
    """The fitted preprocessing must be the one the parameter asks for: the
    network's input depends on it, and channel counts cannot tell e.g. OD
    from RGB scaling."""
    from sklearn.base import clone

    param, fitted = est.preprocessing, est.preprocessing_
    where = f"{field}.state.preprocessing_"
    if param is None or fitted is None:
        if (param is None) != (fitted is None):
            raise fail(
                path, where, f"does not match the parameter preprocessing={param!r}"
            )
        return
    if isinstance(param, str):
        from ..preprocessing import make_preprocessing

        expected = make_preprocessing(param, stain_matrix=est.stain_matrix)
    else:
        expected = clone(param)
    if not _same_transform(fitted, expected):
        raise fail(
            path,
            where,
            f"a fitted {type(fitted).__name__} that is not the preprocessing={param!r} "
            "of the parameters",
        )


# Parameters that only steer fit (sampling, chunking): the fitted state holds
# their result, so they may differ from a freshly built transformer's.
_FIT_ONLY = {"random_state", "n_pixels", "macenko_erosion", "batch_size", "n_jobs"}


def _same_transform(a, b):
    """Same transformer structure and the same parameters that shape the output."""
    if type(a) is not type(b):
        return False
    for attr in ("steps", "transformer_list"):
        if hasattr(a, attr):
            pa, pb = getattr(a, attr), getattr(b, attr)
            return len(pa) == len(pb) and all(
                na == nb and _same_transform(ta, tb)
                for (na, ta), (nb, tb) in zip(pa, pb, strict=True)
            )
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    if set(pa) != set(pb):
        return False
    for key in set(pa) - _FIT_ONLY:
        va, vb = pa[key], pb[key]
        if isinstance(va, str) or isinstance(vb, str):
            if not (isinstance(va, str) and isinstance(vb, str) and va == vb):
                return False
        elif not np.array_equal(
            np.asarray(va, dtype=object), np.asarray(vb, dtype=object)
        ):
            return False
    return True


def _check_label_encoder(est, field, path):
    check_classes(est.classes_, f"{field}.state.classes_", path, min_classes=1)


def _check_logistic(est, field, path):
    check_classes(est.classes_, f"{field}.state.classes_", path)
    coef = _array(est.coef_, f"{field}.state.coef_", path, 2)
    intercept = _array(est.intercept_, f"{field}.state.intercept_", path, 1)
    n_rows = 1 if len(est.classes_) == 2 else len(est.classes_)
    if coef.shape[0] != n_rows or intercept.shape != (n_rows,):
        raise fail(
            path,
            f"{field}.state.coef_",
            f"shape {coef.shape} and intercept_ {intercept.shape} do not fit "
            f"{len(est.classes_)} classes",
        )
    n_in = getattr(est, "n_features_in_", coef.shape[1])
    if n_in != coef.shape[1]:
        raise fail(path, f"{field}.state.n_features_in_", "disagrees with coef_")


def _check_scaler(est, field, path):
    n = getattr(est, "n_features_in_", None)
    for attr in ("mean_", "var_", "scale_"):
        value = getattr(est, attr, None)
        if value is None:
            continue
        value = _array(value, f"{field}.state.{attr}", path, 1)
        if n is not None and value.shape != (n,):
            raise fail(
                path, f"{field}.state.{attr}", f"has shape {value.shape}, not ({n},)"
            )
        n = value.shape[0]


def _check_stain(est, field, path):
    if hasattr(est, "stain_matrix_"):
        matrix = _array(est.stain_matrix_, f"{field}.state.stain_matrix_", path, 2)
        if matrix.shape != (3, 3):
            raise fail(
                path,
                f"{field}.state.stain_matrix_",
                f"has shape {matrix.shape}, not (3, 3)",
            )


def _check_logdct(est, field, path):
    if hasattr(est, "n_channels_in_") and not _is_int(est.n_channels_in_, 1):
        raise fail(path, f"{field}.state.n_channels_in_", "must be a positive int")
    if getattr(est, "thresholds_", None) is not None:
        thresholds = _array(est.thresholds_, f"{field}.state.thresholds_", path, 1)
        if hasattr(est, "n_channels_in_") and thresholds.shape != (est.n_channels_in_,):
            raise fail(
                path, f"{field}.state.thresholds_", "disagrees with n_channels_in_"
            )


def _pairs(value, field, path, what):
    if not isinstance(value, list) or not all(
        isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
        for item in value
    ):
        raise fail(path, field, f"must be a list of (name, {what}) pairs")
    names = [name for name, _ in value]
    if len(set(names)) != len(names):
        raise fail(path, field, f"names must be unique, got {names}")


def _check_pipeline(est, field, path):
    _pairs(est.steps, f"{field}.params.steps", path, "estimator")
    if not est.steps:
        raise fail(path, f"{field}.params.steps", "a Pipeline needs at least one step")
    try:
        est._validate_steps()
    except (TypeError, ValueError) as exc:
        raise fail(path, f"{field}.params.steps", str(exc).rstrip(".")) from None


def _check_union(est, field, path):
    _pairs(
        est.transformer_list, f"{field}.params.transformer_list", path, "transformer"
    )
    if hasattr(est, "transformers_"):
        _pairs(est.transformers_, f"{field}.state.transformers_", path, "transformer")


def _final_step(est):
    return est.steps[-1][1] if hasattr(est, "steps") else est


def _check_fusion(est, field, path):
    from sklearn.preprocessing import LabelEncoder

    _pairs(est.estimators, f"{field}.params.estimators", path, "estimator")
    check_classes(est.classes_, f"{field}.state.classes_", path)
    encoder = est._label_encoder
    if not isinstance(encoder, LabelEncoder) or not _same_labels(
        getattr(encoder, "classes_", ()), est.classes_
    ):
        raise fail(path, f"{field}.state._label_encoder", "must match classes_")
    members = est.estimators_
    if not isinstance(members, list) or not members:
        raise fail(path, f"{field}.state.estimators_", "must be a non-empty list")
    kept = est._kept_names
    if not (isinstance(kept, list) and len(kept) == len(members)):
        raise fail(
            path, f"{field}.state._kept_names", "must name every fitted estimator"
        )
    check_fusion_members(est, field, path, fail)
    final = est.final_estimator_
    final_classes = getattr(_final_step(final), "classes_", None)
    if final_classes is None or not _same_labels(
        final_classes, np.arange(len(est.classes_))
    ):
        raise fail(
            path,
            f"{field}.state.final_estimator_",
            "its classes_ must be the encoded labels 0..n_classes-1",
        )
    for i, member in enumerate(members):
        member_classes = getattr(_final_step(member), "classes_", None)
        if member_classes is not None and not _same_labels(
            member_classes, est.classes_
        ):
            raise fail(
                path,
                f"{field}.state.estimators_[{i}] classes_",
                f"{list(member_classes)!r} disagree with the fusion's classes_ "
                f"{list(est.classes_)!r}",
            )
    widths = [getattr(_final_step(m), "n_features_out_", None) for m in members]
    per_estimator = getattr(est, "n_features_per_estimator_", None)
    if per_estimator is not None and list(per_estimator) != widths:
        raise fail(
            path,
            f"{field}.state.n_features_per_estimator_",
            f"{per_estimator!r} disagrees with the networks' features {widths}",
        )
    if all(_is_int(w, 1) for w in widths) and sum(widths) != est.n_features_out_:
        raise fail(
            path,
            f"{field}.state.n_features_out_",
            f"{est.n_features_out_!r} is not the sum of the networks' features {widths}",
        )
    n_in = getattr(_final_step(final), "n_features_in_", est.n_features_out_)
    if n_in != est.n_features_out_:
        raise fail(
            path, f"{field}.state.final_estimator_", "disagrees with n_features_out_"
        )


#: class name -> consistency check of a fitted estimator of that class.
FITTED_CHECKS = {
    LEUKONET: _check_leukonet,
    FUSION: _check_fusion,
    "sklearn.preprocessing.LabelEncoder": _check_label_encoder,
    "sklearn.linear_model.LogisticRegression": _check_logistic,
    "sklearn.preprocessing.StandardScaler": _check_scaler,
    "sklearn_leuko.preprocessing.StainDeconvolution": _check_stain,
    "sklearn_leuko.preprocessing.LogDCT": _check_logdct,
}

#: class name -> check of the (fitted or not) structure given by parameters.
STRUCTURE_CHECKS = {
    PIPELINE: _check_pipeline,
    "sklearn_leuko.preprocessing.ChannelUnion": _check_union,
}
