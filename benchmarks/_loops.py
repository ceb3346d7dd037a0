"""Training and inference loops timed by bench_training.py and gpu_check.py.

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
    "library",
    "plain_skorch",
    "plain_torch",
    "plain_torch_module",
    "precompute_od",
    "predict_batch_size",
    "sync",
]


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def predict_batch_size(batch_size, device):
    """The library's default prediction batch size (used by every variant)."""
    return max(batch_size, 256) if str(device).startswith("cuda") else batch_size


def precompute_od(images):
    """Float32 optical density (Giemsa stain concentrations), ``(n, 3, H, W)``."""
    return StainDeconvolution().fit_transform(images)


def plain_torch(od, y, *, device, batch_size, epochs, bf16, seed=0):
    """The honest baseline. ``od``: float32 ``(n, 3, H, W)``."""
    torch.manual_seed(seed)
    model = BasicNetwork(in_channels=3).to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    # NHWC storage: a batch permuted to NCHW is a channels-last tensor, no copy.
    X = torch.from_numpy(np.ascontiguousarray(od.transpose(0, 2, 3, 1))).to(device)
    Y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    kind = torch.device(device).type
    n = len(X)
    sync(device)
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, device=device)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            xb = X[idx].permute(0, 3, 1, 2)
            with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
                logits = model(xb)
            loss = loss_fn(logits.float(), Y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    sync(device)
    train_s = time.perf_counter() - start
    model.eval()
    pbs = predict_batch_size(batch_size, device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = []
        for i in range(0, n, pbs):
            with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
                logits = model(X[i : i + pbs].permute(0, 3, 1, 2))
            out.append(logits.float().softmax(1))
        torch.cat(out).cpu().numpy()
    return train_s, time.perf_counter() - start


def plain_torch_module(clf, images, y, *, device, batch_size, epochs, seed=0):
    """The plain loop over ``clf.build_module()`` on uint8 ``(n, H, W, 3)`` images.

    ``clf`` is a fitted LeukoNetClassifier; its module is rebuilt with fresh
    weights (and its own precision and memory format) and trained here.
    """
    torch.manual_seed(seed)
    module = clf.build_module().to(device)
    module.augmenter = None
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    X = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    Y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    n = len(X)
    sync(device)
    start = time.perf_counter()
    module.train()
    for _ in range(epochs):
        perm = torch.randperm(n, device=device)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            loss = loss_fn(module(X[idx]), Y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    sync(device)
    train_s = time.perf_counter() - start
    module.eval()
    pbs = predict_batch_size(batch_size, device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = [module(X[i : i + pbs]).softmax(1) for i in range(0, n, pbs)]
        torch.cat(out).cpu().numpy()
    return train_s, time.perf_counter() - start


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
):
    """LeukoNetClassifier on raw uint8 images; returns (train_s, predict_s, clf)."""
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
    )
    start = time.perf_counter()
    clf.fit(images, labels)
    sync(device)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    clf.predict_proba(images)
    return train_s, time.perf_counter() - start, clf
