"""Tests of the pure PyTorch modules: activations, bilinear pooling, networks, SD layer."""

import numpy as np
import pytest
import torch
from skimage.color import rgb_from_bex

from sklearn_leuko.nn import (
    PTELU,
    VGG11,
    BasicNetwork,
    BilinearPool,
    SDLayer,
    _sd_layer,
    make_activation,
    od_to_stains,
)

TINY_VGG = (4, 8, 8, 8, 16, 16, 16, 16)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------- activations


def test_ptelu_values_match_formula():
    act = PTELU(num_parameters=2, alpha_init=1.5, beta_init=0.5)
    x = torch.tensor([[-2.0, 3.0], [0.0, -0.5]])
    alpha, beta = 1.5, 0.5
    expected = torch.where(x >= 0, x, alpha * torch.tanh(beta * x))
    torch.testing.assert_close(act(x), expected)
    assert act(x)[0, 1] == 3.0


def test_ptelu_per_channel_parameters_broadcast_on_axis_1():
    act = PTELU(num_parameters=3)
    with torch.no_grad():
        act.alpha.copy_(torch.tensor([1.0, 2.0, 3.0]))
    x = -torch.ones(2, 3, 4, 4)
    out = act(x)
    for c, a in enumerate([1.0, 2.0, 3.0]):
        torch.testing.assert_close(out[:, c], torch.full((2, 4, 4), a * np.tanh(-1.0)))


def test_ptelu_gradcheck():
    act = PTELU(num_parameters=3, alpha_init=0.7, beta_init=1.3).double()
    x = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    x[x.abs() < 0.05] = 0.5  # stay away from the kink at 0
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, a, b: torch.where(
            x >= 0,
            x,
            a.clamp(min=0).view(1, 3, 1, 1)
            * torch.tanh(b.clamp(min=0).view(1, 3, 1, 1) * x),
        ),
        (x, act.alpha, act.beta),
    )
    assert torch.autograd.gradcheck(act, (x,))


def test_ptelu_gradients_match_analytic_derivatives():
    act = PTELU(alpha_init=2.0, beta_init=0.5)
    x = torch.tensor([-1.0, -0.2, 0.7], requires_grad=True)
    act(x).sum().backward()
    t = torch.tanh(0.5 * x.detach())
    neg = x.detach() < 0
    expected_x = torch.where(neg, 2.0 * 0.5 * (1 - t**2), torch.ones(3))
    torch.testing.assert_close(x.grad, expected_x)
    torch.testing.assert_close(act.alpha.grad, t[neg].sum().reshape(1))
    expected_beta = (2.0 * (1 - t[neg] ** 2) * x.detach()[neg]).sum().reshape(1)
    torch.testing.assert_close(act.beta.grad, expected_beta)


def test_ptelu_negative_parameters_act_as_zero():
    act = PTELU(alpha_init=1.0, beta_init=1.0)
    with torch.no_grad():
        act.alpha.fill_(-3.0)
    out = act(torch.tensor([-1.0, 2.0]))
    torch.testing.assert_close(out, torch.tensor([0.0, 2.0]))
    assert (out >= -1e-12).all()


@pytest.mark.parametrize(
    "kwargs", [{"alpha_init": -1.0}, {"beta_init": -0.1}, {"alpha_init": float("nan")}]
)
def test_ptelu_rejects_negative_init(kwargs):
    with pytest.raises(ValueError, match="init"):
        PTELU(**kwargs)


def test_ptelu_channel_mismatch_error():
    with pytest.raises(ValueError, match="num_parameters=3"):
        PTELU(num_parameters=3)(torch.zeros(1, 4, 2, 2))


def test_make_activation_types():
    assert isinstance(make_activation("relu", 8), torch.nn.ReLU)
    prelu = make_activation("prelu", 8)
    assert isinstance(prelu, torch.nn.PReLU)
    assert prelu.weight.shape == (8,)
    torch.testing.assert_close(prelu.weight, torch.full((8,), 0.25))
    ptelu = make_activation("PTELU", 8)
    assert isinstance(ptelu, PTELU) and ptelu.alpha.shape == (8,)


