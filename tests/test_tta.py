"""Tests of the test-time augmentation building blocks in sklearn_leuko.nn."""

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_leuko.nn import (
    DIHEDRAL_VIEWS,
    BasicNetwork,
    ImageAugmenter,
    dihedral_view,
    inverse_dihedral_view,
    tta_predict_proba,
)
from sklearn_leuko.nn._leukonet import LeukoNetModule


def _nhwc(n=3, h=6, w=6, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, h, w, 3), np.uint8))


@pytest.mark.parametrize("k", range(8))
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_inverse_view_gives_back_the_image_exactly(k, layout):
    x = _nhwc() if layout == "NHWC" else torch.rand(2, 3, 5, 5)
    view = dihedral_view(x, k, layout=layout)
    assert view.shape == x.shape and view.dtype == x.dtype
    assert torch.equal(inverse_dihedral_view(view, k, layout=layout), x)


def test_the_eight_views_are_the_eight_symmetries_of_the_square():
    x = _nhwc(n=1)
    views = [dihedral_view(x, k) for k in range(8)]
    # All distinct for a generic image: the full group, no view twice.
    assert len({v.numpy().tobytes() for v in views}) == 8
    spatial = (1, 2)
    assert torch.equal(views[1], torch.flip(x, dims=(2,)))  # left-right
    assert torch.equal(views[2], torch.flip(x, dims=(1,)))  # up-down
    assert torch.equal(views[3], torch.rot90(x, 2, dims=spatial))
    assert torch.equal(views[4], torch.rot90(x, 1, dims=spatial))
    assert torch.equal(views[5], torch.rot90(x, 3, dims=spatial))
    assert torch.equal(views[6], x.transpose(1, 2))
    # The same pixels, only moved: exact, no interpolation.
    for v in views:
        assert torch.equal(
            torch.sort(v.flatten()).values, torch.sort(x.flatten()).values
        )
    assert len(DIHEDRAL_VIEWS) == 8


def test_nchw_views_match_nhwc_views():
    x = _nhwc()
    for k in range(8):
        nchw = dihedral_view(x.permute(0, 3, 1, 2), k, layout="NCHW")
        assert torch.equal(nchw.permute(0, 2, 3, 1), dihedral_view(x, k))


def test_non_square_images_allow_flips_only():
    x = _nhwc(h=4, w=7)
    for k in range(4):
        assert torch.equal(inverse_dihedral_view(dihedral_view(x, k), k), x)
    with pytest.raises(ValueError, match="square images"):
        dihedral_view(x, 4)


def _sum_logits(x):
    # Invariant to every flip and rotation; exact on integer images.
    s = x.double().sum(dim=(1, 2, 3))
    return torch.stack([s / 1e5, -s / 1e5], dim=1).float()


@pytest.mark.parametrize("n_views", [1, 2, 4, 8])
def test_invariant_function_gives_identical_output(n_views):
    x = _nhwc(n=5)
    expected = torch.softmax(_sum_logits(x), dim=1)
    got = tta_predict_proba(_sum_logits, x, n_views=n_views, batch_size=2)
    assert torch.equal(got, expected)


def _corner_logits(x):
    # Depends on the top-left pixel only: every view sees another pixel.
    v = x[:, 0, 0, :].float().sum(dim=1) / 100.0
    return torch.stack([v, torch.zeros_like(v)], dim=1)


@pytest.mark.parametrize("n_views", [1, 2, 4, 8])
def test_average_is_the_mean_of_softmax_over_the_first_views(n_views):
    x = _nhwc(n=4)
    probas = [
        torch.softmax(_corner_logits(dihedral_view(x, k)), dim=1)
        for k in range(n_views)
    ]
    expected = torch.stack(probas).double().mean(dim=0).float()
    got = tta_predict_proba(_corner_logits, x, n_views=n_views)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-7)
    torch.testing.assert_close(got.sum(dim=1), torch.ones(4))
    if n_views > 1:
        # Not the softmax of the mean logit.
        logits = torch.stack(
            [_corner_logits(dihedral_view(x, k)) for k in range(n_views)]
        )
        assert not torch.allclose(got, torch.softmax(logits.mean(dim=0), dim=1))


def test_non_square_refused_for_8_views_but_4_work():
    x = _nhwc(h=4, w=6)
    with pytest.raises(ValueError, match=r"n_views <= 4"):
        tta_predict_proba(_sum_logits, x, n_views=8)
    assert tta_predict_proba(_sum_logits, x, n_views=4).shape == (3, 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_views": 3}, ValueError, "n_views must be one of"),
        ({"n_views": 0}, ValueError, "n_views must be one of"),
        ({"n_views": True}, TypeError, "n_views"),
        ({"n_views": "8"}, TypeError, "n_views"),
        ({"layout": "HWC"}, ValueError, "layout"),
        ({"batch_size": 0}, ValueError, "batch_size"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tta_predict_proba(_sum_logits, _nhwc(), **kwargs)


def test_bad_view_index():
    with pytest.raises(ValueError, match=r"k must be an int in \[0, 8\)"):
        dihedral_view(_nhwc(), 8)


def test_module_runs_in_eval_mode_and_gets_its_modes_back():
    torch.manual_seed(0)
    module = LeukoNetModule(
        network=BasicNetwork(widths=(4, 4, 4, 4, 4, 4)), augmenter=ImageAugmenter()
    )
    module.train()
    module.augmenter.eval()
    x = _nhwc(n=4, h=64, w=64).numpy()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    first = tta_predict_proba(module, x, n_views=8, batch_size=3)
    second = tta_predict_proba(module, x, n_views=8, batch_size=3)
    assert torch.equal(first, second)  # no random augmentation drawn
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert module.training and module.network.training
    assert not module.augmenter.training
    assert all(p.grad is None for p in module.parameters())


def test_module_with_one_view_is_plain_prediction():
    torch.manual_seed(0)
    net = BasicNetwork(widths=(4, 4, 4, 4, 4, 4)).eval()
    x = torch.rand(5, 3, 64, 64)
    with torch.no_grad():
        expected = torch.softmax(net(x), dim=1)
    torch.testing.assert_close(
        tta_predict_proba(net, x, n_views=1, layout="NCHW"), expected
    )


def test_empty_input_is_refused():
    with pytest.raises(ValueError, match="no image"):
        tta_predict_proba(_sum_logits, _nhwc(n=0))


def test_forward_must_be_callable():
    with pytest.raises(TypeError, match="forward must be a callable"):
        tta_predict_proba(nn.Linear(2, 2).weight, _nhwc())
