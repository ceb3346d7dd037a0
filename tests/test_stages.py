"""make_stage and STAGES: the paper's configurations."""

import os

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from sklearn_leuko import (
    STAGES,
    FeatureFusionClassifier,
    LeukoNetClassifier,
    make_stage,
)
from sklearn_leuko.utils._groups import fit_with_groups

TINY = dict(
    widths=(4, 4, 8, 8, 8, 8), max_epochs=2, batch_size=16, verbose=0, random_state=0
)
VGG_TINY = {**TINY, "widths": (4, 4, 8, 8, 8, 8, 8, 8)}


def _nets(stage):
    """The LeukoNetClassifier(s) of a stage, by base name ("" for single stages)."""
    if isinstance(stage, FeatureFusionClassifier):
        return {name: est[-1] for name, est in stage.estimators}
    return {"": stage[-1]}


def test_stages_lists_the_paper_configurations():
    assert STAGES == ("1", "2", "2C", "3", "3C", "vgg11")


@pytest.mark.parametrize(
    "name, preprocessing, architecture",
    [
        ("1", "od", "basic"),
        ("2", "log_dct", "basic"),
        ("2C", "od+log_dct", "basic"),
        ("vgg11", "od", "vgg11"),
    ],
)
def test_single_stages_are_one_step_pipelines(name, preprocessing, architecture):
    stage = make_stage(name)
    assert isinstance(stage, Pipeline)
    assert [step for step, _ in stage.steps] == ["net"]
    net = stage[-1]
    assert isinstance(net, LeukoNetClassifier)
    assert (net.preprocessing, net.architecture) == (preprocessing, architecture)


@pytest.mark.parametrize(
    "name, second, preprocessing",
    [("3", "stage2", "log_dct"), ("3C", "stage2c", "od+log_dct")],
)
def test_fusion_stages_fuse_stage1_with_stage2_or_2c(name, second, preprocessing):
    stage = make_stage(name)
    assert isinstance(stage, FeatureFusionClassifier)
    assert [base for base, _ in stage.estimators] == ["stage1", second]
    nets = _nets(stage)
    assert nets["stage1"].preprocessing == "od"
    assert nets[second].preprocessing == preprocessing
    assert stage.cv == "in_sample"
    # explicit final estimator so its parameters can be searched by name
    assert "final_estimator__C" in stage.get_params()


@pytest.mark.parametrize("name", STAGES)
def test_every_stage_fits_and_predicts(tiny_cells, name):
    d = tiny_cells
    stage = make_stage(name, **(VGG_TINY if name == "vgg11" else TINY))
    fit_with_groups(stage, d.images, d.target, d.groups)
    pred = stage.predict(d.images)
    assert pred.shape == (len(d.images),)
    assert set(pred) <= {"all", "hem"}
    assert stage.predict_proba(d.images).shape == (len(d.images), 2)


@pytest.mark.parametrize(
    "alias, canonical",
    [("3c", "3C"), ("2c", "2C"), ("VGG11", "vgg11"), ("Stage-3C", "3C"), (1, "1")],
)
def test_stage_names_are_case_insensitive(alias, canonical):
    assert clone(make_stage(alias)).get_params(deep=True).keys() == (
        make_stage(canonical).get_params(deep=True).keys()
    )
    assert repr(make_stage(alias)) == repr(make_stage(canonical))


def test_params_apply_to_every_network():
    stage = make_stage(
        "3C",
        lr=0.01,
        activation="ptelu",
        widths=(4, 4, 8, 8, 8, 8),
        random_state=3,
        device="cpu",
    )
    for net in _nets(stage).values():
        assert (net.lr, net.activation, net.widths, net.random_state, net.device) == (
            0.01,
            "ptelu",
            (4, 4, 8, 8, 8, 8),
            3,
            "cpu",
        )


@pytest.mark.parametrize("name, second", [("3", "stage2"), ("3C", "stage2c")])
def test_augment_applies_to_the_stage1_network_only_in_fusion(name, second):
    nets = _nets(make_stage(name, augment="minority"))
    assert nets["stage1"].augment == "minority"
    assert nets[second].augment == "off"


