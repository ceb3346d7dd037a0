"""Fusion of network features: the paper's Stage-3 and Stage-3C hybrids."""

from ._fusion import FeatureFusionClassifier, default_final_estimator

__all__ = ["FeatureFusionClassifier", "default_final_estimator"]
