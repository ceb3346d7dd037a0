"""Grad-CAM heatmaps: which part of a cell drove the network's call.

A short implementation with one forward hook and :func:`torch.autograd.grad`
rather than a dependency: captum is not installed with the library, and the
method is a dozen lines once the layer is known. The networks name their last
convolutional feature map themselves (``last_conv_block``), so no layer is
found by matching strings.
"""

import numbers
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..utils._validation import check_positive_int

__all__ = ["grad_cam"]


def _network_of(module):
    # A LeukoNetModule wraps the network; a bare network is its own network.
    return getattr(module, "network", module)


def _default_layer(module):
    network = _network_of(module)
    layer = getattr(network, "last_conv_block", None)
    if not isinstance(layer, nn.Module):
        raise ValueError(
            f"layer=None needs a network with a last_conv_block attribute "
            f"(BasicNetwork, VGG11); {type(network).__name__} has none. Pass the "
            "convolutional layer to explain as layer=."
        )
    return layer


def _check_layer(module, layer):
    if layer is None:
        return _default_layer(module)
    if not isinstance(layer, nn.Module):
        raise TypeError(
            f"layer must be a torch.nn.Module inside module, got "
            f"{type(layer).__name__}."
        )
    if not any(m is layer for m in module.modules()):
        raise ValueError(
            f"layer ({type(layer).__name__}) is not a submodule of module; pass one "
            "of module.modules(), e.g. module.network.last_conv_block."
        )
    return layer


def _as_batch_tensor(X):
    if isinstance(X, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(X))
    if isinstance(X, torch.Tensor):
        return X
    raise TypeError(
        f"X must be a numpy array or a torch tensor, got {type(X).__name__}."
    )


def _check_targets(target_index, n):
    if isinstance(target_index, bool):
        raise TypeError(
            f"target_index must be an int class index, got {target_index!r}."
        )
    if isinstance(target_index, numbers.Integral):
        return torch.full((n,), int(target_index), dtype=torch.long)
    target = np.asarray(target_index)
    if target.ndim != 1 or target.shape[0] != n or target.dtype.kind not in "iu":
        raise ValueError(
            "target_index must be one int class index or one int per image "
            f"(shape ({n},)), got {target_index!r:.80}."
        )
    return torch.as_tensor(target, dtype=torch.long)