def test_augment_applies_to_a_single_stage():
    assert make_stage("2C", augment="all")[-1].augment == "all"


def test_fusion_params_reach_the_fusion():
    final = LogisticRegression(C=0.3)
    stage = make_stage("3", cv=3, n_jobs=2, final_estimator=final)
    assert (stage.cv, stage.n_jobs, stage.final_estimator) == (3, 2, final)


def test_checkpoint_dir_gets_one_folder_per_network(tmp_path):
    nets = _nets(make_stage("3C", checkpoint_dir=tmp_path))
    assert nets["stage1"].checkpoint_dir == os.path.join(tmp_path, "stage1")
    assert nets["stage2c"].checkpoint_dir == os.path.join(tmp_path, "stage2c")


def test_unknown_stage_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match=r"Unknown stage '4'.*'1', '2', '2C', '3', '3C', 'vgg11'"
    ):
        make_stage("4")


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown parameter 'epochs'.*max_epochs"):
        make_stage("1", epochs=3)


def test_fusion_parameters_are_refused_for_single_stages():
    with pytest.raises(
        ValueError, match="'cv' is a fusion parameter, only for the fusion stages"
    ):
        make_stage("2C", cv=2)


@pytest.mark.parametrize(
    "key, value", [("preprocessing", "od"), ("architecture", "vgg11")]
)
def test_stage_defining_parameters_are_refused(key, value):
    with pytest.raises(ValueError, match=f"'{key}' is fixed by the stage"):
        make_stage("1", **{key: value})


def test_fusion_stage_equals_prefit_fusion_of_its_single_stages(tiny_cells):
    """Stage-3 in-sample = fusing separately trained Stage-1 and Stage-2 nets
    (the paper's procedure; benchmarks/accuracy/stage_accuracy.py relies on it)."""
    from sklearn_leuko.ensemble import default_final_estimator

    d = tiny_cells
    fitted = {
        name: fit_with_groups(make_stage(name, **TINY), d.images, d.target, d.groups)
        for name in ("1", "2")
    }
    by_hand = FeatureFusionClassifier(
        [("stage1", fitted["1"]), ("stage2", fitted["2"])],
        default_final_estimator(),
        cv="prefit",
    ).fit(d.images, d.target)
    stage3 = make_stage("3", **TINY).fit(d.images, d.target, groups=d.groups)
    np.testing.assert_allclose(
        stage3.predict_proba(d.images), by_hand.predict_proba(d.images), rtol=1e-6
    )


# ------------------------------------------------------------ image sizes
def _random_cells(height, width, n=16):
    images = np.random.default_rng(0).integers(0, 256, (n, height, width, 3), np.uint8)
    return images, np.array(["all", "hem"] * (n // 2)), np.repeat(np.arange(n // 2), 2)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("size", [(1, 1), (1, 3), (3, 1), (2, 2)])
def test_every_stage_handles_the_smallest_images(stage, size):
    """1x1 px is the minimum every stage supports (issue 14): the ceil-mode
    poolings keep a 1x1 map at 1x1, and the log-DCT of a single pixel is its
    DC coefficient (before, it ended in a NumPy negative-stride error)."""
    X, y, groups = _random_cells(*size)
    params = {**(VGG_TINY if stage == "vgg11" else TINY), "max_epochs": 1}
    params["batch_size"] = 8
    model = fit_with_groups(make_stage(stage, **params), X, y, groups)
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert np.isfinite(proba).all()


@pytest.mark.parametrize("stage", ["1", "2C", "vgg11"])
@pytest.mark.parametrize("size", [(0, 0), (0, 4), (4, 0)])
def test_images_below_the_minimum_are_refused_at_fit(stage, size):
    X, y, groups = _random_cells(*size)
    params = {**(VGG_TINY if stage == "vgg11" else TINY), "max_epochs": 1}
    with pytest.raises(ValueError, match=r"at least 1 pixel high and wide"):
        fit_with_groups(make_stage(stage, **params), X, y, groups)
