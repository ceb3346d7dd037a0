"""The Basic Network of LeukoNet and the VGG-11 baseline."""

import math
import numbers

from torch import nn

from ..utils._validation import check_positive_int
from ._activations import make_activation
from ._bilinear import BilinearPool
from ._strided_conv import StridedConv2d

__all__ = ["VGG11", "BasicNetwork"]


def _check_widths(widths, expected, name, hint):
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__len__"):
        raise TypeError(
            f"{name} must be a sequence of {expected} positive integers, got "
            f"{type(widths).__name__} {widths!r}."
        )
    if len(widths) != expected:
        raise ValueError(
            f"{name} must hold exactly {expected} channel counts ({hint}), got "
            f"{len(widths)}: {tuple(widths)!r}."
        )
    return tuple(check_positive_int(w, f"{name}[{i}]") for i, w in enumerate(widths))


def _check_dropout(dropout):
    if (
        isinstance(dropout, bool)
        or not isinstance(dropout, numbers.Real)
        or not (math.isfinite(dropout) and 0 <= dropout < 1)
    ):
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}.")
    return float(dropout)


def _conv_block(in_channels, out_channels, activation, batch_norm=True):
    layers = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm),
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(make_activation(activation, out_channels))
    return layers


def _last_feature_module(body):
    """The module whose output is the last convolutional feature map of ``body``.

    That is the activation after the last convolution (and batch norm), before
    the final max pool: the rectified last-convolution output that Grad-CAM
    (Selvaraju et al., 2017) weights, at the finest resolution the last block
    has.
    """
    for module in reversed(body):
        if not isinstance(module, nn.MaxPool2d):
            return module
    raise RuntimeError("the network body holds no convolution")  # pragma: no cover


