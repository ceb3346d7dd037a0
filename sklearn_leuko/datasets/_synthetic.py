"""Synthetic C-NMC-like single-cell images: :func:`make_cells`.

The generator is a small physical model of a Jenner-Giemsa stained bone
marrow smear seen through a bright-field microscope, segmented the way the
C-NMC 2019 images are (one cell, centred, on a black canvas). It exists so
that every part of the library can be tested and benchmarked without the
real data, and so that the central pitfall of the task (subject-level
variability that a cell-level split leaks) is present in the synthetic data
too.
"""

import numbers

import numpy as np
from sklearn.utils import Bunch, check_random_state, check_scalar

from ._cell_model import cell_table, subject_table
from ._render import REF_SIZE, render

__all__ = ["make_cells"]


# Bytes of float32 work arrays per chunk of images; bounds memory at 350x350.
_CHUNK_BYTES = 128 * 2**20

_DESCR = """\
Synthetic C-NMC-like single-cell images
---------------------------------------

Each image holds one segmented white blood cell, centred on a black (0, 0, 0)
canvas, in the layout and colour of the (stain-normalised) C-NMC 2019
challenge data: a dark purple-magenta cell (mean RGB about 69, 29, 79),
mostly nucleus, about 220 px across on the 450 px canvas. Labels: "all"
(leukemic B-ALL blast, the positive class) and "hem" (normal B cell). Every
cell of a subject has the subject's label; subject IDs follow C-NMC ("7" for
an ALL patient, "H3" for a healthy subject).

Generative model (see make_cells for the parameters and the real statistics
each one was fitted to):

- each cell has a latent blast score z ~ N(+/- 1.25 * class_separation +
  subject offset, 1) (+ for "all"); z drives the cell size (blasts larger),
  the outline irregularity (blasts more irregular), the contrast of fine
  chromatin (normal cells more mottled) and a slight hue shift;
- each subject has its own stain density, hue, illumination, texture
  contrast, focus blur, cell size and z offset, scaled by
  subject_variability: cells of a subject share a signature that a
  classifier can memorise, which is why cell-level cross-validation
  overestimates accuracy;
- the image is rendered with the Beer-Lambert law, I = I0 exp(-OD), in the
  plane of the two stains fitted to real C-NMC cells, blurred, masked to the
  cell and perturbed by Gaussian camera noise.

Data set characteristics:

    :Number of subjects: n_subjects (about cancer_fraction of them "all")
    :Number of images: n_subjects * cells_per_subject
    :Image: uint8 RGB, image_size x image_size (a 450 px canvas resized)
    :Classes: "all", "hem"
"""


def _check_fraction(value, name):
    check_scalar(value, name, numbers.Real, min_val=0.0, max_val=1.0)
    return float(value)


def _filenames(groups, labels, rng):
    """C-NMC style names ``UID_<subject>_<image>_<cell>_<label>.bmp``."""
    names = np.empty(len(groups), dtype=object)
    for subject in np.unique(groups):
        where = np.flatnonzero(groups == subject)
        # a microscope image shows 1-3 segmented cells
        per_image = rng.integers(1, 4, size=len(where))
        image_no = np.repeat(np.arange(1, len(where) + 1), per_image)[: len(where)]
        cell_no = np.ones(len(where), dtype=int)
        for i in range(1, len(where)):
            if image_no[i] == image_no[i - 1]:
                cell_no[i] = cell_no[i - 1] + 1
        for j, i in enumerate(where):
            names[i] = f"UID_{subject}_{image_no[j]}_{cell_no[j]}_{labels[i]}.bmp"
    return names.astype(str)