def grad_cam(module, X, target_index, *, layer=None, batch_size=64):
    r"""Grad-CAM heatmaps of a batch of cells for one class.

    Gradient-weighted class activation mapping (Selvaraju et al., 2017,
    Eqs. 1-2): with ``A`` the feature map of ``layer`` (``K`` channels,
    ``h x w``) and ``y`` the *logit* of the target class (before the
    softmax, as in the paper),

    .. math::

        \alpha_k = \frac{1}{hw} \sum_{i,j} \frac{\partial y}{\partial A_{kij}},
        \qquad L = \mathrm{ReLU}\Big(\sum_k \alpha_k A_k\Big).

    ``L`` is upsampled bilinearly (``align_corners=False``) to the input size
    and divided by its maximum, per image: the hottest pixel is 1, and a map
    with no positive evidence (``L`` all zero) stays all zero rather than
    being divided by 0.

    The default layer is the network's ``last_conv_block``: for
    :class:`~sklearn_leuko.nn.BasicNetwork` the activation closing the fifth
    conv block, before its max pool (the feature map the bilinear pooling
    reads, 11x11 at 350x350); for :class:`~sklearn_leuko.nn.VGG11` the
    activation after the eighth convolution. Selvaraju et al. recommend the
    last convolutional map: the most class-specific features that still keep
    a spatial layout. The backward pass then only crosses the network's head
    (pooling and linear layer), so a heatmap costs little more than a
    forward pass (1.0-1.3 times on a 2-core CPU at 350x350,
    ``benchmarks/accuracy/gradcam_sanity.py``).

    A caveat of the Basic Network: its head (signed square root and L2
    normalisation of the bilinear pooling) is invariant to the scale of the
    feature map, so ``sum_{k,i,j} A_kij dy/dA_kij = 0`` (Euler's theorem for
    a function homogeneous of degree 0). Grad-CAM uses channel-averaged
    gradients and still localises, but a 1x1 feature map (inputs of at most
    32 pixels) gives a map that is zero up to rounding; a warning says so
    whenever the feature map is 1x1.

    The computation runs in eval mode, so no augmentation is drawn, dropout
    is off and batch norm uses (and does not update) its running statistics;
    every image is then independent of the others in its batch, and the
    gradient of the summed target logits gives each image its own
    gradient. The gradient is taken with :func:`torch.autograd.grad` with
    respect to the hooked feature map only, so nothing is accumulated in
    the parameters' ``.grad``. On return (also after an error) the hook is
    removed and every submodule is back in the mode it was in.

    Parameters
    ----------
    module : torch.nn.Module
        A :class:`~sklearn_leuko.nn._leukonet.LeukoNetModule` (e.g.
        ``clf.net_.module_`` of a fitted ``LeukoNetClassifier``), or a
        network (:class:`~sklearn_leuko.nn.BasicNetwork`,
        :class:`~sklearn_leuko.nn.VGG11`, or any module mapping a batch to
        logits when ``layer`` is given).
    X : ndarray or torch.Tensor
        The batch that ``module`` takes: uint8 RGB ``(n, H, W, 3)`` for a
        LeukoNetModule with ``rgb_input=True``, float ``(n, C, H, W)``
        otherwise. Moved to the module's device batch by batch.
    target_index : int or array-like of int of shape (n,)
        Class whose evidence is mapped: a column of the logits (for a
        classifier, ``list(clf.classes_).index("all")``), one for all images
        or one per image.
    layer : torch.nn.Module, default=None
        Submodule whose output is the feature map ``A``; ``None`` uses the
        network's ``last_conv_block``.
    batch_size : int, default=64
        Images per forward/backward pass.

    Returns
    -------
    heatmaps : torch.Tensor of shape (n, H, W), float32, on the CPU
        Values in [0, 1]; each map's maximum is 1, or the map is all zero.

    References
    ----------
    .. [1] R. R. Selvaraju et al., "Grad-CAM: Visual Explanations from Deep
       Networks via Gradient-based Localization", ICCV 2017.

    Examples
    --------
    >>> import torch
    >>> from sklearn_leuko.nn import BasicNetwork, grad_cam
    >>> net = BasicNetwork(widths=(4, 4, 4, 4, 4, 4))
    >>> heat = grad_cam(net, torch.rand(2, 3, 64, 64), target_index=0)
    >>> heat.shape, heat.dtype
    (torch.Size([2, 64, 64]), torch.float32)
    >>> bool(((heat >= 0) & (heat <= 1)).all())
    True
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"module must be a torch.nn.Module (e.g. clf.net_.module_), got "
            f"{type(module).__name__}."
        )
    layer = _check_layer(module, layer)
    batch_size = check_positive_int(batch_size, "batch_size")
    X = _as_batch_tensor(X)
    if X.ndim != 4:
        raise ValueError(
            f"X must be a batch of shape (n, H, W, 3) (uint8 RGB) or (n, C, H, W), "
            f"got shape {tuple(X.shape)}."
        )
    rgb_input = bool(getattr(module, "rgb_input", False))
    height, width = (X.shape[1], X.shape[2]) if rgb_input else (X.shape[2], X.shape[3])
    n = X.shape[0]
    targets = _check_targets(target_index, n)
    param = next(module.parameters(), None)
    device = param.device if param is not None else X.device

    captured = []

    def keep_output(_module, _inputs, output):
        # Continue the forward pass from a new leaf: the gradient is only
        # needed down to here, the graph of the layers above is freed at once,
        # and a frozen network (no parameter requires grad) works too.
        output = output.detach().requires_grad_(True)
        captured.append(output)
        return output

    # Every submodule's own mode, not only the top one: a module may hold a
    # mix (e.g. a frozen, eval-mode preprocessing inside a training network).
    modes = [(m, m.training) for m in module.modules()]
    handle = layer.register_forward_hook(keep_output)
    out = torch.empty((n, height, width), dtype=torch.float32)
    try:
        module.eval()
        with torch.enable_grad():
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                captured.clear()
                logits = module(X[start:stop].to(device))
                if not captured:
                    raise ValueError(
                        "layer was not called by module's forward pass; pass a "
                        "submodule that the forward pass uses."
                    )
                target = targets[start:stop].to(logits.device)
                n_classes = logits.shape[1]
                if target.min() < 0 or target.max() >= n_classes:
                    raise ValueError(
                        f"target_index must be in [0, {n_classes}) (the logits have "
                        f"{n_classes} columns), got {targets.unique().tolist()}."
                    )
                feature_map = captured[-1]
                if start == 0 and feature_map.shape[2] * feature_map.shape[3] == 1:
                    warnings.warn(
                        f"the feature map of layer is 1x1 for {height}x{width} "
                        "inputs, so the heatmap cannot localise anything; use "
                        "larger images or an earlier layer.",
                        UserWarning,
                        stacklevel=2,
                    )
                score = logits.gather(1, target[:, None]).sum()
                (grad,) = torch.autograd.grad(score, feature_map)
                feature_map, grad = feature_map.detach().float(), grad.float()
                weights = grad.mean(dim=(2, 3), keepdim=True)
                cam = F.relu((weights * feature_map).sum(dim=1, keepdim=True))
                cam = F.interpolate(
                    cam, size=(height, width), mode="bilinear", align_corners=False
                )[:, 0]
                peak = cam.amax(dim=(1, 2), keepdim=True)
                # An all-zero map has no positive evidence: keep it at 0.
                cam = torch.where(peak > 0, cam / peak.clamp_min(1e-30), 0.0)
                out[start:stop] = cam.clamp_(0.0, 1.0).cpu()
                del logits, feature_map, grad, score
    finally:
        handle.remove()
        captured.clear()
        for m, training in modes:
            m.training = training
    return out
