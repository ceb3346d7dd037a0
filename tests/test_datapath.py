"""Device-resident and streamed batches: same batches, same fits, nothing kept."""

import gc
import pickle
import weakref

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sklearn_leuko import LeukoNetClassifier
from sklearn_leuko._classifier import _training
from sklearn_leuko._classifier._datapath import (
    DEVICE_MEMORY_FRACTION,
    BatchLoader,
    DeviceBatchDataset,
    ImageBatchDataset,
    images_to_device,
    resolve_data_on_device,
)
from sklearn_leuko._classifier._net import SkorchNet

TINY = dict(widths=(4, 4, 8, 8, 8, 8), max_epochs=2, batch_size=16, verbose=0)


def _data(tiny_cells):
    return tiny_cells.images, tiny_cells.target, tiny_cells.groups


def _epochs(loader, n_epochs=2, seed=0):
    torch.manual_seed(seed)
    return [list(loader) for _ in range(n_epochs)]


@pytest.mark.parametrize("drop_last", [False, True])
def test_device_and_streamed_loaders_give_the_same_batches(drop_last):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (23, 5, 5, 3), dtype=np.uint8)
    y = rng.integers(0, 2, 23)
    indices = np.concatenate([np.arange(23), [3, 3, 7]])  # oversampled rows
    mask = rng.random(23) < 0.5
    host = ImageBatchDataset(X, y, indices, mask)
    device = host.to_device(images_to_device(X, "cpu"))
    assert isinstance(device, DeviceBatchDataset)
    kwargs = dict(batch_size=4, shuffle=True, drop_last=drop_last)
    streamed = _epochs(BatchLoader(host, **kwargs))
    drawn = _epochs(BatchLoader(device, **kwargs))
    assert len(streamed[0]) == len(BatchLoader(host, **kwargs))
    assert len(streamed[0]) == (26 // 4 if drop_last else 7)
    # Each epoch is shuffled anew, and both paths follow the same orders.
    first, second = (torch.cat([b["X"] for b, _ in epoch]) for epoch in streamed)
    assert not torch.equal(first, second)
    for epoch_s, epoch_d in zip(streamed, drawn, strict=True):
        assert len(epoch_s) == len(epoch_d)
        for (bs, ts), (bd, td) in zip(epoch_s, epoch_d, strict=True):
            assert bs.keys() == bd.keys() == {"X", "augment_mask"}
            torch.testing.assert_close(bs["X"], bd["X"], rtol=0, atol=0)
            torch.testing.assert_close(
                bs["augment_mask"], bd["augment_mask"], rtol=0, atol=0
            )
            torch.testing.assert_close(ts, td, rtol=0, atol=0)


def test_loader_without_shuffle_keeps_the_order_and_leaves_the_rng_alone():
    X = np.arange(10 * 2 * 2 * 3, dtype=np.uint8).reshape(10, 2, 2, 3)
    state = torch.get_rng_state()
    batches = list(BatchLoader(ImageBatchDataset(X), batch_size=4))
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(torch.cat([b["X"] for b, _ in batches]).numpy(), X)


def test_images_to_device_on_cpu_is_a_view():
    X = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    X.setflags(write=False)  # read-only arrays (memory maps) are fine
    images = images_to_device(X, "cpu")
    assert images.data_ptr() == X.__array_interface__["data"][0]


def test_resolve_data_on_device(monkeypatch):
    assert resolve_data_on_device("auto", "cpu", 10) is False
    assert resolve_data_on_device(True, "cpu", 10) is True
    assert resolve_data_on_device(False, "cpu", 10) is False
    # CUDA decisions from the free memory (mem_get_info faked: no GPU here).
    free = 1000
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free, 4 * free))
    limit = int(DEVICE_MEMORY_FRACTION * free)
    assert resolve_data_on_device("auto", "cuda", limit) is True
    assert resolve_data_on_device("auto", "cuda", limit + 1) is False
    assert resolve_data_on_device(False, "cuda", 1) is False
    assert resolve_data_on_device(True, "cuda", free) is True
    with pytest.raises(ValueError, match="data_on_device=True.*GiB free"):
        resolve_data_on_device(True, "cuda", free + 1)


@pytest.mark.parametrize("augment", ["off", "all", "normal"])
def test_data_on_device_gives_the_same_fit_on_cpu(tiny_cells, augment):
    X, y, g = _data(tiny_cells)
    params = dict(preprocessing="od", augment=augment, random_state=0, **TINY)
    fits = [
        LeukoNetClassifier(data_on_device=flag, **params).fit(X, y, groups=g)
        for flag in (False, True)
    ]
    state = [f.net_.module_.state_dict() for f in fits]
    assert state[0].keys() == state[1].keys()
    for key in state[0]:
        torch.testing.assert_close(state[0][key], state[1][key], rtol=0, atol=0)
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))
    for key in ("train_loss", "valid_loss", "valid_acc"):
        assert fits[0].history_[:, key] == fits[1].history_[:, key]


def test_separate_validation_data_on_device(tiny_cells):
    X, y, g = _data(tiny_cells)
    params = dict(preprocessing="od", random_state=0, **TINY)
    fits = [
        LeukoNetClassifier(data_on_device=flag, **params).fit(
            X[:40], y[:40], validation_data=(X[40:], y[40:])
        )
        for flag in (False, True)
    ]
    assert fits[0].history_[:, "valid_loss"] == fits[1].history_[:, "valid_loss"]


