"""Out-of-domain flag: domain_score / in_domain on every fitted classifier."""

import re
import warnings

import numpy as np
import pytest

from sklearn_leuko import LeukoNetClassifier, load_model, make_stage, save_model
from sklearn_leuko._classifier._domain import (
    check_domain_summary,
    fit_domain_summary,
    model_domain_score,
)
from sklearn_leuko.datasets import make_cells

NET = dict(widths=(8,) * 6, max_epochs=2, verbose=0, random_state=0)


@pytest.fixture(scope="module")
def cells():
    return make_cells(n_subjects=8, cells_per_subject=6, image_size=64, random_state=0)


@pytest.fixture(scope="module")
def fitted(cells):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LeukoNetClassifier(preprocessing="od", **NET)
        return clf.fit(cells.images, cells.target, groups=cells.groups)


def _noise(n=6, size=64):
    return np.random.default_rng(1).integers(0, 256, (n, size, size, 3), np.uint8)


def test_summary_flags_noise_not_training_cells(fitted, cells):
    assert (
        check_domain_summary(fitted.domain_summary_, fitted.n_features_out_, 2) is None
    )
    assert fitted.in_domain(cells.images).mean() >= 0.9
    assert not fitted.in_domain(_noise()).any()
    scores = fitted.domain_score(cells.images)
    assert scores.shape == (len(cells.images),) and np.isfinite(scores).all()


def test_threshold_is_the_held_out_quantile():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 20))
    held = rng.normal(size=(400, 20))
    summary = fit_domain_summary(train, rng.integers(0, 2, 300), held)
    from sklearn_leuko._classifier._domain import domain_scores

    flagged = (domain_scores(summary, held) > 1).mean()
    assert 0.005 <= flagged <= 0.02
    far = domain_scores(summary, held + 5.0)
    assert (far > 1).all()


@pytest.mark.parametrize("suffix", [".safetensors", ".joblib"])
def test_both_model_formats_keep_the_summary(fitted, tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    save_model(fitted, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load_model(path)
    X = np.concatenate([_noise(3), fitted_images(fitted)])
    np.testing.assert_allclose(
        loaded.domain_score(X), fitted.domain_score(X), rtol=1e-5
    )


def fitted_images(fitted):
    return make_cells(
        n_subjects=2, cells_per_subject=2, image_size=64, random_state=3
    ).images


def test_a_broken_summary_is_refused(fitted, tmp_path):
    from sklearn.base import clone

    broken = clone(fitted)
    broken.__dict__.update(fitted.__dict__)
    broken.domain_summary_ = dict(fitted.domain_summary_, mean=np.zeros(3, np.float32))
    path = tmp_path / "broken.safetensors"
    save_model(broken, path)
    with pytest.raises(ValueError, match="domain_summary_"):
        load_model(path)


def test_old_model_without_summary_says_refit(fitted):
    from sklearn.base import clone

    old = clone(fitted)
    old.__dict__.update(
        {k: v for k, v in fitted.__dict__.items() if k != "domain_summary_"}
    )
    with pytest.raises(ValueError, match="refit"):
        old.domain_score(_noise(2))


def test_fusion_and_pipeline(cells):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stage = make_stage("3C", cv=2, **NET).fit(
            cells.images, cells.target, groups=cells.groups
        )
        single = make_stage("1", **NET).fit(
            cells.images, cells.target, net__groups=cells.groups
        )
    scores = stage.domain_score(_noise())
    parts = [model_domain_score(est, _noise()) for est in stage.estimators_]
    np.testing.assert_allclose(scores, np.max(parts, axis=0))
    assert not stage.in_domain(_noise()).any()
    assert model_domain_score(single, _noise()).shape == (6,)
    with pytest.raises(TypeError, match="no domain summary"):
        model_domain_score(object(), _noise())


def test_cli_predict_writes_in_domain_and_warns(fitted, cells, tmp_path, capsys):
    import csv

    from PIL import Image

    from sklearn_leuko._cli import main

    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate([*cells.images[:3], *_noise(2)]):
        Image.fromarray(image).save(folder / f"cell{i}.png")
    model = tmp_path / "model.safetensors"
    save_model(fitted, model)
    out = tmp_path / "pred.csv"
    argv = ["predict", "--model", str(model), "--images", str(folder), "--quiet"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "2 of 5 images are out of domain" in capsys.readouterr().err
    with open(out) as handle:
        rows = list(csv.DictReader(handle))
    flags = [row["in_domain"] for row in rows]
    expected = fitted.in_domain(np.concatenate([cells.images[:3], _noise(2)]))
    assert flags == [str(f).lower() for f in expected]
    assert flags[3:] == ["false", "false"]


def test_html_report_shows_the_out_of_domain_share(tmp_path):
    from sklearn_leuko.evaluation import run_protocol
    from sklearn_leuko.report import to_html

    data = make_cells(n_subjects=12, cells_per_subject=4, image_size=65, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_protocol(
            data.images,
            data.target,
            data.groups,
            stages=["1"],
            n_splits=2,
            test_subjects=4,
            net_params={"max_epochs": 1, "widths": (4,) * 6},
            progress=False,
        )
        text = to_html(result, tmp_path / "r.html", data.images).read_text()
    match = re.search(r"Out-of-domain cells</h2><p>(\d+) of (\d+) cells", text)
    assert match is not None
    assert int(match[2]) == (result.predictions["Stage-1"]["split"] == "test").sum()


def test_input_statistics_are_background_share_and_cell_means():
    from sklearn_leuko._classifier._domain import input_statistics

    image = np.zeros((1, 4, 4, 3), np.uint8)
    image[0, :2, :2] = (10, 20, 30)  # a 2x2 "cell" on black: 12 of 16 background
    stats = input_statistics(image, channels_last=True)
    np.testing.assert_allclose(stats, [[0.75, 10, 20, 30]])
    first = input_statistics(np.moveaxis(image, -1, 1).astype(np.float32), False)
    np.testing.assert_allclose(first, stats)
    np.testing.assert_allclose(input_statistics(image * 0, True), [[1, 0, 0, 0]])


def test_cells_on_a_light_background_are_flagged(fitted, cells):
    # The same cells, their black background made the light grey of a smear:
    # the features barely move, the input statistics do.
    light = cells.images.copy()
    light[(light == 0).all(axis=-1)] = (235, 215, 200)
    assert set(fitted.domain_summary_) >= {"input_mean", "input_scale"}
    assert not fitted.in_domain(light).any()
    assert fitted.in_domain(cells.images).mean() >= 0.9


def test_a_summary_without_the_input_term_still_scores(fitted, tmp_path):
    from sklearn.base import clone

    from sklearn_leuko._classifier._domain import _INPUT_KEYS

    old = clone(fitted)
    old.__dict__.update(fitted.__dict__)
    old.domain_summary_ = {
        k: v for k, v in fitted.domain_summary_.items() if k not in _INPUT_KEYS
    }
    path = tmp_path / "old.safetensors"
    save_model(old, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load_model(path)
    X = fitted_images(fitted)
    scores = loaded.domain_score(X)
    assert np.isfinite(scores).all()
    assert (scores <= fitted.domain_score(X) + 1e-9).all()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"input_scale": np.zeros(4)}, "input_scale positive"),
        ({"input_scale": np.ones(3)}, "one shape"),
        ({"input_threshold": -1.0}, "input_threshold"),
    ],
)
def test_a_broken_input_summary_is_refused(fitted, change, message):
    broken = dict(fitted.domain_summary_, **change)
    problem = check_domain_summary(broken, fitted.n_features_out_, 2)
    assert problem is not None and message in problem
