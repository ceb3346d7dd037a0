"""The stage registry: the one place that knows each stage."""

import pytest

from sklearn_leuko import STAGES, FeatureFusionClassifier, get_stage, make_stage
from sklearn_leuko._registry import (
    DEFAULT_PROTOCOL_STAGES,
    PAPER_BEST_STAGE,
    StageSpec,
    _register,
    _unregister,
    network_checkpoint_dir,
    network_stages,
)
from sklearn_leuko.evaluation._plan import make_plan


def test_every_entry_is_consistent():
    labels = [get_stage(s).label for s in STAGES]
    assert len(set(labels)) == len(labels)
    networks = [get_stage(s).network_name for s in STAGES if not get_stage(s).is_fusion]
    assert len(set(networks)) == len(networks)
    for name in STAGES:
        spec = get_stage(name)
        if spec.is_fusion:
            assert not spec.preprocessing and not spec.architecture
            assert set(spec.augmented_parts) <= set(spec.parts)
            assert all(not get_stage(p).is_fusion for p in spec.parts)
        else:
            assert spec.preprocessing and spec.architecture and spec.network_name
    assert set(DEFAULT_PROTOCOL_STAGES) <= set(STAGES)
    assert PAPER_BEST_STAGE in STAGES


@pytest.mark.parametrize(
    "spelling, name",
    [("2c", "2C"), ("Stage-3C", "3C"), ("stage_1", "1"), (2, "2"), ("VGG-11", "vgg11")],
)
def test_spellings(spelling, name):
    assert get_stage(spelling).name == name


@pytest.mark.parametrize("bad", ["4", None, True, 3.0, "stage-"])
def test_unknown_stage_lists_the_valid_ones(bad):
    with pytest.raises(ValueError, match="valid stages are '1', '2', '2C'"):
        get_stage(bad)


def test_make_stage_follows_the_registry():
    for name in STAGES:
        spec = get_stage(name)
        stage = make_stage(name)
        if spec.is_fusion:
            assert [n for n, _ in stage.estimators] == [
                p.network_name for p in spec.part_specs()
            ]
        else:
            assert stage[-1].preprocessing == spec.preprocessing
            assert stage[-1].architecture == spec.architecture


def test_network_stages_and_checkpoint_layout():
    assert network_stages(["3C", "1", "2"]) == ["1", "2C", "2"]
    assert network_checkpoint_dir("ckpt", "stage1").endswith("ckpt/stage1")
    assert network_checkpoint_dir("ckpt", "stage1", fold=2).endswith(
        "ckpt/fold2/stage1"
    )


@pytest.fixture
def extra_stage():
    """A stage added with one entry: Stage-1 fused with the VGG-11 baseline."""
    spec = StageSpec(
        name="3V",
        label="Stage-3V",
        description="fusion of Stage-1 and VGG-11",
        parts=("1", "vgg11"),
        augmented_parts=("1",),
    )
    _register(spec)
    yield spec
    _unregister(spec.name)


def test_adding_a_stage_is_one_entry(extra_stage):
    stage = make_stage("stage-3v", augment="all")
    assert isinstance(stage, FeatureFusionClassifier)
    params = stage.get_params()
    assert params["stage1__net__augment"] == "all"
    assert params["vgg11__net__augment"] == "off"
    assert params["vgg11__net__architecture"] == "vgg11"
    # the protocol plans it, sharing the Stage-1 network with stage "1"
    plan = make_plan(["1", "3V"], {"verbose": 0}, {}, 0)
    assert [name for name, _ in plan.networks] == ["stage1", "vgg11"]
    assert plan.uses == {"1": [0], "3V": [0, 1]}


def test_registering_twice_or_fusing_a_fusion_is_refused():
    with pytest.raises(ValueError, match="registered already"):
        _register(get_stage("1"))
    bad = StageSpec(name="33", label="x", description="x", parts=("3", "1"))
    with pytest.raises(ValueError, match="another fusion"):
        _register(bad)


def _docstrings(tree):
    import ast

    nodes = [tree, *ast.walk(tree)]
    for node in nodes:
        if isinstance(
            node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        ):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr):
                yield body[0].value


def test_stage_names_live_in_the_registry_only():
    """No string in the package's code names a stage, but the registry's."""
    import ast
    import pathlib
    import re

    import sklearn_leuko

    root = pathlib.Path(sklearn_leuko.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "_registry.py":
            continue
        tree = ast.parse(path.read_text())
        docs = {id(node) for node in _docstrings(tree)}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and (
                    node.value in ("2C", "3C")
                    or re.search(r"""(["'])(2C|3C)\1""", node.value)
                )
            ):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not offenders, offenders
