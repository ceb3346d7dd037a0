"""The NumPy side of the transformers: validated chunks through a torch module.

The transformers' ``transform`` runs the torch twin of their math
(:mod:`sklearn_leuko.nn._preprocess`) on the CPU, chunk by chunk, so the
NumPy and torch paths share one implementation and memory stays bounded.
"""

import numpy as np
import torch


def check_structure(X, check, **kwargs):
    """Validate the shape and dtype of X without touching all its values.

    Checks the first image only (value checks then run chunk by chunk in
    :func:`iter_checked_chunks`); on error the full array is checked again
    so that the message quotes its real shape.
    """
    if isinstance(X, np.ndarray) and X.ndim == 4 and X.shape[0] > 0:
        try:
            check(X[:1], **kwargs)
        except (TypeError, ValueError):
            check(X, **kwargs)
            raise
        return X
    return check(X, **kwargs)


def iter_checked_chunks(X, check, batch_size, rows=None, **kwargs):
    """Yield ``(start, chunk)`` with each chunk validated by ``check``.

    ``rows`` selects (sorted) images; only one chunk is gathered at a time.
    """
    n = X.shape[0] if rows is None else len(rows)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        chunk = X[start:stop] if rows is None else X[rows[start:stop]]
        yield start, check(chunk, **kwargs)


def rgb_chunk_to_tensor(chunk):
    # (b, H, W, 3) -> float32 (b, 3, H, W); the copy is one chunk large.
    return torch.from_numpy(np.array(chunk, dtype=np.float32)).permute(0, 3, 1, 2)


def channels_first_chunk_to_tensor(chunk):
    # The torch functions never write to their input: no copy when not needed.
    if chunk.dtype == np.float32 and chunk.flags.writeable:
        return torch.from_numpy(chunk)
    return torch.from_numpy(np.array(chunk, dtype=np.float32))


def transform_in_chunks(module, X, check, to_tensor, batch_size, **kwargs):
    """Apply ``module`` to X chunk by chunk on the CPU into one float32 array.

    Peak extra memory is one chunk (input copy, intermediates, output) on top
    of the float32 result.
    """
    X = check_structure(X, check, **kwargs)
    out = None
    module = module.cpu().eval()
    with torch.inference_mode():
        for start, chunk in iter_checked_chunks(X, check, batch_size, **kwargs):
            result = module(to_tensor(chunk))
            if out is None:
                out = np.empty((X.shape[0], *result.shape[1:]), dtype=np.float32)
            out[start : start + result.shape[0]] = result.numpy()
    return out
