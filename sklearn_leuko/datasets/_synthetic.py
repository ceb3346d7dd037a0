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

from ._render import N_NUCLEOLI, REF_SIZE, render

__all__ = ["make_cells"]


# Mean of the per-cell "blast score" z is +/- _CLASS_SHIFT * class_separation.
# With z alone and class_separation=1 the Bayes accuracy is Phi(1.25) ~ 0.89,
# the accuracy the LeukoNet paper reports on unseen subjects.
_CLASS_SHIFT = 1.25


# Bytes of float32 work arrays per chunk of images; bounds memory at 350x350.
_CHUNK_BYTES = 128 * 2**20

_DESCR = """\
Synthetic C-NMC-like single-cell images
---------------------------------------

Each image holds one segmented white blood cell, centred on a black (0, 0, 0)
canvas, stained like Jenner-Giemsa (purple nucleus, pale blue-lilac
cytoplasm), in the layout of the C-NMC 2019 challenge data. Labels: "all"
(leukemic B-ALL blast, the positive class) and "hem" (normal B cell). Every
cell of a subject has the subject's label; subject IDs follow C-NMC ("7" for
an ALL patient, "H3" for a healthy subject).

Generative model (see make_cells for the parameters):

- each cell has a latent blast score z ~ N(+/- 1.25 * class_separation +
  subject offset, 1) (+ for "all"); z drives the nucleus-to-cytoplasm ratio,
  the chromatin texture (fine for blasts, coarse clumps for normal cells),
  the chromatin density (darker when condensed) and the number of visible
  nucleoli;
- each subject has its own stain vectors, illumination, stain intensity,
  focus blur, cell size and z offset, scaled by subject_variability: cells
  of a subject share a colour signature that a classifier can memorise,
  which is why cell-level cross-validation overestimates accuracy;
- the image is rendered with the Beer-Lambert law, I = I0 exp(-OD), blurred,
  masked to the cell and perturbed by Gaussian camera noise.

Data set characteristics:

    :Number of subjects: n_subjects (about cancer_fraction of them "all")
    :Number of images: n_subjects * cells_per_subject
    :Image: uint8 RGB, image_size x image_size
    :Classes: "all", "hem"
"""


def _check_fraction(value, name):
    check_scalar(value, name, numbers.Real, min_val=0.0, max_val=1.0)
    return float(value)


def _subject_table(n_subjects, cancer_fraction, variability, rng):
    """Draw the subjects: IDs, labels and their nuisance parameters."""
    n_all = int(round(cancer_fraction * n_subjects))
    if 0.0 < cancer_fraction < 1.0 and n_subjects >= 2:
        n_all = min(max(n_all, 1), n_subjects - 1)
    n_hem = n_subjects - n_all
    ids = [str(i + 1) for i in range(n_all)] + [f"H{i + 1}" for i in range(n_hem)]
    labels = np.array(["all"] * n_all + ["hem"] * n_hem)
    v = variability
    return {
        "subject": np.array(ids),
        "label": labels,
        # log-multiplicative per-channel shift of the two stain vectors (hue)
        "stain_shift": rng.normal(0.0, 0.22 * v, size=(n_subjects, 2, 3)),
        # log of the per-channel illumination (white balance) and brightness
        "illumination": rng.normal(0.0, 0.04 * v, size=(n_subjects, 3))
        + rng.normal(0.0, 0.06 * v, size=(n_subjects, 1)),
        "stain_intensity": np.exp(rng.normal(0.0, 0.15 * v, size=n_subjects)),
        # focus blur, Gaussian sigma in pixels of the 350 px reference canvas
        "blur": 0.4 + np.abs(rng.normal(0.0, 1.5 * v, size=n_subjects)),
        "size_scale": np.exp(rng.normal(0.0, 0.05 * v, size=n_subjects)),
        "blast_offset": rng.normal(0.0, 0.3 * v, size=n_subjects),
    }


