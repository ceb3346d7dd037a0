"""Data sets: a synthetic C-NMC-like generator and the real C-NMC 2019 layout.

- :func:`make_cells`: synthetic single-cell images with subject-level effects;
- :func:`load_cnmc`, :func:`read_images`: read the C-NMC 2019 folder layout;
- :func:`write_cnmc`: write images into that layout (BMP files);
- :func:`load_images`: your own images from a ``path,label,subject`` CSV,
  class folders or a C-NMC tree, cropped and resized to one geometry;
- :func:`fit_to_geometry`, :func:`record_geometry`, :func:`model_geometry`:
  the scale contract between a model's training images and new ones.
"""

from ._cnmc import load_cnmc, read_images, write_cnmc
from ._geometry import fit_to_geometry, model_geometry, record_geometry
from ._load_images import load_images
from ._synthetic import make_cells

__all__ = [
    "fit_to_geometry",
    "load_cnmc",
    "load_images",
    "make_cells",
    "model_geometry",
    "read_images",
    "record_geometry",
    "write_cnmc",
]
