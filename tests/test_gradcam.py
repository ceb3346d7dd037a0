"""Tests of sklearn_leuko.nn.grad_cam: where the heat goes, and what it leaves behind."""

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_leuko.nn import VGG11, BasicNetwork, ImageAugmenter, grad_cam
from sklearn_leuko.nn._leukonet import LeukoNetModule

TINY = (4, 4, 4, 4, 4, 4)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class _RegionNet(nn.Module):
    """Non-negative conv (no bias) + ReLU, global mean, linear.

    Its feature map is zero wherever the input and its 3x3 neighbourhood are
    zero, and class 1 is the sum of the features while class 0 is minus it:
    the Grad-CAM map of class 1 must sit exactly on the non-zero input region
    and the map of class 0 must be all zero.
    """

    def __init__(self, stride=1):
        super().__init__()
        conv = nn.Conv2d(3, 2, 3, stride=stride, padding=1, bias=False)
        with torch.no_grad():
            conv.weight.fill_(1.0 / 27)
        self.body = nn.Sequential(conv, nn.ReLU())
        self.classifier = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))

    @property
    def last_conv_block(self):
        return self.body[1]

    def forward(self, x):
        return self.classifier(self.body(x).mean(dim=(2, 3)))


def _top_right_square(size=32):
    x = torch.zeros(1, 3, size, size)
    x[:, :, 2:10, 20:30] = 1.0
    return x


def test_heat_sits_on_the_only_region_the_output_depends_on():
    x = _top_right_square()
    heat = grad_cam(_RegionNet(), x, target_index=1)[0]
    assert heat.shape == (32, 32)
    assert heat.max() == 1.0
    assert heat[3:9, 21:29].min() > 0.5  # inside the square
    far = torch.ones(32, 32, dtype=torch.bool)
    far[1:11, 19:31] = False  # the square and its 1-pixel conv halo
    assert heat[far].abs().max() == 0.0
    # Not transposed: the mirror position (rows 20-30, cols 2-10) is cold.
    assert heat[20:30, 2:10].max() == 0.0


def test_upsampled_heat_keeps_the_location():
    # stride 2: a 16x16 map upsampled bilinearly to 32x32.
    heat = grad_cam(_RegionNet(stride=2), _top_right_square(), target_index=1)[0]
    quadrants = [heat[:16, 16:], heat[:16, :16], heat[16:, :16], heat[16:, 16:]]
    assert quadrants[0].mean() > 0.2
    assert max(q.max() for q in quadrants[1:]) == 0.0


def test_no_positive_evidence_gives_an_all_zero_map():
    heat = grad_cam(_RegionNet(), _top_right_square(), target_index=0)
    assert torch.equal(heat, torch.zeros_like(heat))


def _module(augment=True):
    return LeukoNetModule(
        network=BasicNetwork(widths=TINY),
        preprocess=None,
        augmenter=ImageAugmenter() if augment else None,
    )


def _images(n=5, size=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), np.uint8)


def test_output_shape_dtype_range_and_normalisation():
    heat = grad_cam(_module(), _images(), target_index=0)
    assert heat.shape == (5, 64, 64) and heat.dtype == torch.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    peaks = heat.amax(dim=(1, 2))
    assert torch.all((peaks == 1.0) | (peaks == 0.0))


def test_module_state_is_untouched():
    module = _module()
    # Non-trivial running statistics and a training-mode module with an augmenter.
    with torch.no_grad():
        module(torch.from_numpy(_images(8, seed=1)))
    module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    layer = module.network.last_conv_block
    grad_cam(module, _images(), target_index=1, batch_size=2)
    after = module.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in module.parameters())
    assert all(m.training for m in module.modules())
    assert len(layer._forward_hooks) == 0


def test_mixed_submodule_modes_are_restored():
    module = _module()
    module.train()
    module.augmenter.eval()
    grad_cam(module, _images(2), target_index=0)
    assert module.training and module.network.training
    assert not module.augmenter.training


