"""sklearn-leuko: LeukoNet as scikit-learn compatible estimators.

LeukoNet (Mourya et al., arXiv 1810.07961) tells leukemic B-ALL blasts
("all") from normal hematogones ("hem") in single-cell microscope images.
This package provides its pieces as scikit-learn estimators built on PyTorch
and skorch:

- :mod:`sklearn_leuko.datasets`: a synthetic C-NMC-like generator and a loader
  for the real C-NMC 2019 folder layout;
- :mod:`sklearn_leuko.preprocessing`: optical density / stain deconvolution
  and the thresholded log-DCT, as transformers with a PyTorch twin;
- :class:`LeukoNetClassifier`: the Basic Network with bilinear pooling;
- :class:`FeatureFusionClassifier` and :func:`make_stage`: the paper's stages;
- :mod:`sklearn_leuko.evaluation`: the paper's protocol (subject-level folds,
  held-out test subjects);
- :mod:`sklearn_leuko.metrics` and :mod:`sklearn_leuko.report`: subject-level
  metrics, Table 2, figures;
- :func:`save_model` / :func:`load_model`: model files (``.safetensors``
  loads without running code).
"""

import importlib

__version__ = "0.1.0"

# Public names and the private module that defines each. Imported lazily so
# that ``import sklearn_leuko`` stays cheap and the CLI starts fast.
_LAZY = {
    "LeukoNetClassifier": "sklearn_leuko._classifier",
    "CellLevelSplitWarning": "sklearn_leuko._classifier",
    "InnerSplitWarning": "sklearn_leuko._classifier",
    "FeatureFusionClassifier": "sklearn_leuko.ensemble",
    "make_stage": "sklearn_leuko._stages",
    "stage_networks": "sklearn_leuko._stages",
    "domain_score": "sklearn_leuko._in_domain",
    "in_domain": "sklearn_leuko._in_domain",
    "STAGES": "sklearn_leuko._registry",
    "StageSpec": "sklearn_leuko._registry",
    "get_stage": "sklearn_leuko._registry",
    "StainDeconvolution": "sklearn_leuko.preprocessing",
    "LogDCT": "sklearn_leuko.preprocessing",
    "ChannelUnion": "sklearn_leuko.preprocessing",
    "save_safetensors": "sklearn_leuko._persistence",
    "load_model": "sklearn_leuko._persistence",
    "save_model": "sklearn_leuko._persistence",
    "JoblibCodeExecutionWarning": "sklearn_leuko._persistence",
    "load_safetensors": "sklearn_leuko._persistence",
    "dask_backend": "sklearn_leuko._distributed",
}
_SUBMODULES = {
    "datasets",
    "evaluation",
    "preprocessing",
    "nn",
    "ensemble",
    "metrics",
    "report",
    "utils",
}

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"sklearn_leuko.{name}")
    raise AttributeError(f"module 'sklearn_leuko' has no attribute {name!r}")


def __dir__():
    return __all__
