"""LeukoNetClassifier.explain: Grad-CAM heatmaps through the estimator API."""

import numpy as np
import pytest

from sklearn_leuko import LeukoNetClassifier, make_stage
from sklearn_leuko.datasets import make_cells

TINY = dict(widths=(4, 4, 8, 8, 8, 8), max_epochs=2, verbose=0, random_state=0)


@pytest.fixture(scope="module")
def cells():
    # 65 px: the smallest size with a 2x2 last feature map (a 1x1 map has no
    # spatial layout to explain).
    return make_cells(n_subjects=8, cells_per_subject=4, image_size=65, random_state=0)


@pytest.fixture(scope="module")
def fitted(cells):
    return LeukoNetClassifier(preprocessing="od", **TINY).fit(
        cells.images, cells.target, groups=cells.groups
    )


def test_heatmaps_are_per_cell_maps_in_unit_range(fitted, cells):
    heat = fitted.explain(cells.images[:5])
    assert heat.shape == (5, 65, 65) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1
    peaks = heat.reshape(5, -1).max(axis=1)
    assert np.all((peaks == 1) | (peaks == 0))


def test_explaining_leaves_no_gradient_and_changes_nothing(fitted, cells):
    module = fitted.net_.module_
    before = {k: v.clone() for k, v in module.state_dict().items()}
    proba = fitted.predict_proba(cells.images)
    fitted.explain(cells.images[:4], target="hem", views=4)
    assert all(p.grad is None for p in module.parameters())
    for key, value in module.state_dict().items():
        assert np.array_equal(value.numpy(), before[key].numpy()), key
    np.testing.assert_array_equal(fitted.predict_proba(cells.images), proba)


def test_targets(fitted, cells):
    X = cells.images[:3]
    predicted = fitted.predict(X)
    np.testing.assert_array_equal(
        fitted.explain(X, target="predicted"), fitted.explain(X, target=predicted)
    )
    with pytest.raises(ValueError, match="not a class of this classifier"):
        fitted.explain(X, target="blast")
    with pytest.raises(ValueError, match="one label per image"):
        fitted.explain(X, target=["all", "hem"])
    with pytest.raises(ValueError, match="views must be one of"):
        fitted.explain(X, views=3)


def test_views_average_heatmaps_mapped_back_onto_the_cell(fitted, cells):
    X = cells.images[:2]
    flipped = fitted.explain(X[:, :, ::-1].copy())[:, :, ::-1]
    plain = fitted.explain(X)
    both = fitted.explain(X, views=2)
    expected = plain + flipped
    expected /= expected.reshape(2, -1).max(axis=1)[:, None, None]
    np.testing.assert_allclose(both, expected, atol=1e-5)


def test_fused_stages_are_explained_through_their_networks(cells):
    from sklearn_leuko import stage_networks

    stage = make_stage("3C", **TINY).fit(
        cells.images, cells.target, groups=cells.groups
    )
    nets = stage_networks(stage)
    assert [name for name, _ in nets] == ["stage1", "stage2c"]
    for _, net in nets:
        assert net.explain(cells.images[:2]).shape == (2, 65, 65)
