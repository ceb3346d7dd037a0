"""Fused P-TELU: one elementwise kernel forward, one backward, the input saved.

Written as a formula, P-TELU (``torch.where(x >= 0, x, a * tanh(b * x))``)
runs as five elementwise kernels forward, each keeping its operands for the
backward, and about ten backward: 2-3x the cost of a ReLU training step on
the CPU (issue 35). Here the forward and the backward are each one function
of the saved input ``x`` (the tanh is recomputed in the backward, cheaper
than storing it), compiled once by ``torch.compile`` (``dynamic=True``: one
kernel for every batch and image size) into a single fused loop; the
per-channel gradients of alpha and beta are reductions of that same loop.

Where the compiler is missing or fails (no C++ compiler, no Triton), the same
two functions run eagerly, with a warning once: same values, the formula's
speed. Inside a graph being compiled (``torch.compile`` of the whole
network) they are traced as plain torch code, which the outer compiler fuses.
"""

import os
import threading
import warnings

import torch

__all__ = ["ptelu", "ptelu_reference"]

#: "compiled" (default) or "eager"; the environment variable
#: ``SKLEARN_LEUKO_PTELU_KERNEL`` sets it at import time.
KERNEL = os.environ.get("SKLEARN_LEUKO_PTELU_KERNEL", "compiled")

_lock = threading.Lock()
_compiled = {}


def ptelu_reference(x, alpha, beta):
    """The formula itself (broadcast ``alpha``, ``beta``), kept for the tests."""
    return torch.where(x >= 0, x, alpha * torch.tanh(beta * x))


def _reduce_dims(x, param):
    return [d for d in range(x.ndim) if param.shape[d] == 1]


def _tanh_of_negative(u):
    """``tanh(u)`` and ``1 - tanh(u)**2`` for ``u <= 0``, from one ``expm1``.

    ``tanh(u) = e / (e + 2)`` with ``e = expm1(2u)`` in ``(-1, 0]``: accurate
    near 0 (``expm1``) and in saturation (``1 - t**2 = 4 (e + 1) / (e + 2)**2``
    has no cancellation), and 2-3x cheaper than ``tanh`` in the compiled
    kernels on x86 CPUs.
    """
    e = torch.expm1(2 * u)
    d = e + 2
    return e / d, 4 * (e + 1) / (d * d)


def _forward(x, alpha, beta):
    # Computed in the parameters' precision (float32 under bf16 autocast),
    # returned in the input's, as ReLU and PReLU do. The clamp keeps expm1
    # finite on the positive side, which the where discards.
    t, _ = _tanh_of_negative(beta * torch.clamp(x, max=0).to(alpha.dtype))
    return torch.where(x >= 0, x, (alpha * t).to(x.dtype))


def _backward(grad, x, alpha, beta):
    x_neg = torch.clamp(x, max=0).to(alpha.dtype)
    t, sech2 = _tanh_of_negative(beta * x_neg)
    g = grad.to(alpha.dtype)
    grad_x = torch.where(x >= 0, g, g * (alpha * beta) * sech2).to(x.dtype)
    dims = _reduce_dims(x, alpha)
    # On x >= 0, t and x_neg are 0, so these sums see the negative side only.
    grad_alpha = _sum(g * t, dims)
    grad_beta = _sum(g * x_neg * sech2, dims) * alpha
    return grad_x, grad_alpha, grad_beta


def _sum(values, dims):
    # One axis at a time, the last first: the first sum runs in parallel over
    # the batch (and the channels), not over 16 channels in one thread.
    for dim in reversed(dims):
        values = values.sum(dim, keepdim=True)
    return values


def _kernel(name, fn):
    """``fn`` compiled once per process, or ``fn`` itself where that fails."""
    if KERNEL != "compiled" or torch.compiler.is_compiling():
        return fn
    with _lock:
        if name not in _compiled:
            _compiled[name] = torch.compile(fn, dynamic=True, fullgraph=True)
        return _compiled[name]


def _run(name, fn, *args):
    global KERNEL
    kernel = _kernel(name, fn)
    if kernel is fn:
        return fn(*args)
    try:
        return kernel(*args)
    except Exception as exc:  # noqa: BLE001 - any compiler failure: run eagerly
        KERNEL = "eager"
        warnings.warn(
            f"The fused P-TELU kernel could not be compiled ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); P-TELU runs as "
            "plain torch operations (same values, slower). Set "
            "SKLEARN_LEUKO_PTELU_KERNEL=eager to skip the attempt.",
            RuntimeWarning,
            stacklevel=3,
        )
        return fn(*args)


class _PTELUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, beta):
        ctx.save_for_backward(x, alpha, beta)
        # Detached: one compiled kernel whether or not x requires grad.
        return _run("forward", _forward, x.detach(), alpha.detach(), beta.detach())

    @staticmethod
    def backward(ctx, grad):
        x, alpha, beta = ctx.saved_tensors
        grad = grad.contiguous()  # e.g. the expanded gradient of a sum
        return _run("backward", _backward, grad, x, alpha, beta)


def _canonical(x, alpha, beta):
    """Contiguous 2-D or 3-D views, so that one compiled kernel fits every layout.

    An elementwise op does not care about the layout: a channels-last batch
    is ``(N, H * W, C)``, any other ``(N, C, rest)``; the kernel then sees
    two shapes of contiguous tensors, whatever the network's memory format
    and feature-map sizes (no recompilation per stride pattern). Returns
    the views and a function that gives the output the shape of ``x``.
    """
    if x.ndim == 4 and not x.is_contiguous():
        if x.is_contiguous(memory_format=torch.channels_last):
            n, c, h, w = x.shape
            x3 = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
            return (
                x3,
                alpha.reshape(1, 1, -1),
                beta.reshape(1, 1, -1),
                lambda y: y.view(n, h, w, c).permute(0, 3, 1, 2),
            )
    shape = x.shape
    n = shape[0] if x.ndim >= 2 else 1
    c = shape[1] if x.ndim >= 2 else 1
    x3 = x.reshape(n, c, -1)
    return (
        x3,
        alpha.reshape(1, -1, 1),
        beta.reshape(1, -1, 1),
        lambda y: y.view(shape),
    )


def ptelu(x, alpha, beta):
    """P-TELU of ``x`` with ``alpha``, ``beta`` already shaped to broadcast.

    ``alpha`` and ``beta`` must have ``x.ndim`` dimensions, of size 1 except
    on axis 1 (the channels), and be non-negative (the caller clamps them).
    The result has the dtype and memory format of ``x``.
    """
    if torch.compiler.is_compiling():
        # Plain torch code inside a graph: the outer compiler fuses it.
        if not torch.is_grad_enabled():
            return _forward(x, alpha, beta)
        return _PTELUFunction.apply(x, alpha, beta)
    x_view, alpha_view, beta_view, restore = _canonical(x, alpha, beta)
    return restore(_PTELUFunction.apply(x_view, alpha_view, beta_view))