def make_cells(
    n_subjects=24,
    cells_per_subject=40,
    image_size=72,
    *,
    cancer_fraction=2 / 3,
    class_separation=1.0,
    subject_variability=1.0,
    noise=0.8,
    shuffle=True,
    return_X_y=False,
    return_masks=False,
    random_state=None,
):
    """Generate synthetic C-NMC-like images of single white blood cells.

    Each image shows one cell centred on a black (0, 0, 0) canvas, as in the
    C-NMC 2019 challenge data (Mourya et al., arXiv 1810.07961, Section 3),
    with the size, colour, optical density, contrast, outline and texture
    statistics of real C-NMC cells. Leukemic blasts (``"all"``) and normal
    B cells (``"hem"``) differ by a learnable but noisy morphological signal
    that points the same way as in real cells, and every subject has its own
    staining and imaging conditions, so that a classifier validated on
    held-out cells of known subjects looks better than on held-out subjects.

    **Scale contract.** ``make_cells(image_size=s)`` is a 450 x 450 C-NMC
    image (the raw frame; real cells are about 220 px across, 14-20% of its
    area) resized to ``s x s``: lengths below are in pixels of the 450 px
    canvas; texture contrast and camera noise shrink as area-averaging a
    450 px image down to ``s`` would shrink them. The same ``random_state``
    gives the same cells (labels, subjects, file names, every per-cell
    parameter) at every ``image_size``; only the pixel-level random fields
    (chromatin grain, camera noise) are drawn anew per size.

    **Calibration.** Every number was fitted to the 36 real cells of the 14
    *calibration* subjects of ``../shared/data/real/cnmc2019``
    (``subjects.csv``), measured on the raw 450 px images by
    ``benchmarks/data/real_cells.py``; the 15 evaluation subjects were kept for
    measuring transfer. Real values are given as ``all`` / ``hem``.

    **Generative model.** Each cell has a latent blast score
    ``z ~ N(m, 1)``, ``m = +/-1.25 * class_separation + b_subject`` (``+``
    for ``"all"``). From ``z``:

    - cell area ``0.178 exp(0.062 z + N(0, 0.21))`` of the canvas: real
      0.195 / 0.167 (area alone separates the classes with ROC AUC 0.67 on
      the calibration cells, 0.77 on all 69); the slope is the log ratio of
      the class means over the distance of the class means of ``z``;
    - outline: an ellipse (ellipticity up to 0.13) plus harmonics k = 2..8
      of amplitude ``0.048 exp(0.25 z + N(0, 0.35)) (k / 2)^-0.7``: real
      radial CV of the outline 0.114 / 0.069, solidity 0.951 / 0.973 (blasts
      are more irregular);
    - chromatin: log-normal mottling of the stain density by smooth noise at
      Gaussian scales 1.5, 4.5, 13.5 and 40 px with amplitudes 0.027, 0.034,
      0.040, 0.085 times ``exp(-0.10 z)``, ``exp(-0.03 z)``, 1, 1: real
      band-passed grey-OD contrast (1-3, 3-9, 9-27 px) 0.0088 / 0.0112,
      0.021 / 0.023, 0.028 / 0.029 and within-cell OD sd (0.15, 0.24, 0.09 /
      0.16, 0.23, 0.10); normal cells have the more contrasted fine
      chromatin (real fine band: ROC AUC 0.15 for ``"all"``); the variation
      runs along the first principal direction of the real within-cell OD,
      ``(0.51, 0.82, 0.28)``, darker patches less blue; 0-4 pale spots
      (Poisson 1.2, 4-9 px, depth 0.1-0.3) and no pixel lighter than 0.55
      of the cell's density (real: no pale pixel, mean RGB > 120);
    - hue ``0.012 z + N(0, 0.02)`` along the second principal direction of
      the real OD, ``(0.84, -0.39, -0.37)``: real ``OD_B / OD_R - 1`` is
      -0.116 / -0.092;
    - mostly nucleus: a cytoplasm rim of 2-8 px with 0.80-0.95 of the
      nucleus's stain density and bluer: real grey OD 2-4 px inside the edge
      0.77 of the interior, rim contrast -0.12 / -0.09.

    Mean colour: stain concentrations ``(1.256, 1.575)`` on the two stains of
    ``STAIN_MATRICES["cnmc"]`` (a Macenko fit on the calibration cells, 9.6
    degrees apart), times a cell density ``1.03 exp(N(0, 0.06))``: real mean
    OD ``-ln(I / 255)`` of the cell (1.33, 2.22, 1.18) / (1.30, 2.17, 1.18).

    With ``class_separation=1`` and the blast score alone, the best possible
    cell-level accuracy is ``Phi(1.25)``, about 0.89, the level LeukoNet
    reaches on unseen subjects; the images carry ``z`` only through noisy
    features, so the accuracy reachable from pixels is lower. Each subject
    ``s`` draws, scaled by ``subject_variability``: stain density (log sd
    0.06; real between-subject sd of the mean OD about 8%, within-subject
    6%), hue (sd 0.025), illumination and brightness (log sd 0.02 and 0.03),
    texture contrast (log sd 0.10), focus blur (Gaussian sigma ``1.2 +
    |N(0, 0.8)|`` px at 450 px), a cell size scale (log sd 0.05) and the
    blast score offset ``b_s ~ N(0, 0.3)``. The signature of a subject is
    easy to memorise, so cell-level ``KFold`` scores higher than
    subject-level ``GroupKFold``. The stain fields are blurred, turned into
    RGB with the Beer-Lambert law ``I = 255 exp(-OD)``, masked to the cell
    (anti-aliased edge) and perturbed by Gaussian camera noise.

    Images are generated in chunks with vectorised NumPy (FFT filtering for
    texture and blur), so memory stays bounded at large ``image_size``.

    Parameters
    ----------
    n_subjects : int, default=24
        Number of subjects (patients and healthy donors).
    cells_per_subject : int, default=40
        Number of cells of every subject.
    image_size : int, default=72
        Height and width of the square images (at least 16; from 65 on the
        Basic Network's last feature map is 2x2, not 1x1): the 450 px C-NMC
        canvas resized to this size (450 is the raw C-NMC frame; the
        LeukoNet input is its 350 px centre crop).
    cancer_fraction : float, default=2/3
        Fraction of subjects that are ALL patients; 2/3 gives the ~2:1
        ``"all"``:``"hem"`` cell ratio of C-NMC. When strictly between 0 and
        1, at least one subject of each class is drawn.
    class_separation : float, default=1.0
        Scales the difference between the classes (the mean blast score is
        ``+/-1.25 * class_separation``). 0 gives no class signal at all;
        larger values make the task easier.
    subject_variability : float, default=1.0
        Scales every subject-level effect (stain, illumination, blur, size,
        blast score offset). 0 makes all subjects identical; larger values
        widen the gap between cell-level and subject-level validation.
    noise : float, default=0.8
        Standard deviation of the Gaussian camera noise in grey levels
        (0-255) at the 450 px canvas (real C-NMC: about 0.8 in the
        difference of the image and its 1 px Gaussian blur); at a smaller
        ``image_size`` s it is ``noise * s / 450``, as after resizing.
    shuffle : bool, default=True
        Shuffle the cells. When false, cells come subject by subject, ALL
        patients first.
    return_X_y : bool, default=False
        If true, return ``(images, target, groups)`` instead of a Bunch. The
        subject IDs are part of the tuple on purpose: evaluate with a
        subject-level splitter such as ``GroupKFold``.
    return_masks : bool, default=False
        If true, the Bunch also holds ``cell_mask`` and ``nucleus_mask``, the
        ground-truth regions (e.g. to check where a Grad-CAM heatmap
        points). The images are the same bytes as without masks. Not
        available with ``return_X_y=True``.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible output (same seed, same bytes).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes:

        images : ndarray of shape (n_cells, image_size, image_size, 3), uint8
            RGB images, black background.
        target : ndarray of shape (n_cells,), str
            ``"all"`` or ``"hem"``.
        groups : ndarray of shape (n_cells,), str
            Subject ID of every cell (``"7"`` for an ALL patient, ``"H3"`` for
            a healthy subject).
        subjects : pandas.DataFrame
            One row per subject: ``subject``, ``label``, ``n_cells``,
            ``hue`` (shift along the C-NMC hue direction), ``density``
            (stain density factor), ``brightness`` (mean log illumination),
            ``texture_scale``, ``blur`` (sigma in pixels of this image
            size), ``size_scale``, ``blast_offset``.
        blast_score : ndarray of shape (n_cells,)
            The latent blast score ``z`` of every cell (for diagnostics).
        filenames : ndarray of shape (n_cells,), str
            C-NMC style names ``UID_<subject>_<image>_<cell>_<label>.bmp``.
        geometry : dict
            ``{"source_size": 450, "crop_size": 450, "image_size": s}``: the
            native canvas the images stand for, the crop taken of it (none)
            and the size it was resized to (the key ``load_images`` returns
            for real data).
        cell_mask : ndarray of shape (n_cells, image_size, image_size), bool
            Only with ``return_masks=True``: pixels covered at least half by
            the cell outline. Pixels outside it are black, except for a
            one-pixel anti-aliased rim.
        nucleus_mask : ndarray of shape (n_cells, image_size, image_size), bool
            Only with ``return_masks=True``: pixels covered at least half by
            the nucleus outline (a subset of ``cell_mask``). The nucleus
            stain is drawn inside this outline before the focus blur, so its
            edge in the image is soft. ``cell_mask & ~nucleus_mask`` is the
            cytoplasm.
        DESCR : str
            Description of the data set.

    (images, target, groups) : tuple
        When ``return_X_y`` is true.

    See Also
    --------
    load_cnmc : Load the real C-NMC 2019 images.
    write_cnmc : Write a data set in the C-NMC folder layout.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_leuko.datasets import make_cells
    >>> cells = make_cells(n_subjects=6, cells_per_subject=4, image_size=32,
    ...                    random_state=0)
    >>> cells.images.shape, cells.images.dtype
    ((24, 32, 32, 3), dtype('uint8'))
    >>> np.unique(cells.target).tolist()
    ['all', 'hem']
    >>> cells.filenames[0][:4]
    'UID_'
    >>> cells.geometry
    {'source_size': 450, 'crop_size': 450, 'image_size': 32}
    """
    for name, value in (
        ("n_subjects", n_subjects),
        ("cells_per_subject", cells_per_subject),
        ("image_size", image_size),
    ):
        if isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got the bool {value!r}.")
    for name, value in (
        ("class_separation", class_separation),
        ("subject_variability", subject_variability),
        ("noise", noise),
    ):
        if isinstance(value, numbers.Real) and not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}.")
    check_scalar(n_subjects, "n_subjects", numbers.Integral, min_val=1)
    check_scalar(cells_per_subject, "cells_per_subject", numbers.Integral, min_val=1)
    check_scalar(image_size, "image_size", numbers.Integral, min_val=16)
    cancer_fraction = _check_fraction(cancer_fraction, "cancer_fraction")
    check_scalar(class_separation, "class_separation", numbers.Real, min_val=0.0)
    check_scalar(subject_variability, "subject_variability", numbers.Real, min_val=0.0)
    check_scalar(noise, "noise", numbers.Real, min_val=0.0)
    if not isinstance(return_masks, (bool, np.bool_)):
        raise TypeError(f"return_masks must be True or False, got {return_masks!r}.")
    if return_masks and return_X_y:
        raise ValueError(
            "return_masks=True needs return_X_y=False: the masks come in the Bunch "
            "(cells.cell_mask, cells.nucleus_mask)."
        )
    n_subjects, cells_per_subject, image_size = (
        int(n_subjects),
        int(cells_per_subject),
        int(image_size),
    )

    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max, size=4)
    rng = np.random.default_rng(seed)
    subjects = subject_table(n_subjects, cancer_fraction, subject_variability, rng)
    cells = cell_table(subjects, cells_per_subject, float(class_separation), rng)
    n = n_subjects * cells_per_subject
    groups = subjects["subject"][cells["subject_index"]]
    target = subjects["label"][cells["subject_index"]]
    filenames = _filenames(groups, target, rng)
    # shuffle the cell table, not the images: no second copy of a large array
    order = rng.permutation(n) if shuffle else np.arange(n)
    cells = {key: value[order] for key, value in cells.items()}
    groups, target, filenames = groups[order], target[order], filenames[order]

    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    if return_masks:
        cell_mask = np.empty((n, image_size, image_size), dtype=bool)
        nucleus_mask = np.empty((n, image_size, image_size), dtype=bool)
    # ~24 float32 work arrays of one image each are alive at the peak
    chunk = max(1, _CHUNK_BYTES // (24 * 4 * image_size * image_size))
    for start in range(0, n, chunk):
        idx = np.arange(start, min(start + chunk, n))
        chunk_rng = np.random.default_rng([*seed, start])
        rendered = render(
            cells, subjects, idx, image_size, noise, chunk_rng, return_masks
        )
        if return_masks:
            images[idx], cell_mask[idx], nucleus_mask[idx] = rendered
        else:
            images[idx] = rendered

    if return_X_y:
        return images, target, groups

    import pandas as pd

    n_cells = np.bincount(cells["subject_index"], minlength=n_subjects)
    table = pd.DataFrame(
        {
            "subject": subjects["subject"],
            "label": subjects["label"],
            "n_cells": n_cells,
            "hue": subjects["hue"],
            "density": subjects["density"],
            "brightness": subjects["illumination"].mean(axis=1),
            "texture_scale": subjects["texture_scale"],
            "blur": subjects["blur"] * image_size / REF_SIZE,
            "size_scale": subjects["size_scale"],
            "blast_offset": subjects["blast_offset"],
        }
    )
    bunch = Bunch(
        images=images,
        target=target,
        groups=groups,
        subjects=table,
        blast_score=cells["blast_score"],
        filenames=filenames,
        geometry={
            "source_size": int(REF_SIZE),
            "crop_size": int(REF_SIZE),
            "image_size": image_size,
        },
        DESCR=_DESCR,
    )
    if return_masks:
        bunch.cell_mask = cell_mask
        bunch.nucleus_mask = nucleus_mask
    return bunch


def _simple_cell_features(images):
    """Hand-made features of segmented cells, for baselines and diagnostics.

    Per RGB channel the mean and standard deviation over the cell pixels
    (non-black), the cell area, the dark-pixel fraction, and three texture
    statistics of the grey image inside the cell: mean absolute Laplacian,
    mean gradient magnitude (both relative to the mean grey level) and the
    share of high-frequency energy.

    Returns
    -------
    features : ndarray of shape (n_images, 11), float64
    """
    X = np.asarray(images, dtype=np.float32)
    mask = X.max(axis=-1) > 0
    # interior pixels: all 4 neighbours are cell pixels too (no edge effects)
    inner = mask.copy()
    inner[:, 1:-1, 1:-1] &= (
        mask[:, :-2, 1:-1] & mask[:, 2:, 1:-1] & mask[:, 1:-1, :-2] & mask[:, 1:-1, 2:]
    )
    inner[:, [0, -1], :] = False
    inner[:, :, [0, -1]] = False
    area = mask.sum(axis=(1, 2)).clip(1)
    n_inner = inner.sum(axis=(1, 2)).clip(1)

    feats = []
    for ch in range(3):
        v = X[..., ch] * mask
        mean = v.sum(axis=(1, 2)) / area
        var = (v**2).sum(axis=(1, 2)) / area - mean**2
        feats += [mean, np.sqrt(np.maximum(var, 0))]
    grey = X.mean(axis=-1)
    grey_mean = (grey * mask).sum(axis=(1, 2)) / area
    feats.append(area / mask[0].size)
    dark = (grey < 0.6 * grey_mean[:, None, None]) & mask
    feats.append(dark.sum(axis=(1, 2)) / area)

    lap = np.zeros_like(grey)
    lap[:, 1:-1, 1:-1] = (
        grey[:, :-2, 1:-1]
        + grey[:, 2:, 1:-1]
        + grey[:, 1:-1, :-2]
        + grey[:, 1:-1, 2:]
        - 4 * grey[:, 1:-1, 1:-1]
    )
    gy, gx = np.gradient(grey, axis=(1, 2))
    grad = np.hypot(gx, gy)
    ref = grey_mean.clip(1)
    feats.append((np.abs(lap) * inner).sum(axis=(1, 2)) / n_inner / ref)
    feats.append((grad * inner).sum(axis=(1, 2)) / n_inner / ref)
    lap_energy = (lap**2 * inner).sum(axis=(1, 2))
    grad_energy = ((gx**2 + gy**2) * inner).sum(axis=(1, 2)).clip(1e-6)
    feats.append(lap_energy / grad_energy)
    return np.stack(feats, axis=1).astype(np.float64)
