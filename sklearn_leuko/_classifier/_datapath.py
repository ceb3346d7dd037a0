"""Batches for training and inference: drawn on the device, or streamed from the host.

Two ways to feed the network (``data_on_device`` of
:class:`~sklearn_leuko.LeukoNetClassifier`):

- **device-resident** (:class:`DeviceBatchDataset`): the uint8 images are
  copied to the device once per fit (on the CPU the "copy" is a tensor view
  of the array), and a batch is one ``index_select`` there, with row indices
  that are on the device already: no host copy and no DataLoader per batch;
- **streamed** (:class:`ImageBatchDataset` through a torch
  :class:`~torch.utils.data.DataLoader`): a batch is one fancy-indexing call
  on the host array (``__getitems__``); on CUDA it is gathered straight into
  pinned memory and copied on a side stream one batch ahead, so the copy of
  batch ``k + 1`` overlaps the computation of batch ``k``.

:class:`BatchLoader` is the skorch iterator for both. It draws the order of
an epoch from one permutation, the same for both kinds, so the two give the
same batches and, on the CPU, bit-identical fits.
"""

import copy
import warnings

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "DEVICE_MEMORY_FRACTION",
    "BatchLoader",
    "DeviceBatchDataset",
    "ImageBatchDataset",
    "collate_batch",
    "images_to_device",
    "resolve_data_on_device",
]

#: ``data_on_device="auto"`` puts the images on a CUDA device when they take at
#: most this share of its free memory at fit time; the rest is left for the
#: activations, the optimizer and other processes.
DEVICE_MEMORY_FRACTION = 0.5

# Host -> device copies of the whole array go in chunks of this size, so a
# memory-mapped array is never read into host memory at once.
_COPY_CHUNK_BYTES = 256 * 2**20


def _tensor_view(X):
    """``X`` as a CPU tensor sharing its memory (no copy)."""
    if isinstance(X, torch.Tensor):
        return X
    with warnings.catch_warnings():
        # Read-only arrays (memory maps, np.broadcast_to) are only read here.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(X))


class ImageBatchDataset(Dataset):
    """A view of ``X[indices]`` (and ``y``) on the host that yields whole batches.

    Parameters
    ----------
    X : ndarray
        uint8 ``(n, H, W, 3)`` images or float32 ``(n, C, H, W)`` arrays.
    y : ndarray of int or None
        Encoded labels.
    indices : ndarray of int or None
        Rows of ``X`` that this dataset exposes, in order (repeats allowed,
        which is how oversampling works). ``None`` means all rows.
    augment_mask : ndarray of bool or None
        Per-row flag (indexed like ``X``): augment this sample in training.
        ``None`` with an augmenter augments every sample.
    """

    pin_memory = False

    def __init__(self, X, y=None, indices=None, augment_mask=None):
        self.X = X
        self.y = y
        self.indices = np.arange(len(X)) if indices is None else np.asarray(indices)
        self.augment_mask = augment_mask

    def __len__(self):
        return len(self.indices)

    def _gather(self, rows):
        if not self.pin_memory:
            return torch.from_numpy(self.X[rows])
        # Straight into pinned memory: one host copy instead of two.
        source = _tensor_view(self.X)
        out = torch.empty(
            (len(rows), *source.shape[1:]), dtype=source.dtype, pin_memory=True
        )
        return torch.index_select(source, 0, torch.from_numpy(rows), out=out)

    def __getitems__(self, positions):
        rows = self.indices[np.asarray(positions)]
        batch = {"X": self._gather(rows)}
        if self.augment_mask is not None:
            batch["augment_mask"] = torch.from_numpy(self.augment_mask[rows])
        if self.y is None:
            target = torch.zeros(len(rows), dtype=torch.long)
        else:
            target = torch.from_numpy(np.asarray(self.y[rows], dtype=np.int64))
        if self.pin_memory:
            # The small tensors too: a copy from pageable memory blocks the host.
            if "augment_mask" in batch:
                batch["augment_mask"] = batch["augment_mask"].pin_memory()
            target = target.pin_memory()
        return batch, target

    def __getitem__(self, position):
        batch, target = self.__getitems__([position])
        return {k: v[0] for k, v in batch.items()}, target[0]

    def with_pinned_batches(self):
        """A shallow copy whose batches are gathered into pinned memory."""
        pinned = copy.copy(self)
        pinned.pin_memory = True
        return pinned

    def to_device(self, images):
        """The same samples, drawn from ``images`` on the device.

        Parameters
        ----------
        images : torch.Tensor
            ``X`` on the device (:func:`images_to_device`); shared by the
            datasets of one fit, so the images are on the device once.

        Returns
        -------
        dataset : DeviceBatchDataset
        """
        if tuple(images.shape) != tuple(self.X.shape):
            raise ValueError(
                f"images has shape {tuple(images.shape)}, but this dataset's X has "
                f"shape {tuple(self.X.shape)}; pass images_to_device(X)."
            )
        return DeviceBatchDataset(images, self.y, self.indices, self.augment_mask)


