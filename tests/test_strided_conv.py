"""StridedConv2d: nn.Conv2d with a space-to-depth input gradient on the CPU."""

import io
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.color import rgb_from_bex
from torch import nn

from sklearn_leuko.nn import BasicNetwork, StridedConv2d
from sklearn_leuko.nn._preprocess import LearnableStainInput
from sklearn_leuko.nn._strided_conv import _StridedConv2dFunction, _unblock


def _pair(conv_kwargs, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    fast = StridedConv2d(**conv_kwargs).to(dtype)
    reference = nn.Conv2d(**conv_kwargs).to(dtype)
    reference.load_state_dict(fast.state_dict())
    return fast, reference


def _gradients(conv, x, grad_output):
    x = x.clone().requires_grad_(True)
    out = conv(x)
    params = [p for p in (conv.weight, conv.bias) if p is not None]
    grads = torch.autograd.grad(out, [x, *params], grad_output)
    return out, grads


@settings(max_examples=60, deadline=None)
@given(
    kernel=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    stride=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    padding=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    size=st.tuples(st.integers(1, 23), st.integers(1, 23)),
    in_channels=st.integers(1, 6),
    bias=st.booleans(),
    channels_last=st.booleans(),
)
def test_gradients_equal_nn_conv2d(
    kernel, stride, padding, size, in_channels, bias, channels_last
):
    """Every gradient equals PyTorch's, for any kernel, stride, padding and size."""
    height, width = size
    if any(s + 2 * p < k for s, p, k in zip(size, padding, kernel, strict=True)):
        return  # no output position: nn.Conv2d refuses such inputs too
    kwargs = dict(
        in_channels=in_channels,
        out_channels=5,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        bias=bias,
    )
    fast, reference = _pair(kwargs)
    x = torch.randn(2, in_channels, height, width, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out_ref = reference(x)
    grad_output = torch.randn_like(out_ref)
    out, grads = _gradients(fast, x, grad_output)
    _, grads_ref = _gradients(reference, x, grad_output)
    torch.testing.assert_close(out, out_ref)
    for got, expected in zip(grads, grads_ref, strict=True):
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.fixture
def block_backward_calls(monkeypatch):
    """The output gradients that reached the block-gradient backward, in order."""
    calls = []
    original = _StridedConv2dFunction.backward

    def spy(ctx, grad_output):
        calls.append(grad_output)
        return original(ctx, grad_output)

    monkeypatch.setattr(_StridedConv2dFunction, "backward", staticmethod(spy))
    return calls


def test_the_block_gradient_is_the_one_used_on_the_cpu(block_backward_calls):
    """The default stem (5x5, stride 2) takes the custom backward when training."""
    conv = StridedConv2d(3, 4, 5, stride=2, padding=2)
    x = torch.rand(2, 3, 10, 10, requires_grad=True)
    conv(x).sum().backward()
    assert [g.shape for g in block_backward_calls] == [torch.Size([2, 4, 5, 5])]
    with torch.no_grad():
        conv(x)
    conv(x.detach()).sum().backward()  # weight gradient only: nn.Conv2d's path
    assert len(block_backward_calls) == 1


def test_float32_gradient_matches_within_rounding():
    fast, reference = _pair(
        dict(in_channels=3, out_channels=16, kernel_size=5, stride=2, padding=2),
        dtype=torch.float32,
    )
    x = torch.rand(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    grad_output = torch.randn(4, 16, 32, 32)
    _, grads = _gradients(fast, x, grad_output)
    _, grads_ref = _gradients(reference, x, grad_output)
    for got, expected in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize(
    "stride, in_channels, extra",
    [((2, 2), 3, 4), ((2, 2), 1, 4), ((2, 3), 3, 6), ((3, 2), 2, 4), ((4, 4), 4, 0)],
)
def test_unblocking_moves_the_same_values_as_a_plain_copy(
    dtype, channels_last, stride, in_channels, extra
):
    """The un-blocking copy (by 8- or 4-byte words where the layout allows)
    puts every value where the element-by-element reshape puts it."""
    stride_h, stride_w = stride
    channels = stride_h * stride_w * in_channels
    blocks = torch.randn(2, channels + extra, 5, 7).to(dtype)
    if channels_last:
        blocks = blocks.contiguous(memory_format=torch.channels_last)
    expected = (
        blocks.permute(0, 2, 3, 1)[..., :channels]
        .reshape(2, 5, 7, stride_h, stride_w, in_channels)
        .permute(0, 1, 3, 2, 4, 5)
        .reshape(2, 5 * stride_h, 7 * stride_w, in_channels)
    )
    got = _unblock(blocks, stride, in_channels)
    assert got.dtype == dtype
    assert torch.equal(got, expected)


def test_second_derivatives_with_channels_last_float32():
    """Where the first backward copies by words, the graph for a second one
    (create_graph=True) still holds: Hessian-vector products equal nn.Conv2d's."""
    fast, reference = _pair(
        dict(in_channels=3, out_channels=8, kernel_size=5, stride=2, padding=2),
        dtype=torch.float32,
    )
    x = torch.rand(2, 3, 12, 12).contiguous(memory_format=torch.channels_last)
    grad_output = torch.randn(2, 8, 6, 6).contiguous(memory_format=torch.channels_last)
    results = []
    for conv in (fast, reference):
        xx = x.clone().requires_grad_(True)
        out = conv(xx)
        (grad_x,) = torch.autograd.grad(out, xx, grad_output, create_graph=True)
        (second,) = torch.autograd.grad((grad_x**2).sum(), conv.weight)
        results.append(second)
    assert results[1].abs().max() > 0
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-4)


def test_gradcheck_and_second_derivatives_float64():
    conv = StridedConv2d(2, 3, 3, stride=2, padding=1).double()
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))
    assert torch.autograd.gradgradcheck(conv, (x,))  # e.g. gradient penalties


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(stride=1, padding=1),
        dict(stride=2, padding=1, dilation=2),
        dict(stride=2, padding=1, groups=3),
        dict(stride=2, padding=1, padding_mode="reflect"),
    ],
)
def test_other_convolutions_take_nn_conv2d_path(kwargs, monkeypatch):
    """Stride 1, dilation, groups and non-zero padding modes keep nn.Conv2d's backward."""

    def fail(*args, **kw):
        raise AssertionError("the block gradient must not be used here")

    monkeypatch.setattr(_StridedConv2dFunction, "apply", fail)
    fast, reference = _pair(
        dict(in_channels=3, out_channels=3, kernel_size=3, **kwargs)
    )
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(fast(x), reference(x))
    x.requires_grad_(True)
    fast(x).sum().backward()
    assert x.grad is not None


