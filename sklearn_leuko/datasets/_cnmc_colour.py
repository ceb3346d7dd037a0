"""Colour constants measured on real C-NMC 2019 cells (one source, torch-free).

Measured on the 36 cells of the 14 *calibration* subjects of
``../shared/data/real/cnmc2019`` (``subjects.csv``), pixels of each cell
eroded by 3 px (``benchmarks/data/real_cells.py`` re-measures them). Used by the
synthetic generator (:mod:`._render`) and by the named stain matrix
``"cnmc"`` of :class:`~sklearn_leuko.preprocessing.StainDeconvolution`.
"""

import numpy as np

__all__ = [
    "CNMC_HUE_DIRECTION",
    "CNMC_MEAN_CONCENTRATION",
    "CNMC_STAIN_MATRIX",
    "CNMC_TEXTURE_DIRECTION",
]

#: Macenko et al. (2009) stain matrix of the calibration cells: rows are the
#: unit OD vectors (R, G, B) of the two stains and their normalised cross
#: product. ``StainDeconvolution("macenko", n_pixels=400_000,
#: random_state=0)`` with its defaults (alpha 1, beta 0.15, erosion 2) on the
#: 36 calibration images. The two stains are 9.6 degrees apart (C-NMC is
#: stain-normalised to nearly one purple). Residual OD energy outside their
#: plane: 0.07% of the cell's OD energy on the calibration cells and 0.05% on
#: the 33 evaluation cells, against 2.5% and 2.3% for the Giemsa basis
#: (``skimage.color.rgb_from_bex``).
CNMC_STAIN_MATRIX = np.array(
    [
        [0.5344, 0.7677, 0.3537],
        [0.4098, 0.7855, 0.4638],
        [0.4691, -0.6175, 0.6314],
    ]
)
CNMC_STAIN_MATRIX.setflags(write=False)

#: Mean stain concentrations (natural-log OD units) of a calibration cell in
#: the basis of the first two rows of ``CNMC_STAIN_MATRIX``: mean OD
#: ``(1.31, 2.18, 1.17)``, RGB about ``(69, 29, 79)``.
CNMC_MEAN_CONCENTRATION = np.array([1.256, 1.575])

#: First principal direction of the within-cell OD deviations (sd 0.30, the
#: chromatin's light and dark patches), in the same stain basis: about the
#: OD vector ``(0.51, 0.82, 0.28)``, less blue than the mean colour.
CNMC_TEXTURE_DIRECTION = np.array([1.134, -0.140])

#: Second principal direction of the within-cell OD deviations (the first is
#: the mean colour, sd 0.30; this one, sd 0.08, is a red-versus-green/blue
#: hue shift), in the same stain basis: ``5.435 v1 - 5.498 v2`` is about the
#: OD vector ``(0.84, -0.39, -0.37)``.
CNMC_HUE_DIRECTION = np.array([5.435, -5.498])
