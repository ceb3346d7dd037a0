"""Metrics of the paper and of the C-NMC challenge, cell and subject level.

Cell level: accuracy, F1 of the normal class ("hem"), F1 of the cancer class
("all") and the support-weighted F1 of the C-NMC challenge, as functions, as
scorers in :data:`CNMC_SCORING` and all at once with :func:`cnmc_metrics`.
Labels may be the strings ``"all"``/``"hem"`` or the C-NMC integer coding
``1``/``0``.

Subject level: :func:`subject_predictions` diagnoses each subject from its
cells, :func:`misclassified_subjects` lists the subjects the model fails on.

Threshold-free: :func:`cell_roc_auc_score` and :func:`subject_roc_auc_score`
("all" positive; a subject's score is its mean P("all")), as the ``"roc_auc"``
scorer of :data:`CNMC_SCORING_WITH_AUC` and from
:func:`make_subject_roc_auc_scorer` (needs metadata routing for ``groups``).
"""

from ._roc import (
    CNMC_SCORING_WITH_AUC,
    cell_roc_auc_score,
    make_subject_roc_auc_scorer,
    subject_roc_auc_score,
)
from ._scorers import (
    CANCER_LABEL,
    CNMC_SCORING,
    NORMAL_LABEL,
    as_cnmc_labels,
    cnmc_accuracy_score,
    cnmc_metrics,
    f1_cancer_score,
    f1_normal_score,
    f1_weighted_score,
    proba_of_cancer,
)
from ._subjects import (
    misclassified_subjects,
    subject_accuracy,
    subject_level_report,
    subject_predictions,
)

__all__ = [
    "CANCER_LABEL",
    "CNMC_SCORING",
    "CNMC_SCORING_WITH_AUC",
    "NORMAL_LABEL",
    "as_cnmc_labels",
    "cell_roc_auc_score",
    "cnmc_accuracy_score",
    "cnmc_metrics",
    "f1_cancer_score",
    "f1_normal_score",
    "f1_weighted_score",
    "make_subject_roc_auc_scorer",
    "misclassified_subjects",
    "proba_of_cancer",
    "subject_accuracy",
    "subject_level_report",
    "subject_predictions",
    "subject_roc_auc_score",
]
