"""Threshold-free figures: ROC curves per stage and a reliability diagram."""

import numbers
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from ..metrics import as_cnmc_labels
from ..utils._escape import escape_mathtext
from ._plots import _save

__all__ = ["plot_calibration", "plot_roc_curves"]


def _labelled_scores(curves, name="curves"):
    """Validate ``{label: (y_true, p_all)}``; yield (label, is_all, p_all)."""
    if not isinstance(curves, Mapping):
        raise TypeError(
            f"{name} must be a dict {{label: (y_true, p_all)}}, e.g. "
            f"{{'Stage-1': (y_test, proba[:, 0])}}, got {type(curves).__name__}."
        )
    if not curves:
        raise ValueError(f"{name} is empty: pass at least one (y_true, p_all) pair.")
    out = []
    for label, pair in curves.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(
                f"{name}[{label!r}] must be a pair (y_true, p_all), got "
                f"{type(pair).__name__}."
            )
        y_true = as_cnmc_labels(pair[0], name=f"{name}[{label!r}] y_true")
        p_all = np.asarray(pair[1], dtype=np.float64)
        if p_all.ndim != 1 or p_all.shape[0] != y_true.shape[0]:
            raise ValueError(
                f"{name}[{label!r}] must pair {y_true.shape[0]} labels with as many "
                f"P('all') values (1-D), got p_all of shape {p_all.shape}."
            )
        if not np.isfinite(p_all).all() or p_all.min() < 0 or p_all.max() > 1:
            raise ValueError(
                f"{name}[{label!r}] p_all must hold probabilities in [0, 1]; pass "
                "predict_proba's 'all' column, not logits."
            )
        is_all = y_true == "all"
        if is_all.all() or not is_all.any():
            raise ValueError(
                f"{name}[{label!r}] holds one class only; ROC and calibration "
                "curves need cells of both 'all' and 'hem'."
            )
        out.append((str(label), is_all, p_all))
    return out


def plot_roc_curves(curves, path, *, title=None):
    """ROC curves of several models (e.g. the stages) in one figure, "all" positive.

    Parameters
    ----------
    curves : dict of {str: (array-like, array-like)}
        ``{label: (y_true, p_all)}``: true labels (``"all"``/``"hem"`` or
        ``1``/``0``) and P("all") per cell (or per subject, for
        subject-level curves). One curve per entry, in order; the legend
        shows each area under the curve.
    path : str or path-like
        Output image file; parent folders are created.
    title : str, default=None
        Figure title; ``None`` writes "ROC curves ('all' positive)".

    Returns
    -------
    path : pathlib.Path
        The written file.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn_leuko.report import plot_roc_curves
    >>> y = ["all", "hem", "all", "hem"]
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = plot_roc_curves({"A": (y, [0.9, 0.2, 0.6, 0.4])},
    ...                         os.path.join(d, "roc.png"))
    ...     p.stat().st_size > 0
    True
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    rows = _labelled_scores(curves)
    fig = Figure(figsize=(5.2, 5.0))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color="0.5", linewidth=1, label="chance")
    for label, is_all, p_all in rows:
        fpr, tpr, _ = roc_curve(is_all, p_all)
        auc = roc_auc_score(is_all, p_all)
        ax.plot(
            fpr, tpr, linewidth=1.6, label=f"{escape_mathtext(label)} (AUC {auc:.3f})"
        )
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (hem called all)")
    ax.set_ylabel("True positive rate (all called all)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(
        title if title is not None else "ROC curves ('all' positive)",
        parse_math=False,
    )
    fig.tight_layout()
    return _save(fig, path)


def plot_calibration(curves, path, *, n_bins=10, title=None):
    """Reliability diagram: observed fraction of "all" against mean P("all").

    P("all") is cut into ``n_bins`` equal-width bins on [0, 1]; each
    non-empty bin is a point at (mean predicted P("all"), fraction of cells
    that are "all"). A calibrated model lies on the diagonal. The lower
    panel shows how many cells fall in each bin; the legend gives each
    model's Brier score (mean squared error of P("all"), lower is better).

    Parameters
    ----------
    curves : dict of {str: (array-like, array-like)}
        ``{label: (y_true, p_all)}`` as in :func:`plot_roc_curves`.
    path : str or path-like
        Output image file; parent folders are created.
    n_bins : int, default=10
        Number of equal-width bins of P("all").
    title : str, default=None
        Figure title; ``None`` writes "Calibration (reliability diagram)".

    Returns
    -------
    path : pathlib.Path
        The written file.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn_leuko.report import plot_calibration
    >>> y = ["all", "hem", "all", "hem"]
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = plot_calibration({"A": (y, [0.9, 0.2, 0.6, 0.4])},
    ...                          os.path.join(d, "cal.png"), n_bins=5)
    ...     p.stat().st_size > 0
    True
    """
    if (
        isinstance(n_bins, bool)
        or not isinstance(n_bins, numbers.Integral)
        or n_bins < 2
    ):
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}.")
    rows = _labelled_scores(curves)
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)

    fig = Figure(figsize=(5.2, 6.4))
    ax, ax_hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(
        [0, 1],
        [0, 1],
        linestyle=":",
        color="0.5",
        linewidth=1,
        label="perfectly calibrated",
    )
    for label, is_all, p_all in rows:
        # Bin i holds edges[i] <= p < edges[i + 1]; p = 1 joins the last bin.
        which = np.clip(np.searchsorted(edges, p_all, side="right") - 1, 0, n_bins - 1)
        counts = np.bincount(which, minlength=n_bins)
        filled = counts > 0
        mean_p = np.bincount(which, weights=p_all, minlength=n_bins)[filled]
        frac = np.bincount(which, weights=is_all, minlength=n_bins)[filled]
        mean_p, frac = mean_p / counts[filled], frac / counts[filled]
        brier = float(np.mean((p_all - is_all) ** 2))
        (line,) = ax.plot(
            mean_p,
            frac,
            marker="o",
            markersize=4,
            linewidth=1.4,
            label=f"{escape_mathtext(label)} (Brier {brier:.3f})",
        )
        ax_hist.stairs(counts, edges, color=line.get_color(), linewidth=1.4)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_ylabel("Fraction of cells that are 'all'")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(
        title if title is not None else "Calibration (reliability diagram)",
        parse_math=False,
    )
    ax_hist.set_xlabel("Predicted P('all') (points: mean of the bin)")
    ax_hist.set_ylabel("cells")
    ax_hist.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
