"""Resolve the ``device`` parameter of the estimators."""


def resolve_device(device):
    """Turn ``device`` into a concrete torch device string.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"} or str or torch.device
        ``"auto"`` picks ``"cuda"`` when a CUDA device is available and
        ``"cpu"`` otherwise. Anything else is passed to :class:`torch.device`.

    Returns
    -------
    device : str
    """
    import torch  # deferred: sklearn_leuko.datasets and utils stay torch-free

    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'auto', 'cpu' or 'cuda'."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine; use device='auto' to fall back to the CPU."
        )
    return str(resolved)
