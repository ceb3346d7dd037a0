"""One entry point to save and load fitted models, by file suffix."""

import os
import warnings
from pathlib import Path

from ..utils._files import atomic_write
from ._safetensors import load_safetensors, save_safetensors

__all__ = ["JoblibCodeExecutionWarning", "load_model", "save_model"]

SAFE_SUFFIX = ".safetensors"


class JoblibCodeExecutionWarning(UserWarning):
    """A joblib (pickle) model file was loaded: loading it ran code stored in it."""


def save_model(model, path):
    """Save a fitted model; the suffix of ``path`` chooses the format.

    - ``.safetensors``: :func:`~sklearn_leuko.save_safetensors`, a file of
      tensors and a JSON description that loads without running code (safe
      to share);
    - any other suffix (conventionally ``.joblib``): :func:`joblib.dump`, a
      pickle, which runs code when it is loaded.

    Both are written atomically (temporary file, then rename) with the
    permissions of an ordinary new file. The folder is created if needed.

    Parameters
    ----------
    model : estimator
        A fitted model.
    path : str or path-like

    Returns
    -------
    path : pathlib.Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == SAFE_SUFFIX:
        save_safetensors(model, path)
    else:
        import joblib

        with atomic_write(path) as handle:
            joblib.dump(model, handle)
    return path


def load_model(path, *, device="cpu"):
    """Load a model saved by :func:`save_model` (``.safetensors`` or joblib).

    Warnings are not hidden: a joblib file written by another library
    version warns that its results may differ, and every joblib file warns
    (:class:`JoblibCodeExecutionWarning`) that loading it ran the code it
    holds, so only files you trust should be loaded that way.

    Parameters
    ----------
    path : str or path-like
        A ``.safetensors`` file (:func:`~sklearn_leuko.load_safetensors`) or
        a joblib file.
    device : str, default="cpu"
        Where the networks of a ``.safetensors`` model run (``"cpu"``,
        ``"cuda"``, ``"auto"``). Networks in a joblib file run where they
        were saved unless that device is missing, then on the CPU.

    Returns
    -------
    model : estimator

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a model file, or holds something that is not a
        fitted classifier.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No model file at {os.fspath(path)!r}.")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a model file.")
    if path.suffix == SAFE_SUFFIX:
        model = load_safetensors(path, device=device)
    else:
        import joblib

        warnings.warn(
            f"{path} is a joblib file (a pickle): loading it ran the code it holds. "
            "Only load joblib files you trust; share models as .safetensors files.",
            JoblibCodeExecutionWarning,
            stacklevel=2,
        )
        try:
            model = joblib.load(path)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            raise ValueError(
                f"{path} is not a joblib model file ({type(exc).__name__}: {exc})"
            ) from exc
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise ValueError(
            f"{path} holds a {type(model).__name__}, not a fitted classifier."
        )
    return model
