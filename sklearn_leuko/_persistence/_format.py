"""What both sides of the safetensors format share: names, versions, the class list."""

import numpy as np
import torch

from ._schema import FUSION, LEUKONET

__all__ = ["FORMAT", "FORMAT_VERSION"]

#: Value of the ``"format"`` metadata entry of the files written here.
FORMAT = "sklearn-leuko"
#: Layout version of the ``"config"`` tree; bumped on incompatible changes.
#: Version 3 adds the ``"digest"`` entry; versions 1 and 2 are still read.
FORMAT_VERSION = 3

# Parameters added since format version 1 -> the behaviour of older files.
ADDED_PARAMS = {
    LEUKONET: {
        "stain_layer": "fixed",
        "stain_matrix": "giemsa",
        "data_on_device": "auto",
        "tta": False,
        "compile": False,
    },
    FUSION: {"tta": None},
    "sklearn_leuko.preprocessing.StainDeconvolution": {"macenko_erosion": 0},
}

# The LeukoNetClassifier attributes that are not plain fitted values: the
# skorch net is stored as the state dict of its module plus a small spec.
NET_ATTRIBUTE = "net_"
# Parameters that only act during training and may hold arbitrary objects:
# stored as None (with a warning) rather than refusing the whole model.
TRAINING_ONLY_PARAMS = {"sklearn_leuko.LeukoNetClassifier": ("callbacks",)}
# Set by ``set_fit_request`` & co. (routing requests are not part of a model),
# and the compiled inference of compile=True (compiled again on first use).
SKIPPED_ATTRIBUTES = ("_metadata_request", "_compiled_inference")


def registry():
    """Public name -> class of every estimator a file may contain."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import LabelEncoder, StandardScaler

    from .._classifier import LeukoNetClassifier
    from ..ensemble import FeatureFusionClassifier
    from ..preprocessing import ChannelUnion, LogDCT, StainDeconvolution

    return {
        "sklearn_leuko.LeukoNetClassifier": LeukoNetClassifier,
        "sklearn_leuko.FeatureFusionClassifier": FeatureFusionClassifier,
        "sklearn_leuko.preprocessing.StainDeconvolution": StainDeconvolution,
        "sklearn_leuko.preprocessing.LogDCT": LogDCT,
        "sklearn_leuko.preprocessing.ChannelUnion": ChannelUnion,
        "sklearn.pipeline.Pipeline": Pipeline,
        "sklearn.preprocessing.StandardScaler": StandardScaler,
        "sklearn.preprocessing.LabelEncoder": LabelEncoder,
        "sklearn.linear_model.LogisticRegression": LogisticRegression,
    }


def is_estimator(value):
    return hasattr(value, "get_params") and not isinstance(value, type)


def all_finite(tensor):
    # NumPy: torch.isfinite costs milliseconds per small tensor on a busy CPU.
    if tensor.dtype in (torch.float32, torch.float64):
        return bool(np.isfinite(tensor.numpy()).all())
    return bool(torch.isfinite(tensor).all())
