"""Model files: safetensors (no code runs on load) and joblib, one entry point.

- :func:`save_model` / :func:`load_model`: by file suffix;
- :func:`save_safetensors` / :func:`load_safetensors`: the safe format.
"""

from ._model import JoblibCodeExecutionWarning, load_model, save_model
from ._safetensors import (
    FORMAT,
    FORMAT_VERSION,
    load_safetensors,
    save_safetensors,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "JoblibCodeExecutionWarning",
    "load_model",
    "load_safetensors",
    "save_model",
    "save_safetensors",
]