def test_eval_mode_computation_no_augmentation():
    module = _module()
    module.train()
    X = _images()
    first = grad_cam(module, X, target_index=0)
    second = grad_cam(module, X, target_index=0)
    module.eval()
    evaluated = grad_cam(module, X, target_index=0)
    assert torch.equal(first, second)
    assert torch.equal(first, evaluated)
    assert not module.training


def test_batching_does_not_change_the_maps():
    # VGG-11's average-pooled head: no near-zero maps whose sign is rounding.
    module = LeukoNetModule(network=VGG11(widths=(4, 4, 4, 4, 8, 8, 8, 8)))
    X = _images(7)
    torch.testing.assert_close(
        grad_cam(module, X, target_index=1, batch_size=1),
        grad_cam(module, X, target_index=1, batch_size=64),
        atol=1e-5,
        rtol=1e-4,
    )


def test_per_image_targets():
    module = _module(augment=False)
    X = _images(4)
    mixed = grad_cam(module, X, target_index=np.array([0, 1, 1, 0]))
    zero = grad_cam(module, X, target_index=0)
    one = grad_cam(module, X, target_index=1)
    torch.testing.assert_close(mixed[[0, 3]], zero[[0, 3]])
    torch.testing.assert_close(mixed[[1, 2]], one[[1, 2]])


def test_errors_leave_no_hook_no_grad_and_the_mode():
    module = _module()
    module.train()
    layer = module.network.last_conv_block
    with pytest.raises(ValueError, match=r"target_index must be in \[0, 2\)"):
        grad_cam(module, _images(2), target_index=5)
    assert len(layer._forward_hooks) == 0
    assert all(p.grad is None for p in module.parameters())
    assert module.training


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layer": nn.ReLU()}, ValueError, "not a submodule"),
        ({"layer": "blocks.13"}, TypeError, "layer must be a torch.nn.Module"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"target_index": [0, 1]}, ValueError, "one int per image"),
        ({"target_index": True}, TypeError, "target_index"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"target_index": 0, **kwargs}
    with pytest.raises(error, match=match):
        grad_cam(_module(), _images(3), **args)


def test_bad_input_shape_and_type():
    with pytest.raises(ValueError, match="X must be a batch"):
        grad_cam(_module(), _images(1)[0], target_index=0)
    with pytest.raises(TypeError, match="X must be a numpy array"):
        grad_cam(_module(), [[0]], target_index=0)


def test_network_without_last_conv_block_needs_layer():
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="last_conv_block"):
        grad_cam(net, x, target_index=0)
    assert grad_cam(net, x, target_index=0, layer=net[1]).shape == (2, 8, 8)


def test_last_conv_block_is_the_last_activation_before_the_pool():
    basic = BasicNetwork(widths=TINY)
    assert basic.last_conv_block is basic.blocks[-2]
    assert isinstance(basic.blocks[-1], nn.MaxPool2d)
    assert isinstance(basic.blocks[-3], nn.BatchNorm2d)
    vgg = VGG11(widths=(4, 4, 4, 4, 4, 4, 4, 4), batch_norm=False)
    assert vgg.last_conv_block is vgg.body[-2]
    assert isinstance(vgg.body[-3], nn.Conv2d)


def test_vgg11_and_bare_network_with_float_input():
    vgg = VGG11(widths=(4, 4, 4, 4, 4, 4, 4, 4))
    heat = grad_cam(vgg, torch.rand(3, 3, 32, 24), target_index=1)
    assert heat.shape == (3, 32, 24)
    assert heat.min() >= 0 and heat.max() <= 1


def test_frozen_network_still_gets_a_map():
    net = _RegionNet().requires_grad_(False)
    heat = grad_cam(net, _top_right_square(), target_index=1)
    assert heat.max() == 1.0
    assert all(p.grad is None for p in net.parameters())


def test_empty_batch():
    assert grad_cam(_module(), _images(0), target_index=0).shape == (0, 64, 64)


def test_one_by_one_feature_map_warns():
    # 32x32 -> 1x1 after the Basic Network's stem and 4 pools.
    with pytest.warns(UserWarning, match="1x1"):
        grad_cam(_module(), _images(2, size=32), target_index=0)