class DeviceBatchDataset(Dataset):
    """Samples of an image tensor that lives on the device, drawn there.

    Parameters
    ----------
    images : torch.Tensor
        All the images (or arrays), on the device of the network.
    y : ndarray of int or None
        Encoded labels, indexed like ``images``; copied to the device.
    indices : ndarray of int or None
        Rows of ``images`` that this dataset exposes, in order (repeats
        allowed). Kept on the host too: :class:`BatchLoader` permutes them
        there and sends one epoch's rows at once.
    augment_mask : ndarray of bool or None
        Per-row augmentation flag, indexed like ``images``; copied to the
        device.
    """

    def __init__(self, images, y=None, indices=None, augment_mask=None):
        device = images.device
        self.images = images
        self.indices = (
            np.arange(len(images)) if indices is None else np.asarray(indices)
        )
        self.y = (
            None
            if y is None
            else torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
        )
        self.augment_mask = (
            None
            if augment_mask is None
            else torch.from_numpy(np.asarray(augment_mask, dtype=bool)).to(device)
        )

    @property
    def device(self):
        return self.images.device

    def __len__(self):
        return len(self.indices)

    def batch(self, rows):
        """The batch of ``rows`` (an int64 tensor on the device): device ops only."""
        batch = {"X": self.images.index_select(0, rows)}
        if self.augment_mask is not None:
            batch["augment_mask"] = self.augment_mask.index_select(0, rows)
        if self.y is None:
            target = torch.zeros(len(rows), dtype=torch.long, device=self.device)
        else:
            target = self.y.index_select(0, rows)
        return batch, target

    def __getitems__(self, positions):
        rows = torch.from_numpy(self.indices[np.asarray(positions)])
        return self.batch(rows.to(self.device))

    def __getitem__(self, position):
        batch, target = self.__getitems__([position])
        return {k: v[0] for k, v in batch.items()}, target[0]


def collate_batch(batch):
    """Collate function for :class:`ImageBatchDataset`: batches come ready."""
    return batch


def images_to_device(X, device):
    """Put the whole image array on ``device``, once.

    Parameters
    ----------
    X : ndarray
        The images (any dtype; a memory map is read chunk by chunk).
    device : str or torch.device

    Returns
    -------
    images : torch.Tensor
        On the CPU a view of ``X`` (no copy); on another device a copy.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return _tensor_view(X)
    source = _tensor_view(X)
    images = torch.empty(source.shape, dtype=source.dtype, device=device)
    row_bytes = max(1, source[:1].numel() * source.element_size())
    step = max(1, _COPY_CHUNK_BYTES // row_bytes)
    for start in range(0, len(source), step):
        images[start : start + step].copy_(source[start : start + step])
    return images


def resolve_data_on_device(setting, device, nbytes):
    """Decide whether a fit keeps its images on the device.

    Parameters
    ----------
    setting : {"auto", True, False}
        The ``data_on_device`` parameter.
    device : str or torch.device
        The training device.
    nbytes : int
        Size of the images that would be copied there.

    Returns
    -------
    on_device : bool
        ``"auto"``: true on CUDA when ``nbytes`` is at most
        :data:`DEVICE_MEMORY_FRACTION` of the free device memory, false on
        the CPU (where the DataLoader path honours ``iterator_train__*``
        settings such as ``num_workers``).

    Raises
    ------
    ValueError
        ``True`` on a CUDA device whose free memory is smaller than the
        images.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return setting is True
    if setting is False:
        return False
    free, _ = torch.cuda.mem_get_info(device)
    if setting == "auto":
        return nbytes <= DEVICE_MEMORY_FRACTION * free
    if nbytes > free:
        raise ValueError(
            f"data_on_device=True: the images take {nbytes / 2**30:.2f} GiB but "
            f"{device} has {free / 2**30:.2f} GiB free; use data_on_device='auto' "
            "or False to stream the batches from host memory."
        )
    return True


def _map_tensors(batch, fn):
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, dict):
        return {k: _map_tensors(v, fn) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_map_tensors(v, fn) for v in batch)
    return batch