class BasicNetwork(nn.Module):
    """The Basic Network of LeukoNet: strided stem, 5 conv blocks, bilinear pooling.

    Mourya et al. (2018, section 4, Fig. 1): "a strided convolutional layer at the
    front end followed by 5 convolutional layers with batch-norm, maxpool and
    ReLU", then bilinear pooling (B-CNN) of the last feature map and one linear
    layer for classification. The layer widths and the stem kernel are not
    given in the paper's text; the defaults keep the network small
    (115,906 parameters with 3 input channels, 64 final channels and 4,096
    bilinear features).

    Layout::

        conv(kernel=stem_kernel_size, stride=stem_stride) -> activation
        5 x [conv3x3 -> BatchNorm2d -> activation -> MaxPool2d(2, ceil_mode=True)]
        BilinearPool -> Dropout -> Linear(n_features, n_classes)

    At 350x350 the spatial size goes 175, 88, 44, 22, 11, 6; at 32x32 it
    reaches 1x1, which the ``ceil_mode`` pooling keeps at 1x1.

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input (3 for RGB/OD/SD-layer output, 6 for OD+log-DCT).
    n_classes : int, default=2
        Number of output logits.
    widths : sequence of 6 int, default=(16, 32, 32, 64, 64, 64)
        Output channels of the stem and of the 5 conv blocks.
    activation : {"relu", "prelu", "ptelu"}, default="relu"
        Activation after the stem and after every batch norm
        (see :func:`make_activation`).
    bilinear_channels : int, default=None
        Optional 1x1 reduction before the bilinear pooling (see
        :class:`BilinearPool`); ``None`` pools the ``widths[-1]`` channels.
    stem_kernel_size : int, default=5
        Kernel size of the strided stem convolution (padding keeps ``H/stride``).
    stem_stride : int, default=2
        Stride of the stem convolution.
    dropout : float, default=0.0
        Dropout probability on the bilinear features before the linear layer.

    Attributes
    ----------
    stem : torch.nn.Sequential
    blocks : torch.nn.Sequential
    pool : BilinearPool
    classifier : torch.nn.Linear
    n_features : int
        Size of the bilinear features returned by :meth:`features`.
    last_conv_block : torch.nn.Module
        The activation closing the fifth conv block (before its max pool);
        :func:`~sklearn_leuko.nn.grad_cam` hooks it.

    References
    ----------
    .. [1] Mourya et al., "LeukoNet: DCT-based CNN architecture for the
       classification of normal versus leukemic blasts in B-ALL cancer",
       arXiv:1810.07961, section 4 and Fig. 1.
    .. [2] T.-Y. Lin, A. RoyChowdhury and S. Maji, "Bilinear CNN Models for
       Fine-grained Visual Recognition", ICCV 2015.

    Examples
    --------
    >>> import torch
    >>> from sklearn_leuko.nn import BasicNetwork
    >>> net = BasicNetwork(in_channels=3, n_classes=2)
    >>> net(torch.zeros(4, 3, 32, 32)).shape
    torch.Size([4, 2])
    >>> net.features(torch.zeros(4, 3, 32, 32)).shape
    torch.Size([4, 4096])
    """

    def __init__(
        self,
        in_channels=3,
        n_classes=2,
        widths=(16, 32, 32, 64, 64, 64),
        activation="relu",
        bilinear_channels=None,
        stem_kernel_size=5,
        stem_stride=2,
        dropout=0.0,
    ):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.n_classes = check_positive_int(n_classes, "n_classes")
        self.widths = _check_widths(
            widths, 6, "widths", "1 strided stem convolution + 5 conv blocks"
        )
        stem_kernel_size = check_positive_int(stem_kernel_size, "stem_kernel_size")
        stem_stride = check_positive_int(stem_stride, "stem_stride")
        dropout = _check_dropout(dropout)
        make_activation(activation, 1)  # fail early on an unknown name

        self.stem_kernel_size = stem_kernel_size
        self.stem_stride = stem_stride
        self.stem = nn.Sequential(
            StridedConv2d(
                self.in_channels,
                self.widths[0],
                stem_kernel_size,
                stride=stem_stride,
                padding=stem_kernel_size // 2,
            ),
            make_activation(activation, self.widths[0]),
        )
        blocks = []
        for c_in, c_out in zip(self.widths[:-1], self.widths[1:], strict=True):
            blocks.extend(_conv_block(c_in, c_out, activation))
            # ceil_mode keeps a 1x1 map at 1x1, so tiny inputs never pool to 0x0.
            blocks.append(nn.MaxPool2d(2, ceil_mode=True))
        self.blocks = nn.Sequential(*blocks)
        self.pool = BilinearPool(self.widths[-1], reduced_channels=bilinear_channels)
        self.n_features = self.pool.out_features
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(self.n_features, self.n_classes)

    def feature_map_size(self, height, width):
        """Spatial size of the last feature map, the input of bilinear pooling.

        At 350x350 it is 6x6; below 65x65 (default stem) it is 1x1, where
        bilinear pooling degenerates to the outer product of one vector.

        Parameters
        ----------
        height, width : int
            Input size.

        Returns
        -------
        size : tuple of int
            ``(height, width)`` of the last feature map.
        """
        size = []
        for n in (height, width):
            pad = self.stem_kernel_size // 2
            n = (n + 2 * pad - self.stem_kernel_size) // self.stem_stride + 1
            for _ in range(5):
                n = -(-n // 2)  # MaxPool2d(2, ceil_mode=True)
            size.append(max(n, 0))
        return tuple(size)

    @property
    def last_conv_block(self):
        """The activation closing the last conv block, before its max pool.

        Its output, ``widths[-1]`` channels at ``H/32`` (11x11 at 350x350),
        is the feature map that the bilinear pooling reads: the layer whose
        channels Grad-CAM weights (:func:`~sklearn_leuko.nn.grad_cam`).
        Taking it before the max pool keeps twice the resolution of the
        pooled map (6x6 at 350x350).
        """
        return _last_feature_module(self.blocks)

    def features(self, x):
        """Bilinear features of the last convolution (the penultimate layer).

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)

        Returns
        -------
        features : torch.Tensor of shape (n, n_features)
            L2-normalised bilinear features.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"BasicNetwork expects input of shape (n, {self.in_channels}, H, W), "
                f"got shape {tuple(x.shape)}; set in_channels to match the "
                "preprocessing output."
            )
        return self.pool(self.blocks(self.stem(x)))

    def forward(self, x, **kwargs):
        """Class logits.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)
        **kwargs
            Ignored; skorch passes the fit parameters (e.g. ``groups``) to
            ``forward`` as well.

        Returns
        -------
        logits : torch.Tensor of shape (n, n_classes)
        """
        return self.classifier(self.dropout(self.features(x)))


class VGG11(nn.Module):
    """VGG-11 (configuration A) with global average pooling: the paper's baseline.

    Eight 3x3 convolutions (each followed by batch norm, when enabled, and the
    activation) with 2x2 max pooling after convolutions 1, 2, 4, 6 and 8
    (Simonyan & Zisserman, 2015, Table 1, column A). The three large fully
    connected layers of the original are replaced by global average pooling
    and one linear layer, so the network works at any input size and the
    penultimate features have ``widths[-1]`` values. Mourya et al. report
    VGG-11 as their first baseline (section 5, "OD w/ VGG 11" in Table 1). Weights are randomly
    initialised; nothing is downloaded.

    Parameters
    ----------
    in_channels : int, default=3
    n_classes : int, default=2
    widths : sequence of 8 int, default=(64, 128, 256, 256, 512, 512, 512, 512)
        Output channels of the 8 convolutions; narrow widths make a small
        test network.
    activation : {"relu", "prelu", "ptelu"}, default="relu"
    batch_norm : bool, default=True
        Batch norm after every convolution (the "VGG-11-BN" variant).
    dropout : float, default=0.5
        Dropout probability on the pooled features before the linear layer.

    Attributes
    ----------
    body : torch.nn.Sequential
        Convolutions and max pools.
    classifier : torch.nn.Linear
    n_features : int
        Size of the pooled features returned by :meth:`features`.
    last_conv_block : torch.nn.Module
        The activation after the eighth convolution (before the last max
        pool); :func:`~sklearn_leuko.nn.grad_cam` hooks it.

    References
    ----------
    .. [1] K. Simonyan and A. Zisserman, "Very Deep Convolutional Networks for
       Large-Scale Image Recognition", ICLR 2015.
    .. [2] Mourya et al., "LeukoNet", arXiv:1810.07961, section 5 and Table 1.

    Examples
    --------
    >>> import torch
    >>> from sklearn_leuko.nn import VGG11
    >>> net = VGG11(widths=(4, 8, 8, 8, 16, 16, 16, 16))
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 2])
    """

    _POOL_AFTER = (0, 1, 3, 5, 7)

    def __init__(
        self,
        in_channels=3,
        n_classes=2,
        widths=(64, 128, 256, 256, 512, 512, 512, 512),
        activation="relu",
        batch_norm=True,
        dropout=0.5,
    ):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.n_classes = check_positive_int(n_classes, "n_classes")
        self.widths = _check_widths(
            widths, 8, "widths", "the 8 convolutions of VGG-11 configuration A"
        )
        if not isinstance(batch_norm, bool):
            raise TypeError(f"batch_norm must be True or False, got {batch_norm!r}.")
        dropout = _check_dropout(dropout)
        make_activation(activation, 1)

        layers = []
        c_in = self.in_channels
        for i, c_out in enumerate(self.widths):
            layers.extend(_conv_block(c_in, c_out, activation, batch_norm))
            if i in self._POOL_AFTER:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.n_features = self.widths[-1]
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(self.n_features, self.n_classes)

    @property
    def last_conv_block(self):
        """The activation after the eighth convolution, before the last max pool.

        Its output (``widths[-1]`` channels at ``H/16``) is the last
        convolutional feature map: the layer whose channels Grad-CAM weights
        (:func:`~sklearn_leuko.nn.grad_cam`).
        """
        return _last_feature_module(self.body)

    def features(self, x):
        """Globally average-pooled features of the last convolution.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)

        Returns
        -------
        features : torch.Tensor of shape (n, n_features)
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"VGG11 expects input of shape (n, {self.in_channels}, H, W), got "
                f"shape {tuple(x.shape)}; set in_channels to match the "
                "preprocessing output."
            )
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x, **kwargs):
        """Class logits; extra keyword arguments (skorch fit parameters) are ignored.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)

        Returns
        -------
        logits : torch.Tensor of shape (n, n_classes)
        """
        return self.classifier(self.dropout(self.features(x)))