def test_make_activation_errors():
    with pytest.raises(ValueError, match="'relu', 'prelu', 'ptelu'"):
        make_activation("swish", 4)
    with pytest.raises(TypeError, match="activation must be a string"):
        make_activation(None, 4)
    with pytest.raises(ValueError, match="num_channels"):
        make_activation("prelu", 0)


# ---------------------------------------------------------- bilinear pooling


@pytest.mark.parametrize("reduced, channels", [(None, 6), (3, 3)])
def test_bilinear_pool_shape_and_unit_norm(reduced, channels):
    pool = BilinearPool(6, reduced_channels=reduced)
    out = pool(torch.randn(4, 6, 5, 7))
    assert pool.out_features == channels**2
    assert out.shape == (4, channels**2)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4))


def test_bilinear_matrix_is_symmetric_average_outer_product():
    pool = BilinearPool(4)
    x = torch.randn(2, 4, 3, 5)
    b = pool.bilinear_matrix(x)
    assert b.shape == (2, 4, 4)
    torch.testing.assert_close(b, b.transpose(1, 2))
    flat = x.reshape(2, 4, 15)
    expected = torch.stack(
        [sum(torch.outer(f[:, k], f[:, k]) for k in range(15)) / 15 for f in flat]
    )
    torch.testing.assert_close(b, expected)


def test_bilinear_forward_is_signed_sqrt_then_l2():
    pool = BilinearPool(3, eps=1e-8)
    x = torch.randn(1, 3, 4, 4)
    z = pool.bilinear_matrix(x).reshape(1, -1)
    y = torch.sign(z) * torch.sqrt(z.abs() + 1e-8)
    torch.testing.assert_close(pool(x), y / y.norm())


