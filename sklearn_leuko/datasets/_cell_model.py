"""Parameters of the synthetic cells, calibrated on real C-NMC 2019 cells.

:func:`subject_table` and :func:`cell_table` draw every per-subject and
per-cell parameter of :func:`~sklearn_leuko.datasets.make_cells` as cheap
scalars, before any pixel exists; they never see ``image_size`` (lengths are
in pixels of the 450 px C-NMC canvas), so the same ``random_state`` gives the
same cells at every image size. The numbers are fitted to the 36 cells of
the 14 calibration subjects of ``../shared/data/real/cnmc2019`` by
``benchmarks/data/real_cells.py`` (statistics of
:func:`~sklearn_leuko.datasets._realism.cell_statistics`); the evaluation
subjects were used only to measure transfer.
"""

import numpy as np

from ._render import N_HARMONICS, REF_SIZE, TEXTURE_SIGMAS

__all__ = ["CLASS_SHIFT", "N_SPOTS", "cell_table", "subject_table"]

# Mean of the per-cell "blast score" z is +/- CLASS_SHIFT * class_separation.
# With z alone and class_separation=1 the Bayes accuracy is Phi(1.25) ~ 0.89,
# the accuracy the LeukoNet paper reports on unseen subjects.
CLASS_SHIFT = 1.25
N_SPOTS = 4  # pale-spot slots per cell

# Cell area / canvas: log-normal, geometric mean _AREA (between the real
# calibration means 0.195 "all" and 0.167 "hem"), slope _AREA_Z per unit of z
# (the log ratio of the class means, 0.155, over the 2.5 apart class means of
# z), residual log sd _AREA_SD (real within-class log sd about 0.25, less the
# part of z and of the subject).
_AREA = 0.178
_AREA_Z = 0.062
_AREA_SD = 0.21
# Outline irregularity (real radial CV 0.114 "all", 0.069 "hem"; solidity
# 0.951 and 0.973): harmonic amplitudes _IRREGULAR * exp(_IRREGULAR_Z z).
_IRREGULAR = 0.048
_IRREGULAR_Z = 0.25
# Chromatin texture amplitudes (log density) at TEXTURE_SIGMAS, fitted to the
# real band-passed grey-OD contrast (fine 0.0088 "all" / 0.0112 "hem", mid
# 0.021 / 0.023, coarse 0.028 / 0.029) and the within-cell OD sd.
_TEXTURE = np.array([0.027, 0.034, 0.040, 0.085])
# normal cells: more contrasted fine chromatin (real fine band: AUC 0.15)
_TEXTURE_Z = np.array([-0.10, -0.03, 0.0, 0.0])


def subject_table(n_subjects, cancer_fraction, variability, rng):
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
        # real between-subject sd of the mean OD is ~8% of it, within 6%
        "density": np.exp(rng.normal(0.0, 0.06 * v, size=n_subjects)),
        # hue shift along the C-NMC hue direction (real subject hue sd ~0.03)
        "hue": rng.normal(0.0, 0.025 * v, size=n_subjects),
        # log of the per-channel illumination (white balance) and brightness
        "illumination": rng.normal(0.0, 0.02 * v, size=(n_subjects, 3))
        + rng.normal(0.0, 0.03 * v, size=(n_subjects, 1)),
        "texture_scale": np.exp(rng.normal(0.0, 0.10 * v, size=n_subjects)),
        # focus blur, Gaussian sigma in pixels of the 450 px canvas
        "blur": 1.2 + np.abs(rng.normal(0.0, 0.8 * v, size=n_subjects)),
        "size_scale": np.exp(rng.normal(0.0, 0.05 * v, size=n_subjects)),
        "blast_offset": rng.normal(0.0, 0.3 * v, size=n_subjects),
    }


def cell_table(subjects, cells_per_subject, separation, rng):
    """Draw the per-cell parameters (cheap scalars, all cells at once)."""
    n_subjects = len(subjects["subject"])
    n = n_subjects * cells_per_subject
    s = np.repeat(np.arange(n_subjects), cells_per_subject)
    sign = np.where(subjects["label"][s] == "all", 1.0, -1.0)
    z = sign * CLASS_SHIFT * separation + subjects["blast_offset"][s]
    z = z + rng.standard_normal(n)

    area = _AREA * np.exp(_AREA_Z * z + _AREA_SD * rng.standard_normal(n))
    radius = REF_SIZE * np.sqrt(area / np.pi) * subjects["size_scale"][s]
    # outline: ellipse (k=2) plus irregularities decaying with k (k=3..8)
    k = np.arange(2, N_HARMONICS + 2)
    irregular = _IRREGULAR * np.exp(_IRREGULAR_Z * z + 0.35 * rng.standard_normal(n))
    cell_coef = rng.normal(0.0, 1.0, size=(n, N_HARMONICS, 2))
    cell_coef *= irregular[:, None, None] * (k[None, :, None] / 2.0) ** -0.7
    ellipticity = rng.uniform(0.0, 0.13, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    cell_coef[:, 0, 0] += ellipticity * np.cos(2 * angle)
    cell_coef[:, 0, 1] += ellipticity * np.sin(2 * angle)
    extent = 1.0 + np.abs(cell_coef).sum(axis=(1, 2))
    radius = np.minimum(radius, 0.47 * REF_SIZE / extent)

    # mostly nucleus: a thin cytoplasm rim of 3-10 px (real: a lighter rim,
    # grey OD 0.77 of the interior 2-4 px inside the edge, 0.97 at 12 px)
    rim_width = rng.uniform(2.0, 8.0, n)
    nuc_radius = np.maximum(radius - rim_width * extent, 0.5 * radius)
    # the nucleus follows the cell's outline at a constant rim width
    nuc_coef = cell_coef * (radius / nuc_radius)[:, None, None]
    nuc_coef = nuc_coef + rng.normal(0.0, 0.01, size=(n, N_HARMONICS, 2))
    shift = rim_width * rng.uniform(0.0, 0.5, n)
    shift_angle = rng.uniform(0, 2 * np.pi, n)

    texture = _TEXTURE[None, :] * np.exp(
        _TEXTURE_Z[None, :] * z[:, None]
        + 0.15 * rng.standard_normal((n, len(TEXTURE_SIGMAS)))
    )
    # pale spots: lighter chromatin patches, 0-4 per cell
    n_spots = rng.poisson(1.2, n).clip(0, N_SPOTS)
    spot_r = np.sqrt(rng.uniform(0, 0.6, (n, N_SPOTS))) * nuc_radius[:, None]
    spot_a = rng.uniform(0, 2 * np.pi, (n, N_SPOTS))
    spot_size = rng.uniform(4.0, 9.0, (n, N_SPOTS))
    spot_depth = rng.uniform(0.10, 0.30, (n, N_SPOTS))
    spot_depth *= np.arange(N_SPOTS)[None, :] < n_spots[:, None]

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
        "texture": texture,
        "spots": np.stack(
            [
                spot_r * np.cos(spot_a),
                spot_r * np.sin(spot_a),
                spot_size,
                spot_depth,
            ],
            axis=-1,
        ),
        # real between-cell sd of the mean OD within a subject: about 6%
        "density": 1.03 * np.exp(rng.normal(0.0, 0.06, n)),
        # "all" cells slightly redder (real hue AUC 0.34 for "hem" bluer)
        "hue": 0.012 * z + rng.normal(0.0, 0.02, n),
        "hue_texture": np.abs(rng.normal(0.0, 0.02, n)),
        "cyto_density": rng.uniform(0.80, 0.95, n),
        "cyto_hue": rng.normal(-0.03, 0.01, n),
    }