def _prefetch_to_cuda(batches, device):
    """Copy host batches to ``device`` on a side stream, one batch ahead.

    The copy of batch ``k + 1`` is queued before batch ``k`` is handed to the
    training step, so it runs while batch ``k`` computes; from pinned memory
    the copy does not block the host.
    """
    copy_stream = torch.cuda.Stream(device=device)
    compute_stream = torch.cuda.current_stream(device)

    def send(batch):
        with torch.cuda.stream(copy_stream):
            sent = _map_tensors(batch, lambda t: t.to(device, non_blocking=True))
            done = torch.cuda.Event()
            done.record(copy_stream)
        return sent, done

    def ready(item):
        sent, done = item
        compute_stream.wait_event(done)
        # The memory was allocated on the copy stream and is used on the
        # compute stream: tell the caching allocator.
        _map_tensors(sent, lambda t: t.record_stream(compute_stream))
        return sent

    pending = None
    for host_batch in batches:
        sent = send(host_batch)
        if pending is not None:
            yield ready(pending)
        pending = sent
    if pending is not None:
        yield ready(pending)


class _EpochBatches:
    """Batch sampler for the DataLoader: the positions of this epoch's batches."""

    def __init__(self):
        self.batches = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


class BatchLoader:
    """The skorch iterator of LeukoNetClassifier (``iterator_train``/``iterator_valid``).

    Parameters
    ----------
    dataset : ImageBatchDataset or DeviceBatchDataset
        Host-resident data is streamed through a torch DataLoader;
        device-resident data is drawn on the device, without a loader.
    batch_size : int, default=1
    shuffle : bool, default=False
        A new order every epoch. The permutation is drawn with
        ``generator`` if given, else from a seed drawn from torch's global
        generator (one draw per epoch, as torch's ``RandomSampler``), so
        ``torch.manual_seed`` (which ``fit`` sets from ``random_state``)
        fixes it.
    drop_last : bool, default=False
    device : str or torch.device, default="cpu"
        Where the batches are used. Host batches are sent there; on CUDA
        from pinned memory on a side stream, one batch ahead.
    generator : torch.Generator or None, default=None
        Source of the permutation, instead of torch's global generator.
    **loader_kwargs
        Other :class:`~torch.utils.data.DataLoader` arguments
        (``num_workers``, ``pin_memory``, ``prefetch_factor``,
        ``persistent_workers``, ``timeout``, ``worker_init_fn``,
        ``multiprocessing_context``, ``pin_memory_device``, ...), passed on
        for host-resident data. Device-resident data ignores them: there is
        nothing to load. ``pin_memory`` defaults to true on CUDA.
    """

    def __init__(
        self,
        dataset,
        batch_size=1,
        shuffle=False,
        drop_last=False,
        device="cpu",
        generator=None,
        **loader_kwargs,
    ):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = torch.device(device)
        self.generator = generator
        self.loader_kwargs = loader_kwargs
        self._loader = None
        self._sampler = _EpochBatches()

    def __len__(self):
        n = len(self.dataset)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def epoch_order(self):
        """The positions of one epoch, in order (draws the permutation)."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        generator = self.generator
        if generator is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            generator = torch.Generator().manual_seed(seed)
        return torch.randperm(n, generator=generator).numpy()

    def _bounds(self, n):
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        return [
            (a, min(a + self.batch_size, n)) for a in range(0, stop, self.batch_size)
        ]

    def __iter__(self):
        order = self.epoch_order()
        bounds = self._bounds(len(order))
        if isinstance(self.dataset, DeviceBatchDataset):
            return self._iter_device(order, bounds)
        return self._iter_host(order, bounds)

    def _iter_device(self, order, bounds):
        rows = torch.from_numpy(self.dataset.indices[order])
        device = self.dataset.device
        # One copy of the epoch's row indices; every batch is a slice of it.
        if device.type == "cuda":
            rows = rows.pin_memory().to(device, non_blocking=True)
        else:
            rows = rows.to(device)
        for a, b in bounds:
            yield self.dataset.batch(rows[a:b])

    def _make_loader(self):
        kwargs = dict(self.loader_kwargs)
        on_cuda = self.device.type == "cuda"
        pin = kwargs.pop("pin_memory", on_cuda)
        dataset = self.dataset
        if pin and on_cuda and kwargs.get("num_workers", 0) == 0:
            dataset = dataset.with_pinned_batches()
            pin = False
        # The DataLoader draws a base seed for its workers from this generator;
        # a private one leaves torch's global generator (which augmentation
        # uses) as the device-resident path leaves it.
        generator = self.generator or torch.Generator().manual_seed(0)
        return DataLoader(
            dataset,
            batch_sampler=self._sampler,
            collate_fn=collate_batch,
            pin_memory=pin,
            generator=generator,
            **kwargs,
        )

    def _iter_host(self, order, bounds):
        if self._loader is None:
            self._loader = self._make_loader()
        self._sampler.batches = [order[a:b] for a, b in bounds]
        if self.device.type == "cuda":
            return _prefetch_to_cuda(self._loader, self.device)
        return iter(self._loader)
