"""Training and inference loops timed by the benchmarks and gpu_check.py.

Three ways to train the same network (the default BasicNetwork, Adam, lr
1e-3, cross-entropy) on the same cells:

- ``plain_torch``: the loop a competent PyTorch user writes: optical density
  precomputed once and already on the device, channels-last, the same
  precision as the library (``torch.autocast`` with bfloat16 or not),
  batches drawn by indexing a device tensor with a device permutation;
- ``plain_torch_module``: the same loop over the library's own module
  (:meth:`LeukoNetClassifier.build_module`: optical density and the
  learnable SD-Layer per batch, then the network) on the same uint8 images
  already on the device: the same computation as ``library``, so the ratio
  between the two is the library's own overhead;
- ``plain_skorch``: skorch's ``NeuralNetClassifier`` on the precomputed
  float32 arrays, out of the box;
- ``library``: ``LeukoNetClassifier(preprocessing="od")`` on the raw uint8
  images (it computes the optical density per batch on the device).

Each returns seconds for training and for predicting every cell once.
"""

import time

import numpy as np
import torch

from sklearn_leuko import LeukoNetClassifier
from sklearn_leuko.nn import BasicNetwork
from sklearn_leuko.preprocessing import StainDeconvolution

__all__ = [
    "compiled_prediction",
    "fresh_module",
    "library",
    "plain_skorch",
    "plain_torch",
    "plain_torch_module",
    "precompute_od",
    "predict_all",
    "predict_batch_size",
    "sync",
    "train_epochs",
]


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def predict_batch_size(batch_size, device):
    """The library's default prediction batch size (used by every variant)."""
    return max(batch_size, 256) if str(device).startswith("cuda") else batch_size


def precompute_od(images):
    """Float32 optical density (Giemsa stain concentrations), ``(n, 3, H, W)``."""
    return StainDeconvolution().fit_transform(images)


def train_epochs(forward, optimizer, X, Y, *, batch_size, epochs, drop_last=False):
    """Seconds to train ``epochs`` epochs: batches drawn by device indices.

    ``forward(xb) -> logits``; ``X`` and ``Y`` already on the device.
    ``drop_last`` skips the last, smaller batch (one shape for torch.compile).
    """
    loss_fn = torch.nn.CrossEntropyLoss()
    n = len(X)
    stop = n - batch_size + 1 if drop_last else n
    sync(X.device)
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, device=X.device)
        for i in range(0, stop, batch_size):
            idx = perm[i : i + batch_size]
            loss = loss_fn(forward(X[idx]).float(), Y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    sync(X.device)
    return time.perf_counter() - start


def predict_all(forward, X, *, batch_size):
    """Seconds to predict every row of ``X`` (softmax, one copy to the host)."""
    sync(X.device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = [
            forward(X[i : i + batch_size]).float().softmax(1)
            for i in range(0, len(X), batch_size)
        ]
        torch.cat(out).cpu().numpy()
    return time.perf_counter() - start


def plain_torch(od, y, *, device, batch_size, epochs, bf16, seed=0, activation="relu"):
    """The honest baseline. ``od``: float32 ``(n, 3, H, W)``."""
    torch.manual_seed(seed)
    model = BasicNetwork(in_channels=3, activation=activation)
    model = model.to(device, memory_format=torch.channels_last)
    # NHWC storage: a batch permuted to NCHW is a channels-last tensor, no copy.
    X = torch.from_numpy(np.ascontiguousarray(od.transpose(0, 2, 3, 1))).to(device)
    Y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    kind = torch.device(device).type

    def forward(xb):
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            return model(xb.permute(0, 3, 1, 2))

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    train_s = train_epochs(
        forward, optimizer, X, Y, batch_size=batch_size, epochs=epochs
    )
    model.eval()
    pbs = predict_batch_size(batch_size, device)
    return train_s, predict_all(forward, X, batch_size=pbs)


def fresh_module(clf, device):
    """``clf.build_module()`` on ``device``, without augmentation: fresh weights."""
    module = clf.build_module().to(device)
    module.augmenter = None
    return module


def plain_torch_module(clf, images, y, *, device, batch_size, epochs, seed=0):
    """The plain loop over ``clf.build_module()`` on uint8 ``(n, H, W, 3)`` images.

    ``clf`` is a fitted LeukoNetClassifier; its module is rebuilt with fresh
    weights (and its own precision and memory format) and trained here.
    """
    torch.manual_seed(seed)
    module = fresh_module(clf, device)
    X = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    Y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    module.train()
    train_s = train_epochs(
        module, optimizer, X, Y, batch_size=batch_size, epochs=epochs
    )
    module.eval()
    pbs = predict_batch_size(batch_size, device)
    return train_s, predict_all(module, X, batch_size=pbs)


def compiled_prediction(clf, images, device, repeats):
    """``clf.predict_proba`` with ``compile=False`` and ``True``: first call apart.

    Returns ``{"eager": {...}, "compiled": {...}}`` with ``first_call_s`` and
    ``cells_per_s`` (best of ``repeats`` later calls), or ``error`` where the
    compiler is missing.
    """

    def seconds():
        start = time.perf_counter()
        clf.predict_proba(images)
        sync(device)
        return time.perf_counter() - start

    out = {}
    for compiled in (False, True):
        name = "compiled" if compiled else "eager"
        clf.set_params(compile=compiled)
        try:
            first = seconds()
            best = min(seconds() for _ in range(repeats))
        except RuntimeError as exc:  # no compiler: say so, keep the other figures
            out[name] = {"error": str(exc)}
            continue
        out[name] = {"first_call_s": first, "cells_per_s": len(images) / best}
    clf.set_params(compile=False)
    return out


def plain_skorch(od, y, *, device, batch_size, epochs, seed=0):
    """skorch out of the box on the precomputed arrays (float32)."""
    from skorch import NeuralNetClassifier

    torch.manual_seed(seed)
    net = NeuralNetClassifier(
        BasicNetwork,
        module__in_channels=3,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=epochs,
        batch_size=batch_size,
        train_split=None,
        iterator_train__shuffle=True,
        iterator_valid__batch_size=predict_batch_size(batch_size, device),
        device=device,
        verbose=0,
    )
    start = time.perf_counter()
    net.fit(od, np.asarray(y, dtype=np.int64))
    sync(device)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    net.predict_proba(od)
    return train_s, time.perf_counter() - start


def library(
    images,
    labels,
    *,
    device,
    batch_size,
    epochs,
    bf16,
    data_on_device="auto",
    augment="off",
    preprocessing="od",
    seed=0,
    **params,
):
    """LeukoNetClassifier on raw uint8 images; returns (train_s, predict_s, clf).

    ``params``: more LeukoNetClassifier parameters (``stain_layer``,
    ``activation``, ``tta``...).
    """
    clf = LeukoNetClassifier(
        preprocessing=preprocessing,
        max_epochs=epochs,
        batch_size=batch_size,
        validation_fraction=None,
        augment=augment,
        mixed_precision=bool(bf16),
        data_on_device=data_on_device,
        device=device,
        verbose=0,
        random_state=seed,
        **params,
    )
    start = time.perf_counter()
    clf.fit(images, labels)
    sync(device)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    clf.predict_proba(images)
    return train_s, time.perf_counter() - start, clf