def test_bilinear_float32_under_autocast():
    pool = BilinearPool(4, reduced_channels=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pool(torch.randn(2, 4, 3, 3))
    assert out.dtype == torch.float32


def test_bilinear_errors():
    with pytest.raises(ValueError, match=r"\(n, 4, H, W\)"):
        BilinearPool(4)(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="eps"):
        BilinearPool(4, eps=0)
    with pytest.raises(ValueError, match="reduced_channels"):
        BilinearPool(4, reduced_channels=0)


# ---------------------------------------------------------------- networks


@pytest.mark.parametrize("in_channels", [3, 6])
@pytest.mark.parametrize("size", [32, 64])
def test_basic_network_shapes(in_channels, size):
    net = BasicNetwork(in_channels=in_channels, n_classes=2)
    x = torch.randn(3, in_channels, size, size)
    assert net(x).shape == (3, 2)
    assert net.features(x).shape == (3, net.n_features)
    assert net.n_features == 64**2


def test_basic_network_tiny_input_reaches_1x1():
    net = BasicNetwork(widths=(4, 4, 4, 4, 4, 8))
    last = net.blocks(net.stem(torch.randn(2, 3, 32, 32)))
    assert last.shape == (2, 8, 1, 1)
    assert net(torch.randn(2, 3, 17, 17)).shape == (2, 2)


def test_basic_network_backward_and_kwargs():
    net = BasicNetwork(
        widths=(4, 8, 8, 8, 8, 8), activation="ptelu", bilinear_channels=4
    )
    assert net.n_features == 16
    logits = net(torch.randn(4, 3, 32, 32), groups=["a"] * 4, sample_weight=None)
    logits.sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net.stem[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("activation", ["relu", "prelu", "ptelu"])
def test_basic_network_activations(activation):
    net = BasicNetwork(widths=(4, 4, 4, 4, 4, 4), activation=activation, dropout=0.3)
    net.eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(net(x), net(x))


def test_basic_network_validation():
    with pytest.raises(ValueError, match="exactly 6"):
        BasicNetwork(widths=(8, 8, 8))
    with pytest.raises(ValueError, match="activation="):
        BasicNetwork(activation="gelu")
    with pytest.raises(ValueError, match="dropout"):
        BasicNetwork(dropout=1.0)
    with pytest.raises(ValueError, match="in_channels"):
        BasicNetwork(in_channels=6)(torch.zeros(1, 3, 32, 32))


def test_vgg11_narrow_forward():
    net = VGG11(widths=TINY_VGG)
    x = torch.randn(2, 3, 32, 32)
    assert net(x).shape == (2, 2)
    assert net.features(x).shape == (2, 16)
    assert net.n_features == 16
    convs = [m for m in net.body if isinstance(m, torch.nn.Conv2d)]
    pools = [i for i, m in enumerate(net.body) if isinstance(m, torch.nn.MaxPool2d)]
    assert len(convs) == 8 and len(pools) == 5


def test_vgg11_without_batch_norm_and_6_channels():
    net = VGG11(in_channels=6, n_classes=3, widths=TINY_VGG, batch_norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    net(torch.randn(2, 6, 32, 32), groups=None).sum().backward()
    with pytest.raises(ValueError, match="exactly 8"):
        VGG11(widths=(4, 4))


# ------------------------------------------------------------------ SD layer


def test_sd_layer_init_equals_fixed_deconvolution():
    rng = np.random.default_rng(0)
    od = rng.uniform(0, 2, size=(2, 3, 5, 4)).astype(np.float32)
    layer = SDLayer(rgb_from_bex, learnable=True, activation=None)
    out = layer(torch.from_numpy(od)).detach().numpy()
    pixels = np.moveaxis(od, 1, -1).astype(np.float64)  # (n, H, W, 3) rows
    expected = np.moveaxis(pixels @ np.linalg.inv(rgb_from_bex), -1, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert layer.weight.requires_grad
    np.testing.assert_allclose(layer.stain_matrix(), rgb_from_bex, atol=1e-5)


def test_sd_layer_tanh_and_fixed_weights():
    od = torch.rand(1, 3, 4, 4)
    learn = SDLayer(rgb_from_bex)
    fixed = SDLayer(rgb_from_bex, learnable=False)
    raw = SDLayer(rgb_from_bex, activation=None)
    torch.testing.assert_close(learn(od), torch.tanh(raw(od)))
    torch.testing.assert_close(fixed(od), learn(od))
    assert list(fixed.parameters()) == []
    assert "weight" in fixed.state_dict()
    learn(od).sum().backward()
    assert learn.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("channels_last", [False, True])
def test_sd_layer_cpu_tanh_matches_torch_tanh(channels_last):
    """The float32 CPU tanh (2 sigmoid(2z) - 1 in place on a channels-last
    deconvolution, torch.tanh on einsum's view) is torch.tanh's to 2.4e-7, and
    its gradients are autograd's in float64."""
    torch.manual_seed(0)
    od = torch.rand(2, 3, 40, 30) * 3
    od[:, :, :4] = 0  # background
    if channels_last:
        od = od.contiguous(memory_format=torch.channels_last)
    layer = SDLayer(rgb_from_bex)
    out = layer(od.requires_grad_(True))
    expected_node = "_SigmoidTanhBackward" if channels_last else "TanhBackward0"
    assert out.grad_fn.name() == expected_node
    od64 = od.detach().double().requires_grad_(True)
    weight = layer.weight.detach().double().requires_grad_(True)
    exact = torch.tanh(od_to_stains(od64, weight))
    assert (out.double() - exact).abs().max() < 1e-6
    float32_tanh = torch.tanh(od_to_stains(od.detach(), layer.weight.detach()))
    torch.testing.assert_close(out, float32_tanh, rtol=0, atol=2.4e-7)
    assert out[:, :, :4].eq(0).all()  # OD 0 stays exactly 0
    grad_output = torch.randn_like(out)
    grads = torch.autograd.grad(out, [od, layer.weight], grad_output)
    expected = torch.autograd.grad(exact, [od64, weight], grad_output.double())
    for got, want in zip(grads, expected, strict=True):
        scale = want.abs().max().item()
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5 * scale)


def test_sd_layer_gradcheck_and_second_derivatives():
    torch.manual_seed(0)
    layer = SDLayer(rgb_from_bex).double()

    def sd_layer(od, weight):
        return torch.func.functional_call(layer, {"weight": weight}, (od,))

    weight = layer.weight.detach().clone().requires_grad_(True)
    for od in (
        torch.rand(1, 3, 4, 5),
        torch.rand(1, 3, 4, 5).to(memory_format=torch.channels_last),
    ):
        od = (2 * od.double()).requires_grad_(True)
        assert torch.autograd.gradcheck(sd_layer, (od, weight))
        assert torch.autograd.gradgradcheck(sd_layer, (od, weight))


def test_sigmoid_tanh_gradients_and_fallback(monkeypatch):
    monkeypatch.setattr(_sd_layer, "_TANH_CHUNK", 7)  # several chunks, a short last one
    torch.manual_seed(0)
    z = (4 * torch.randn(2, 3, 5, 4, dtype=torch.float64)).requires_grad_(True)

    def sigmoid_tanh(z):
        return _sd_layer._SigmoidTanh.apply(z.clone())

    torch.testing.assert_close(sigmoid_tanh(z), torch.tanh(z))
    assert torch.autograd.gradcheck(sigmoid_tanh, (z,))
    assert torch.autograd.gradgradcheck(sigmoid_tanh, (z,))
    channels_last = torch.randn(4, 3, 6, 8).to(memory_format=torch.channels_last)
    for tensor in (channels_last, torch.randn(4, 3, 6, 8)[:, :, ::2]):
        expected = torch.tanh(tensor)
        out = _sd_layer._tanh_in_place(tensor)
        assert out.data_ptr() == tensor.data_ptr()  # in place, dense or not
        torch.testing.assert_close(out, expected, rtol=0, atol=2.4e-7)


def test_sd_layer_tanh_without_autograd_and_under_torch_compile():
    layer = SDLayer(rgb_from_bex)
    od = torch.rand(2, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    expected = torch.tanh(od_to_stains(od, layer.weight.detach()))
    with torch.no_grad():
        torch.testing.assert_close(layer(od), expected, rtol=0, atol=2.4e-7)
    for mode in (torch.enable_grad, torch.inference_mode):
        with mode():
            explanation = torch._dynamo.explain(layer)(od)
            assert (explanation.graph_count, explanation.graph_break_count) == (1, 0)
            compiled = torch.compile(layer)(od)
        torch.testing.assert_close(compiled.detach(), expected, rtol=0, atol=2.4e-7)


def test_sd_layer_float64_and_autocast_end_in_tanh():
    od = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    layer = SDLayer(rgb_from_bex).double()
    assert layer(od).grad_fn.name() == "TanhBackward0"
    layer = SDLayer(rgb_from_bex)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(od.float()).grad_fn.name() == "TanhBackward0"


def test_sd_layer_errors():
    with pytest.raises(ValueError, match="shape \\(3, 3\\)"):
        SDLayer(np.eye(2))
    with pytest.raises(ValueError, match="singular"):
        SDLayer(np.ones((3, 3)))
    with pytest.raises(ValueError, match="activation"):
        SDLayer(np.eye(3), activation="relu")
    with pytest.raises(ValueError, match=r"\(n, 3, H, W\)"):
        SDLayer(np.eye(3))(torch.zeros(1, 6, 2, 2))


def test_nn_imports_no_scikit_learn():
    import subprocess
    import sys

    code = "import sys, sklearn_leuko.nn; print(any(m.split('.')[0] == 'sklearn' for m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