def _cell_table(subjects, cells_per_subject, image_size, separation, rng):
    """Draw the per-cell parameters (cheap scalars, all cells at once)."""
    n_subjects = len(subjects["subject"])
    n = n_subjects * cells_per_subject
    s = np.repeat(np.arange(n_subjects), cells_per_subject)
    sign = np.where(subjects["label"][s] == "all", 1.0, -1.0)
    z = sign * _CLASS_SHIFT * separation + subjects["blast_offset"][s]
    z = z + rng.standard_normal(n)
    p = 1.0 / (1.0 + np.exp(-z))  # "blastness" in (0, 1)

    half = image_size / 2.0
    radius = half * rng.uniform(0.70, 0.85, n) * subjects["size_scale"][s]
    # cell outline: ellipse (k=2) plus small irregularities (k=3..5)
    ellipticity = rng.uniform(0.0, 0.10, n)
    cell_coef = rng.normal(0.0, 0.015, size=(n, 4, 2))
    cell_coef[:, 0] = 0.0
    angle = rng.uniform(0, 2 * np.pi, n)
    cell_coef[:, 0, 0] = ellipticity * np.cos(2 * angle)
    cell_coef[:, 0, 1] = ellipticity * np.sin(2 * angle)
    extent = 1.0 + np.abs(cell_coef).sum(axis=(1, 2))
    radius = np.minimum(radius, 0.47 * image_size / extent)

    nc_ratio = np.clip(0.50 + 0.22 * p + rng.normal(0.0, 0.04, n), 0.3, 0.9)
    nuc_radius = radius * np.sqrt(nc_ratio)
    nuc_ellipticity = rng.uniform(0.0, 0.12, n)
    nuc_angle = rng.uniform(0, 2 * np.pi, n)
    nuc_coef = rng.normal(0.0, 0.02, size=(n, 4, 2))
    nuc_coef[:, 0, 0] = nuc_ellipticity * np.cos(2 * nuc_angle)
    nuc_coef[:, 0, 1] = nuc_ellipticity * np.sin(2 * nuc_angle)
    shift = (radius - nuc_radius) * rng.uniform(0.0, 0.6, n)
    shift_angle = rng.uniform(0, 2 * np.pi, n)

    n_nucleoli = np.minimum(rng.poisson(3.0 * p**2), N_NUCLEOLI)
    nucleolus_r = np.sqrt(rng.uniform(0, 0.5, (n, N_NUCLEOLI))) * nuc_radius[:, None]
    nucleolus_a = rng.uniform(0, 2 * np.pi, (n, N_NUCLEOLI))
    nucleolus_size = nuc_radius[:, None] * rng.uniform(0.07, 0.12, (n, N_NUCLEOLI))

    return {
        "subject_index": s,
        "blast_score": z,
        "radius": radius,
        "cell_coef": cell_coef,
        "nuc_radius": nuc_radius,
        "nuc_coef": nuc_coef,
        "nuc_center": np.stack(
            [shift * np.cos(shift_angle), shift * np.sin(shift_angle)], axis=1
        ),
        "nucleoli": np.stack(
            [
                nucleolus_r * np.cos(nucleolus_a),
                nucleolus_r * np.sin(nucleolus_a),
                nucleolus_size,
                np.arange(N_NUCLEOLI)[None, :] < n_nucleoli[:, None],
            ],
            axis=-1,
        ),
        "fine_weight": p,
        # condensed chromatin: darker and more contrasted in normal cells
        "density": 1.0 + 0.35 * (1.0 - p) + rng.normal(0.0, 0.08, n),
        "contrast": 0.18 + 0.14 * (1.0 - p),
        "cyto_density": rng.normal(0.6, 0.08, n).clip(0.3, None),
        "stain_jitter": rng.normal(0.0, 0.02, size=(n, 2, 3)),
    }


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
    noise=3.0,
    shuffle=True,
    return_X_y=False,
    return_masks=False,
    random_state=None,
):
    """Generate synthetic C-NMC-like images of single white blood cells.

    Each image shows one cell centred on a black (0, 0, 0) canvas, stained
    like Jenner-Giemsa, as in the C-NMC 2019 challenge data (Mourya et al.,
    arXiv 1810.07961, Section 3). Leukemic blasts (``"all"``) and normal B
    cells (``"hem"``) differ by a learnable but noisy morphological signal,
    and every subject has its own staining and imaging conditions, so that a
    classifier validated on held-out cells of known subjects looks better
    than on held-out subjects.

    **Generative model.** Each cell has a latent blast score
    ``z ~ N(m, 1)``, ``m = +/-1.25 * class_separation + b_subject`` (``+``
    for ``"all"``), and ``p = sigmoid(z)``. From ``p``:

    - nucleus-to-cytoplasm area ratio ``0.50 + 0.22 p`` (plus noise): blasts
      have scant cytoplasm;
    - chromatin texture, a mixture of fine-grained (grain 1.6 px at 350 px)
      and coarse (clumps 7 px) smooth noise with weights ``p`` and ``1 - p``:
      blasts have fine, dispersed chromatin (more high-frequency content),
      normal cells coarse, condensed chromatin;
    - chromatin density ``1 + 0.35 (1 - p)``, modulated log-normally by the
      texture with contrast ``0.18 + 0.14 (1 - p)``: condensed chromatin is
      darker and clumpier;
    - number of visible nucleoli ``min(Poisson(3 p^2), 4)``: pale round
      spots, common in blasts, rare in normal cells.

    With ``class_separation=1`` and the blast score alone, the best possible
    cell-level accuracy is about 0.89, the level LeukoNet reaches on unseen
    subjects. Each subject ``s`` draws, scaled by ``subject_variability``:
    a per-channel log-multiplicative shift of both stain vectors (sd 0.22,
    changes hue), illumination and brightness (sd 0.04 and 0.06), stain
    intensity (log sd 0.15), focus blur (Gaussian sigma ``0.4 + |N(0,
    1.5)|`` px at 350 px), a cell size scale (log sd 0.05) and the blast
    score offset ``b_s ~ N(0, 0.3)``. The colour signature of a subject is
    easy to memorise, so cell-level ``KFold`` scores clearly higher than
    subject-level ``GroupKFold``. Cell outlines are ellipses with small
    harmonic irregularities, about 70-85% of the canvas wide (real C-NMC
    cells are 250-300 px on a 350 px canvas); the nucleus sits off-centre.
    The stain concentrations are blurred, turned into RGB with the
    Beer-Lambert law ``I = I0 exp(-OD)``, masked to the cell and perturbed by
    Gaussian camera noise.

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
        Basic Network's last feature map is 2x2, not 1x1). Lengths of the
        model scale with it; 350 matches the LeukoNet input.
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
    noise : float, default=3.0
        Standard deviation of the Gaussian camera noise in grey levels
        (0-255).
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
            ``stain_shift`` (norm of the log stain-vector shift),
            ``brightness`` (mean log illumination), ``stain_intensity``,
            ``blur`` (sigma in pixels of this image size), ``size_scale``,
            ``blast_offset``.
        blast_score : ndarray of shape (n_cells,)
            The latent blast score ``z`` of every cell (for diagnostics).
        filenames : ndarray of shape (n_cells,), str
            C-NMC style names ``UID_<subject>_<image>_<cell>_<label>.bmp``.
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
    subjects = _subject_table(n_subjects, cancer_fraction, subject_variability, rng)
    cells = _cell_table(
        subjects, cells_per_subject, image_size, float(class_separation), rng
    )
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
            "stain_shift": np.linalg.norm(
                subjects["stain_shift"].reshape(n_subjects, -1), axis=1
            ),
            "brightness": subjects["illumination"].mean(axis=1),
            "stain_intensity": subjects["stain_intensity"],
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
