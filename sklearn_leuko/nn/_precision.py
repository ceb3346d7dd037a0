"""Where bfloat16 autocast pays off: CUDA devices and CPUs with native bfloat16.

On a CPU without bfloat16 instructions, autocast still runs, but every
bfloat16 convolution is emulated (converted to float32 and back), which is
slower than plain float32. So mixed precision is used on the CPU only where
the hardware computes bfloat16 natively:

- x86-64: AVX512-BF16 (``avx512_bf16``, Intel Cooper Lake and later, AMD Zen 4
  and later) or AMX (``amx_bf16``, Intel Sapphire Rapids and later), with
  oneDNN (``torch.backends.mkldnn``) to use them;
- Arm: the BF16 extension (``bf16`` in the CPU features, e.g. Neoverse V1/N2).

The flags are read from ``/proc/cpuinfo`` (Linux). Elsewhere the answer is
``False``: float32, never a slow emulation.
"""

import contextlib
import functools

import torch

__all__ = ["autocast_context", "cpu_has_native_bf16", "cuda_has_native_bf16"]


def _cpuinfo_flags(path="/proc/cpuinfo"):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                # x86 lists "flags", Arm lists "Features".
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16():
    """True when this CPU computes bfloat16 natively.

    Returns
    -------
    native : bool
        ``True`` for x86-64 CPUs with AVX512-BF16 or AMX-BF16 (and a torch
        built with oneDNN), and for Arm CPUs with the BF16 extension;
        ``False`` otherwise, including when the CPU flags cannot be read.

    Examples
    --------
    >>> from sklearn_leuko.nn import cpu_has_native_bf16
    >>> isinstance(cpu_has_native_bf16(), bool)
    True
    """
    flags = _cpuinfo_flags()
    if flags & {"avx512_bf16", "amx_bf16"}:
        return bool(torch.backends.mkldnn.is_available())
    return "bf16" in flags  # Arm's name; x86 CPUs have no plain "bf16" flag


def cuda_has_native_bf16():
    """True when the current CUDA device computes bfloat16 natively (Ampere+)."""
    if not torch.cuda.is_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch without the including_emulation argument
        return torch.cuda.get_device_capability()[0] >= 8


def autocast_context(device_type, dtype):
    """The autocast context for running a network on ``device_type``.

    Parameters
    ----------
    device_type : str
        ``"cuda"``, ``"cpu"``, ...
    dtype : torch.dtype or None
        The autocast dtype the model was trained with; ``None`` for float32.

    Returns
    -------
    context : context manager
        :func:`torch.autocast` on CUDA, and on a CPU with native bfloat16
        (:func:`cpu_has_native_bf16`); a no-op (float32) otherwise, so a
        model trained in bfloat16 runs in float32 on a CPU that would
        emulate bfloat16.
    """
    if dtype is None:
        return contextlib.nullcontext()
    if device_type == "cuda" or (
        device_type == "cpu" and dtype == torch.bfloat16 and cpu_has_native_bf16()
    ):
        return torch.autocast(device_type=device_type, dtype=dtype)
    return contextlib.nullcontext()
