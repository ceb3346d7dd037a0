"""Reports: the paper's Table 2 and figures.

:func:`table2` arranges ``cross_validate`` results (scored with
:data:`sklearn_leuko.metrics.CNMC_SCORING`) and test-set metrics like Table 2
of the LeukoNet paper; :func:`format_table2` renders it as text or Markdown and
:func:`save_table2` writes CSV. The ``plot_*`` functions write figures
(confusion matrix, per-fold metrics, training history, one cell in RGB, optical
density and log-DCT space, ROC curves, a reliability diagram, Grad-CAM
overlays) to image files without opening a window.
"""

from ._plots import (
    plot_calibration,
    plot_cell_spaces,
    plot_confusion_matrix,
    plot_fold_metrics,
    plot_gradcam_overlay,
    plot_history,
    plot_roc_curves,
)
from ._table import (
    TABLE2_METRICS,
    format_table2,
    load_table2,
    save_table2,
    subject_table,
    table2,
)

__all__ = [
    "TABLE2_METRICS",
    "format_table2",
    "load_table2",
    "plot_calibration",
    "plot_cell_spaces",
    "plot_confusion_matrix",
    "plot_fold_metrics",
    "plot_gradcam_overlay",
    "plot_history",
    "plot_roc_curves",
    "save_table2",
    "subject_table",
    "table2",
]
