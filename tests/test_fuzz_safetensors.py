"""Fuzzing the model-file loader: hypothesis edits the JSON config of saved files.

Each example takes a small saved model (a Stage-1 network, or a Stage-3C fusion
of two), edits its config the way a broken tool, a careless hand or an attacker
might (drop a key, change a type, nest deeply, put in huge or non-finite
numbers, swap two values) and stores it with a matching digest, so that the
schema and not the digest has to catch the damage. The loader must then
either refuse the file with a ``ValueError`` that names it, or load a model
whose predictions are probabilities (or that refuses input with a clear
``ValueError``/``TypeError``). Time and memory stay bounded.
"""

import json
import resource
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.linear_model import LogisticRegression

from sklearn_leuko import load_safetensors, make_stage, save_safetensors
from sklearn_leuko._persistence._schema import file_digest
from sklearn_leuko.datasets import make_cells

WIDTHS = (2, 2, 2, 2, 2, 2)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(metadata, tensors, images) of a Stage-1 and a Stage-3C file."""
    data = make_cells(n_subjects=6, cells_per_subject=4, image_size=16, random_state=0)
    X, y, g = data.images, data.target, data.groups
    params = dict(
        widths=WIDTHS, max_epochs=1, verbose=0, random_state=0, validation_fraction=None
    )
    models = {
        "1": make_stage("1", **params).fit(X, y),
        "3C": make_stage("3C", final_estimator=LogisticRegression(), **params).fit(
            X, y, groups=g
        ),
    }
    folder = tmp_path_factory.mktemp("fuzz")
    out = {}
    for name, model in models.items():
        path = folder / f"{name}.safetensors"
        save_safetensors(model, path)
        with safe_open(path, framework="pt") as handle:
            out[name] = (
                handle.metadata(),
                {k: handle.get_tensor(k) for k in handle.keys()},
            )
    return out, X[:4]


def _locations(tree, here=()):
    """Every (container path, key) of the JSON tree."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return
    for key, value in items:
        yield here, key
        yield from _locations(value, (*here, key))


def _get(tree, where):
    for key in where:
        tree = tree[key]
    return tree


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 4096, 10**30, 1e308, float("inf"), float("nan"), -0.0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "basic", "vgg11", "od", "all", "hem", "__ref__", "rgb"]),
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                ["__tuple__", "__tensor__", "__strarray__", "__dict__", "x", "params"]
            ),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=8,
)


@st.composite
def edits(draw):
    kind = draw(st.sampled_from(["drop", "replace", "nest", "swap", "retype"]))
    return (
        kind,
        draw(st.integers(min_value=0)),
        draw(st.integers(min_value=0)),
        draw(_JSON),
    )


def _apply(tree, edit):
    kind, pick, other, value = edit
    places = list(_locations(tree))
    if not places:
        return value
    where, key = places[pick % len(places)]
    parent = _get(tree, where)
    if kind == "drop":
        del parent[key]
    elif kind == "replace":
        parent[key] = value
    elif kind == "nest":
        nested = parent[key]
        for _ in range(other % 200 + 1):
            nested = [nested] if other % 2 else {"__tuple__": nested}
        parent[key] = nested
    elif kind == "swap":
        where2, key2 = places[other % len(places)]
        parent2 = _get(tree, where2)
        try:
            parent[key], parent2[key2] = parent2[key2], parent[key]
        except (IndexError, KeyError):
            parent[key] = value
    else:  # retype: the same content under another JSON type
        current = parent[key]
        parent[key] = (
            json.dumps(current)
            if not isinstance(current, str)
            else {"__tuple__": [current]}
        )
    return tree


def _peak_mib():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    stage=st.sampled_from(["1", "3C"]),
    edit_list=st.lists(edits(), min_size=1, max_size=3),
)
def test_edited_configs_load_correctly_or_fail_clearly(
    saved, tmp_path, stage, edit_list
):
    files, images = saved
    metadata, tensors = files[stage]
    metadata = dict(metadata)
    tree = json.loads(metadata["config"])
    for edit in edit_list:
        tree = _apply(tree, edit)
    metadata["config"] = json.dumps(tree)
    if isinstance(tree, dict) and isinstance(tree.get("__estimator__"), str):
        metadata["estimator"] = tree["__estimator__"]
    metadata["digest"] = file_digest(metadata, tensors)
    path = tmp_path / "fuzzed.safetensors"
    save_file(tensors, path, metadata=metadata)

    start, peak = time.perf_counter(), _peak_mib()
    try:
        model = load_safetensors(path)
    except ValueError as exc:
        assert str(path) in str(exc), exc
        model = None
    assert time.perf_counter() - start < 20  # ~0.05 s; generous for a loaded machine
    assert _peak_mib() - peak < 300  # the stored tensors are a few KB
    if model is None:
        return
    try:
        proba = model.predict_proba(images)
    except (ValueError, TypeError):
        return  # e.g. an edited input_shape_: refused with a clear error
    assert proba.shape == (len(images), len(model.classes_))
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
