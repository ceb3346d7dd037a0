"""Data sets: a synthetic C-NMC-like generator and the real C-NMC 2019 layout."""

from ._synthetic import make_cells

__all__ = ["make_cells"]