def test_bfloat16_autocast_takes_the_block_gradient(block_backward_calls):
    """Under CPU bfloat16 autocast: bfloat16 output and nn.Conv2d's gradients."""
    fast, reference = _pair(
        dict(in_channels=3, out_channels=16, kernel_size=5, stride=2, padding=2),
        dtype=torch.float32,
    )
    x = torch.rand(2, 3, 30, 30).contiguous(memory_format=torch.channels_last)
    grad_output = torch.randn(2, 16, 15, 15).to(torch.bfloat16)
    results = []
    for conv in (fast, reference):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, grads = _gradients(conv, x, grad_output)
        results.append((out, *grads))
    assert [g.dtype for g in block_backward_calls] == [torch.bfloat16]
    for got, expected in zip(*results, strict=True):
        assert got.dtype == expected.dtype  # bfloat16 output, float32 gradients
        scale = expected.float().abs().max().item()
        torch.testing.assert_close(
            got.float(), expected.float(), rtol=0, atol=2e-2 * scale
        )


NARROW_CASES = [  # (kernel, stride, padding, width < stride)
    (5, 2, 2, 1),
    (3, 2, 1, 1),
    (7, 3, 3, 1),
    (7, 3, 3, 2),
]


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("input_requires_grad", [True, False])
@pytest.mark.parametrize("height", [1, 3, 6, 16])
@pytest.mark.parametrize(("kernel", "stride", "padding", "width"), NARROW_CASES)
def test_bfloat16_gradients_of_images_narrower_than_the_stride(
    kernel, stride, padding, width, height, input_requires_grad, channels_last
):
    """Images narrower than the stride (1x1, 6x1, ...): oneDNN's bfloat16 weight
    gradient of a strided convolution returned garbage (NaN, 1e37, values where
    the answer is 0) for them, often but not always (found by the 1x1-image
    stage tests): channels-last input on an AVX512-BF16 CPU, any layout on an
    AMX CPU. The stem pads them to the stride, on its own backward path (input
    requiring a gradient: the learnable SD-Layer) and on nn.Conv2d's (the fixed
    front)."""
    torch.manual_seed(0)
    conv = StridedConv2d(3, 8, kernel, stride=stride, padding=padding)
    for _ in range(12):
        x = torch.rand(4, height, width, 3).permute(0, 3, 1, 2)
        if not channels_last:
            x = x.contiguous()
        x.requires_grad_(input_requires_grad)
        inputs = [conv.weight, conv.bias] + ([x] if input_requires_grad else [])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = conv(x)
        reference = F.conv2d(
            x.double(), conv.weight.double(), conv.bias.double(), stride, padding
        )
        assert out.shape == reference.shape
        grad_output = torch.randn(out.shape).to(out.dtype)
        grads = torch.autograd.grad(out, inputs, grad_output)
        expected = torch.autograd.grad(reference, inputs, grad_output.double())
        for got, want in zip(grads, expected, strict=True):
            assert got.dtype == want.dtype == torch.float32
            torch.testing.assert_close(got, want, rtol=0.02, atol=0.05)


