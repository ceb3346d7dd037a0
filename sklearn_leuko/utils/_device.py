"""Resolve the ``device`` parameter of the estimators."""


def _unusable(device, kind):
    """Why torch cannot run on ``device`` here, or ``None`` when it can."""
    import torch

    if kind == "cpu":
        return None
    if kind == "meta":
        return "'meta' tensors hold no data, so nothing can be computed on them"
    if kind == "cuda":
        backend_available = torch.cuda.is_available()
        count = torch.cuda.device_count() if backend_available else 0
    elif kind == "mps":
        backend_available = torch.backends.mps.is_available()
        count = 1 if backend_available else 0
    else:
        # xpu, hpu, ... : the backends that torch exposes as torch.<name>.
        backend = getattr(torch, kind, None)
        is_available = getattr(backend, "is_available", None)
        backend_available = bool(callable(is_available) and is_available())
        device_count = getattr(backend, "device_count", None)
        count = device_count() if backend_available and callable(device_count) else 1
    if not backend_available:
        return f"{kind.upper()} is not available in this PyTorch on this machine"
    index = torch.device(device).index
    if index is not None and index >= count:
        return f"this machine has {count} {kind.upper()} device(s), numbered from 0"
    return None


def resolve_device(device):
    """Turn ``device`` into a concrete torch device string, or refuse it.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"} or str or torch.device
        ``"auto"`` picks ``"cuda"`` when a CUDA device is available and
        ``"cpu"`` otherwise. Anything else must name a device that torch can
        use on this machine (``"cuda:1"``, ``"mps"``, ...).

    Returns
    -------
    device : str

    Raises
    ------
    ValueError
        ``device`` is not a torch device name, or torch cannot use it here
        (no such backend, or no such device index). Checked up front, so that
        a fit never fails later with a raw torch ``RuntimeError``.
    """
    import torch  # deferred: sklearn_leuko.datasets and utils stay torch-free

    if device is None or (isinstance(device, str) and device == "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'auto', 'cpu' or "
            "'cuda'."
        ) from exc
    reason = _unusable(resolved, resolved.type)
    if reason is not None:
        raise ValueError(
            f"device={device!r} cannot be used: {reason}. Use device='auto' (CUDA "
            "when available, else the CPU) or device='cpu'."
        )
    return str(resolved)
