"""Model files whose fields disagree with each other are refused at load.

A digest proves integrity, not consistency: these files are edited and then
given a matching digest, so that only the schema's cross-field checks can
catch them. Each must fail with a ValueError naming the field.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.linear_model import LogisticRegression

from sklearn_leuko import load_safetensors, make_stage, save_safetensors
from sklearn_leuko._persistence._schema import file_digest
from sklearn_leuko.datasets import make_cells

MEMBER = ("state", "estimators_", 0, "params", "steps", 0, "__tuple__", 1, "state")


@pytest.fixture(scope="module")
def fusion_file(tmp_path_factory):
    data = make_cells(n_subjects=6, cells_per_subject=4, image_size=16, random_state=0)
    model = make_stage(
        "3C",
        final_estimator=LogisticRegression(),
        widths=(2,) * 6,
        max_epochs=1,
        verbose=0,
        random_state=0,
        validation_fraction=None,
    ).fit(data.images, data.target, groups=data.groups)
    path = tmp_path_factory.mktemp("consistency") / "3c.safetensors"
    save_safetensors(model, path)
    with safe_open(path, framework="pt") as handle:
        return handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}


def _at(tree, where):
    for key in where:
        tree = tree[key]
    return tree


def _swap_member_classes(tree):
    member = _at(tree, MEMBER)
    for node in (member["classes_"], member["_label_encoder"]["state"]["classes_"]):
        node["__strarray__"] = node["__strarray__"][::-1]
    return "classes_"


def _bump_per_estimator(tree, k):
    widths = tree["state"]["n_features_per_estimator_"]
    widths[0] += k
    return "n_features_per_estimator_"


def _bump_fusion_width(tree, k):
    tree["state"]["n_features_out_"] += k
    return "n_features_out_"


def _bump_network_width(tree, k):
    _at(tree, MEMBER)["n_features_out_"] += k
    # the first check to see it may be the network's own domain summary
    return "n_features_out_|domain_summary_.*features"


def _bump_input_channels(tree, k):
    shape = _at(tree, MEMBER)["input_shape_"]
    node = shape["__tuple__"] if isinstance(shape, dict) else shape
    node[-1] += k
    return "input_shape_"


def _reorder_kept_names(tree):
    tree["state"]["_kept_names"] = tree["state"]["_kept_names"][::-1]
    return "_kept_names"


def _bump_member_image_size(tree, k):
    shape = _at(tree, MEMBER)["input_shape_"]
    node = shape["__tuple__"] if isinstance(shape, dict) else shape
    node[0] += k
    return r"estimators_\[1\] input_shape_: .* estimators_\[0\]"


EDITS = {
    "kept names": lambda tree, k: _reorder_kept_names(tree),
    "member image size": _bump_member_image_size,
    "input channels": _bump_input_channels,
    "member classes": lambda tree, k: _swap_member_classes(tree),
    "per-estimator widths": _bump_per_estimator,
    "fusion width": _bump_fusion_width,
    "network width": _bump_network_width,
}


def _write(metadata, tensors, tree, path):
    metadata = dict(metadata)
    metadata["config"] = json.dumps(tree)
    metadata["digest"] = file_digest(metadata, tensors)
    save_file(tensors, path, metadata=metadata)
    return path


def test_unedited_file_loads(fusion_file, tmp_path):
    metadata, tensors = fusion_file
    tree = json.loads(metadata["config"])
    model = load_safetensors(
        _write(metadata, tensors, tree, tmp_path / "ok.safetensors")
    )
    assert list(model.classes_) == ["all", "hem"]


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_each_inconsistent_field_is_named(fusion_file, tmp_path, edit):
    metadata, tensors = fusion_file
    tree = json.loads(metadata["config"])
    field = EDITS[edit](tree, 1)
    path = _write(metadata, tensors, tree, tmp_path / "edited.safetensors")
    with pytest.raises(ValueError, match=field):
        load_safetensors(path)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(edit=st.sampled_from(sorted(EDITS)), k=st.integers(1, 1000))
def test_any_single_inconsistent_edit_with_a_valid_digest_is_refused(
    fusion_file, tmp_path, edit, k
):
    metadata, tensors = fusion_file
    tree = json.loads(metadata["config"])
    field = EDITS[edit](tree, k)
    path = _write(metadata, tensors, tree, tmp_path / "prop.safetensors")
    with pytest.raises(ValueError, match=field) as info:
        load_safetensors(path)
    assert str(path) in str(info.value)
