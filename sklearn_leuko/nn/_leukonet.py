"""The full LeukoNet forward path: raw batch -> augmentation -> preprocessing -> network.

Keeping the three pieces in one module lets the uint8 images be the only full
copy of the data: a batch reaches the device as uint8 and everything else
happens there, per batch.
"""

import torch
from torch import nn

from ._precision import autocast_context


class LeukoNetModule(nn.Module):
    """Compose augmentation, preprocessing and a network into one module.

    Parameters
    ----------
    network : nn.Module
        A network with ``forward(x) -> logits`` and ``features(x)``
        (:class:`~sklearn_leuko.nn.BasicNetwork` or
        :class:`~sklearn_leuko.nn.VGG11`).
    preprocess : nn.Module or None
        Maps float RGB ``(n, 3, H, W)`` in [0, 255] to the network input
        (optical density, log-DCT, ...). ``None`` passes the input through.
    augmenter : nn.Module or None
        Training-time augmentation in image space
        (:class:`~sklearn_leuko.nn.ImageAugmenter`). It runs only while the
        module is in training mode, so validation and prediction batches are
        never augmented.
    rgb_input : bool
        If true, ``X`` is a uint8 batch ``(n, H, W, 3)`` that is converted to
        float ``(n, 3, H, W)`` first; otherwise ``X`` is already a float
        channels-first batch.
    autocast_dtype : torch.dtype or None
        Run the network (not the augmentation and the preprocessing, whose
        logarithms and DCT need float32) under :func:`torch.autocast` with
        this dtype, on CUDA and on CPUs with native bfloat16
        (:func:`~sklearn_leuko.nn.cpu_has_native_bf16`). On a CPU that would
        emulate bfloat16 the network runs in float32, so a model trained in
        mixed precision predicts in float32 there.
    channels_last : bool
        Use the channels-last memory format for the network input.
    """

    def __init__(
        self,
        network,
        preprocess=None,
        augmenter=None,
        rgb_input=True,
        autocast_dtype=None,
        channels_last=False,
    ):
        super().__init__()
        self.network = network
        self.preprocess = preprocess
        self.augmenter = augmenter
        self.rgb_input = rgb_input
        self.autocast_dtype = autocast_dtype
        self.channels_last = channels_last

    def _network_input(self, X, augment_mask=None):
        x = X
        augmenting = self.training and self.augmenter is not None
        if self.rgb_input:
            x = x.permute(0, 3, 1, 2)
            # The stain fronts read uint8 through a table (rgb_to_od).
            if augmenting or not getattr(self.preprocess, "reads_uint8", False):
                x = x.float()
        elif x.dtype != torch.float32:
            x = x.float()
        if augmenting:
            x = self.augmenter(x, augment_mask)
        if self.preprocess is not None:
            x = self.preprocess(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _autocast(self, x):
        # Decided per call, from the device the batch is on: a model trained in
        # bfloat16 runs in float32 on a CPU without native bfloat16.
        return autocast_context(x.device.type, self.autocast_dtype)

    def forward(self, X, augment_mask=None, **kwargs):
        x = self._network_input(X, augment_mask)
        with self._autocast(x):
            logits = self.network(x)
        return logits.float()

    def features(self, X):
        """Penultimate (bilinear) features of a batch, float32 ``(n, d)``."""
        x = self._network_input(X)
        with self._autocast(x):
            feats = self.network.features(x)
        return feats.float()
