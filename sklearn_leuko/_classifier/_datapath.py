"""Batched, copy-free access to the image array for training and inference.

The default skorch/torch path fetches one sample at a time and collates them
in Python. Here a batch is one fancy-indexing call on the uint8 array
(``Dataset.__getitems__``, used by torch's DataLoader when present), so the
image array is never copied as a whole and never converted to float on the
host.
"""

import numpy as np
import torch
from torch.utils.data import Dataset


class ImageBatchDataset(Dataset):
    """A view of ``X[indices]`` (and ``y``) that yields whole batches.

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
    """

    def __init__(self, X, y=None, indices=None, augment_mask=None):
        self.X = X
        self.y = y
        self.indices = np.arange(len(X)) if indices is None else np.asarray(indices)
        self.augment_mask = augment_mask

    def __len__(self):
        return len(self.indices)

    def __getitems__(self, positions):
        rows = self.indices[np.asarray(positions)]
        batch = {"X": torch.from_numpy(self.X[rows])}
        if self.augment_mask is not None:
            batch["augment_mask"] = torch.from_numpy(self.augment_mask[rows])
        if self.y is None:
            target = torch.zeros(len(rows), dtype=torch.long)
        else:
            target = torch.from_numpy(np.asarray(self.y[rows], dtype=np.int64))
        return batch, target

    def __getitem__(self, position):
        batch, target = self.__getitems__([position])
        return {k: v[0] for k, v in batch.items()}, target[0]


def collate_batch(batch):
    """Collate function for :class:`ImageBatchDataset`: batches come ready."""
    return batch