@pytest.mark.parametrize(("kernel", "stride", "padding", "width"), NARROW_CASES)
def test_images_narrower_than_the_stride_give_nn_conv2d_output(
    kernel, stride, padding, width
):
    fast, reference = _pair(
        dict(
            in_channels=3,
            out_channels=4,
            kernel_size=kernel,
            stride=stride,
            padding=padding,
        )
    )
    x = torch.randn(2, 3, 5, width, dtype=torch.float64, requires_grad=True)
    out = fast(x)
    expected = reference(x)
    torch.testing.assert_close(out, expected)
    grad_output = torch.randn_like(out)
    torch.testing.assert_close(
        torch.autograd.grad(out, [x, fast.weight], grad_output),
        torch.autograd.grad(expected, [x, reference.weight], grad_output),
    )


def test_too_small_input_raises_pytorchs_error():
    conv = StridedConv2d(3, 4, 2, stride=2)
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        conv(torch.rand(1, 3, 4, 1))


def test_float16_autocast_keeps_nn_conv2d_path(monkeypatch):
    def fail(*args, **kw):
        raise AssertionError("the block gradient must not be used under float16")

    monkeypatch.setattr(_StridedConv2dFunction, "apply", fail)
    conv = StridedConv2d(3, 4, 5, stride=2, padding=2)
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.float16):
        conv(x).float().sum().backward()
    assert x.grad.shape == x.shape


def test_state_dict_and_pickle_are_nn_conv2d_compatible():
    fast = StridedConv2d(3, 4, 5, stride=2, padding=2)
    plain = nn.Conv2d(3, 4, 5, stride=2, padding=2)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(fast.state_dict())
    buffer = io.BytesIO()
    torch.save(fast, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert isinstance(loaded, StridedConv2d)
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(loaded(x), plain(x))
    assert isinstance(pickle.loads(pickle.dumps(fast)), StridedConv2d)


def test_sd_layer_gradient_through_basic_network_equals_nn_conv2d():
    """The SD-Layer's gradient (what the block gradient exists for) is unchanged."""
    torch.manual_seed(0)
    front = LearnableStainInput(rgb_from_bex)
    network = BasicNetwork(in_channels=3, widths=(8, 8, 8, 8, 8, 8))
    assert isinstance(network.stem[0], StridedConv2d)
    images = torch.randint(0, 256, (2, 3, 70, 70)).float()

    def sd_gradient():
        front.zero_grad()
        network(front(images)).sum().backward()
        return front.sd_layer.weight.grad.clone()

    fast = sd_gradient()
    plain = nn.Conv2d(3, 8, 5, stride=2, padding=2)
    plain.load_state_dict(network.stem[0].state_dict())
    network.stem[0] = plain
    reference = sd_gradient()
    assert np.abs(reference.numpy()).max() > 0
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-6)
