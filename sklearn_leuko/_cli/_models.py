"""Looking inside fitted stages and loading model files for the commands."""

import warnings
from pathlib import Path

from ._console import CLIError, one_line


def size_text(n_bytes):
    """``"1.2 MiB"`` / ``"340 KiB"``."""
    if n_bytes >= 2**20:
        return f"{n_bytes / 2**20:.1f} MiB"
    return f"{n_bytes / 2**10:.0f} KiB"


def fitted_networks(model):
    """``(name, LeukoNetClassifier)`` of every network of a fitted stage."""
    from .._stages import stage_networks

    return stage_networks(model)


def input_shape(model):
    """Shape of one input image of a fitted stage."""
    nets = fitted_networks(model)
    if not nets:
        raise CLIError(
            f"the model is a {type(model).__name__}, not a sklearn-leuko stage; "
            "save one with 'sklearn-leuko train'."
        )
    return nets[0][1].input_shape_


def set_tta(model, n_views):
    """Test-time augmentation with ``n_views`` views for every network of a
    fitted stage, and for a fusion itself (its ``tta`` overrides theirs)."""
    from .._classifier._tta_outputs import check_tta

    for name, net in fitted_networks(model):
        try:
            check_tta(n_views, net.input_kind_, net.input_shape_)
        except ValueError as exc:
            raise CLIError(f"--tta {n_views}: network {name!r}: {exc}") from None
        net.set_params(tta=n_views)
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if "tta" in final.get_params(deep=False):
        final.set_params(tta=n_views)


def load_cli_model(path, device, console):
    """:func:`~sklearn_leuko.load_model` with one-line errors; its warnings
    (version mismatch, joblib runs code) reach the user."""
    from .._persistence import JoblibCodeExecutionWarning, load_model

    path = Path(path)
    if not path.exists():
        raise CLIError(f"--model {path}: no such file.")
    if path.is_dir():
        raise CLIError(f"--model {path}: is a folder, not a model file.")
    try:
        with warnings.catch_warnings():
            # Said once, plainly, below rather than as a warning line.
            warnings.simplefilter("ignore", JoblibCodeExecutionWarning)
            model = load_model(path, device=device)
    except (KeyboardInterrupt, MemoryError):
        raise
    except (ValueError, OSError) as exc:
        raise CLIError(
            f"--model: cannot load the model: {one_line(exc)}; is it a file written "
            "by 'sklearn-leuko train'?"
        ) from exc
    except Exception as exc:
        raise CLIError(
            f"--model {path}: cannot load the model ({type(exc).__name__}: "
            f"{one_line(exc)}); is it a file written by 'sklearn-leuko train'?"
        ) from exc
    if path.suffix != ".safetensors":
        console.info(
            f"Note: {path} is a joblib file (a pickle): loading it ran the code it "
            "holds. Only use joblib models you trust; '.safetensors' models load "
            "without running code."
        )
    return model
