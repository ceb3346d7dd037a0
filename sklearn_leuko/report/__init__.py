"""Reports: the paper's Table 2 and figures.

:func:`table2` arranges ``cross_validate`` results (scored with
:data:`sklearn_leuko.metrics.CNMC_SCORING`) and test-set metrics like Table 2
of the LeukoNet paper; :func:`format_table2` renders it as text or Markdown and
:func:`save_table2` writes CSV. The ``plot_*`` functions write figures
(confusion matrix, per-fold metrics, training history, one cell in RGB, optical
density and log-DCT space, ROC curves, a reliability diagram, Grad-CAM
overlays) to image files without opening a window.
:func:`protocol_tables`, :func:`format_protocol_report` and
:func:`write_protocol_outputs` turn the raw results of
:func:`sklearn_leuko.evaluation.run_protocol` into tables, text and files;
:func:`to_html` writes all of it, with a gallery of misclassified cells and
their Grad-CAM heatmaps, into one self-contained HTML file.
"""

from ._cell_plots import plot_cell_spaces, plot_gradcam_overlay
from ._html import to_html
from ._plots import plot_confusion_matrix, plot_fold_metrics, plot_history
from ._protocol_outputs import (
    auc_table,
    format_protocol_report,
    protocol_tables,
    summary_table,
    write_protocol_outputs,
)
from ._score_plots import plot_calibration, plot_roc_curves
from ._table import (
    TABLE2_METRICS,
    format_table2,
    load_table2,
    save_table2,
    subject_table,
    table2,
)

__all__ = [
    "auc_table",
    "TABLE2_METRICS",
    "format_protocol_report",
    "format_table2",
    "load_table2",
    "plot_calibration",
    "plot_cell_spaces",
    "plot_confusion_matrix",
    "plot_fold_metrics",
    "plot_gradcam_overlay",
    "plot_history",
    "protocol_tables",
    "plot_roc_curves",
    "save_table2",
    "subject_table",
    "summary_table",
    "table2",
    "to_html",
    "write_protocol_outputs",
]