def test_device_copy_of_the_images_is_released_after_fit(tiny_cells, monkeypatch):
    X, y, g = _data(tiny_cells)
    X = np.random.default_rng(0).integers(0, 256, X.shape, dtype=np.uint8)
    copies = []

    def recording(X, device):
        images = images_to_device(X, device)
        copies.append(weakref.ref(images))
        return images

    monkeypatch.setattr(_training, "images_to_device", recording)
    clf = LeukoNetClassifier(
        preprocessing="od", data_on_device=True, random_state=0, **TINY
    )
    clf.fit(X, y, groups=g)
    gc.collect()
    assert len(copies) == 1
    assert copies[0]() is None  # nothing in the fitted model holds the tensor
    blob = pickle.dumps(clf)
    for i in range(len(X)):
        assert X[i, 10, :].tobytes() not in blob


def test_loader_settings_pass_through_to_the_streamed_path(tiny_cells):
    """iterator_train__num_workers reaches a DataLoader and changes nothing else."""
    X, y, g = _data(tiny_cells)
    params = dict(preprocessing="od", data_on_device=False, random_state=0, **TINY)
    clf0 = LeukoNetClassifier(**params).fit(X, y, groups=g)
    clf1 = LeukoNetClassifier(iterator_train__num_workers=1, **params)
    clf1.fit(X, y, groups=g)
    assert clf1.net_.iterator_train__num_workers == 1
    np.testing.assert_array_equal(clf0.predict_proba(X), clf1.predict_proba(X))


def test_prediction_batch_size_is_a_pass_through(tiny_cells):
    X, y, g = _data(tiny_cells)
    clf = LeukoNetClassifier(preprocessing="od", random_state=0, **TINY)
    clf.fit(X, y, groups=g)
    assert clf.net_.iterator_valid__batch_size == TINY["batch_size"]  # CPU default
    loader = clf.net_.get_iterator(ImageBatchDataset(X), training=False)
    assert loader.batch_size == TINY["batch_size"]
    big = clf.set_params(iterator_valid__batch_size=7)
    assert big.get_params()["iterator_valid__batch_size"] == 7
    with pytest.raises(ValueError, match="iterator_train__sampler"):
        LeukoNetClassifier(iterator_train__sampler=None, **TINY).fit(X, y, groups=g)


def test_deferred_loss_sync_records_the_same_history(tiny_cells, monkeypatch):
    """The CUDA setting (losses read once per epoch), exercised on the CPU."""
    X, y, g = _data(tiny_cells)
    params = dict(preprocessing="od", random_state=0, **TINY)
    eager = LeukoNetClassifier(**params).fit(X, y, groups=g)
    assert eager.net_.defer_loss_sync is False  # on the CPU item() is free
    seen = []
    original = SkorchNet.__init__

    def deferring(self, *args, defer_loss_sync=False, **kwargs):
        original(self, *args, defer_loss_sync=True, **kwargs)

    class Spy(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            if training:
                seen.append(net.history[-1, "batches", -1, "train_loss"])

    monkeypatch.setattr(SkorchNet, "__init__", deferring)
    deferred = LeukoNetClassifier(callbacks=[Spy()], **params).fit(X, y, groups=g)
    assert deferred.net_.defer_loss_sync is True
    assert seen and all(isinstance(v, torch.Tensor) for v in seen)
    for key in ("train_loss", "valid_loss"):
        assert (
            eager.history_[:, "batches", :, key]
            == (deferred.history_[:, "batches", :, key])
        )
        values = [v for epoch in deferred.history_[:, "batches", :, key] for v in epoch]
        assert all(type(v) is float for v in values)
    assert eager.history_[:, "train_loss"] == deferred.history_[:, "train_loss"]


def test_masked_augmentation_without_host_sync_keeps_unmasked_samples():
    """The GPU strategy (transform all, keep the masked), checked on the CPU."""
    from sklearn_leuko.nn import ImageAugmenter

    torch.manual_seed(0)
    x = torch.rand(6, 3, 12, 12)
    mask = torch.tensor([True, False, True, False, False, True])
    out = ImageAugmenter()._augment_selected(x, mask)
    assert torch.equal(out[~mask], x[~mask])
    assert not torch.equal(out[mask], x[mask])
    assert out.shape == x.shape and out.dtype == x.dtype


def test_augmentation_draws_no_device_tensor_before_sending(monkeypatch):
    """Random draws are made on the CPU and sent once (pinned on CUDA)."""
    from sklearn_leuko.nn import _augment

    sent = []
    original = _augment._to_device

    def spy(tensor, device, dtype=None):
        assert tensor.device.type == "cpu"
        sent.append(tuple(tensor.shape))
        return original(tensor, device, dtype)

    monkeypatch.setattr(_augment, "_to_device", spy)
    torch.manual_seed(0)
    _augment.ImageAugmenter(blur_p=1.0)(torch.rand(4, 3, 16, 16))
    # the (n, 2, 3) warp matrices, the blurred rows and their kernels
    assert (4, 6, 1, 1) in sent and (4,) in sent and len(sent) == 3
