"""Figures written straight to files.

Every function builds a :class:`matplotlib.figure.Figure` directly, without
``pyplot``: no window opens, the user's backend is left alone, and the figure
is not registered in pyplot's global list, so it is freed once written.
"""

import numbers
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import confusion_matrix

from ..metrics import as_cnmc_labels
from ..utils import check_rgb_images

__all__ = [
    "plot_calibration",
    "plot_cell_spaces",
    "plot_confusion_matrix",
    "plot_fold_metrics",
    "plot_gradcam_overlay",
    "plot_history",
    "plot_roc_curves",
]

_LABEL_NAMES = {"hem": "hem (normal)", "all": "all (cancer)"}
_STAIN_NAMES = {
    "giemsa": ("methylene blue", "eosin", "residual"),
    "hed": ("haematoxylin", "eosin", "DAB"),
    "identity": ("red", "green", "blue"),
}


def _save(fig, path, dpi=120):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    fig.clear()
    return path


def plot_confusion_matrix(y_true, y_pred, path, labels=("hem", "all"), title=None):
    """Confusion matrix of cell predictions with counts and row percentages.

    Cell colours show the row-normalised fraction (the recall of each true
    class), so the minority "hem" class reads as clearly as "all".

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_cells,)
        Labels ``"all"``/``"hem"`` or C-NMC integers ``1``/``0``.
    path : str or path-like
        Output image file (format from the suffix, e.g. ``.png``); parent
        folders are created.
    labels : sequence of str, default=("hem", "all")
        Order of the classes on both axes.
    title : str, default=None
        Figure title; ``None`` shows the accuracy and the number of cells.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn_leuko.report import plot_confusion_matrix
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = plot_confusion_matrix(["all", "hem"], ["all", "all"], os.path.join(d, "cm.png"))
    ...     p.stat().st_size > 0
    True
    """
    y_true = as_cnmc_labels(y_true, name="y_true")
    y_pred = as_cnmc_labels(y_pred, name="y_pred")
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(
            f"y_true has {y_true.shape[0]} labels but y_pred has {y_pred.shape[0]}; "
            "pass one prediction per cell."
        )
    labels = as_cnmc_labels(list(labels), name="labels").tolist()
    if sorted(labels) != ["all", "hem"]:
        raise ValueError(f"labels must hold 'all' and 'hem' once each, got {labels}.")
    counts = confusion_matrix(y_true, y_pred, labels=labels)
    totals = counts.sum(axis=1, keepdims=True)
    fraction = np.divide(
        counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0
    )

    fig = Figure(figsize=(4.8, 4.0))
    ax = fig.add_subplot()
    image = ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("fraction of true class")
    for i in range(2):
        for j in range(2):
            ax.text(
                j,
                i,
                f"{counts[i, j]}\n({100 * fraction[i, j]:.1f}%)",
                ha="center",
                va="center",
                fontsize=12,
                color="white" if fraction[i, j] > 0.6 else "black",
            )
    names = [_LABEL_NAMES[label] for label in labels]
    ax.set_xticks([0, 1], names)
    ax.set_yticks([0, 1], names, rotation=90, va="center")
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    if title is None:
        n = int(counts.sum())
        accuracy = np.trace(counts) / n if n else float("nan")
        title = f"Confusion matrix (accuracy {100 * accuracy:.2f}%, n = {n})"
    ax.set_title(title)
    return _save(fig, path)


def plot_fold_metrics(table2_df, path, *, title=None):
    """Grouped bars of each model's metrics per validation fold and test set.

    One panel per metric (e.g. Acc, F1-N, F1-C); in each, one group of bars
    per model with one bar per split ("Val0".., "Mean", "Test").

    Parameters
    ----------
    table2_df : pandas.DataFrame
        Output of :func:`sklearn_leuko.report.table2` (or
        :func:`~sklearn_leuko.report.load_table2`): values in percent,
        columns a ``(split, metric)`` MultiIndex.
    path : str or path-like
        Output image file; parent folders are created.
    title : str, default=None
        Figure title.

    Returns
    -------
    path : pathlib.Path
        The written file.
    """
    df = table2_df
    if not isinstance(df, pd.DataFrame) or not isinstance(df.columns, pd.MultiIndex):
        raise TypeError(
            "table2_df must be the DataFrame returned by table2 (columns a "
            "(split, metric) MultiIndex); read CSV files with load_table2."
        )
    if df.empty:
        raise ValueError("table2_df is empty: no model to plot.")
    splits = list(dict.fromkeys(df.columns.get_level_values(0)))
    metrics = list(dict.fromkeys(df.columns.get_level_values(1)))
    models = [str(m) for m in df.index]
    n_val = sum(s.startswith("Val") for s in splits)
    blues = colormaps["Blues"]
    colours, k = {}, 0
    for split in splits:
        if split.startswith("Val"):
            colours[split] = blues(0.35 + 0.5 * k / max(n_val - 1, 1))
            k += 1
        else:
            colours[split] = "0.55" if split == "Mean" else "#d95f02"

    values = df.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    low = max(0.0, 5.0 * np.floor(finite.min() / 5.0) - 5.0) if finite.size else 0.0

    width = 0.8 / len(splits)
    x = np.arange(len(models))
    fig = Figure(
        figsize=(
            max(6.0, 1.1 * len(models) * len(splits) / 2.5 + 2),
            2.6 * len(metrics),
        )
    )
    axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    annotate = len(models) * len(splits) <= 16
    for ax, metric in zip(axes, metrics, strict=True):
        for s, split in enumerate(splits):
            heights = df[(split, metric)].to_numpy(dtype=float)
            bars = ax.bar(
                x + (s - (len(splits) - 1) / 2) * width,
                np.nan_to_num(heights, nan=0.0),
                width * 0.95,
                label=split,
                color=colours[split],
                edgecolor="black" if split == "Test" else "none",
                linewidth=0.6,
            )
            if annotate:
                for bar, h in zip(bars, heights, strict=True):
                    if np.isfinite(h):
                        ax.text(
                            bar.get_x() + bar.get_width() / 2,
                            h,
                            f"{h:.1f}",
                            ha="center",
                            va="bottom",
                            fontsize=7,
                            rotation=90,
                        )
        ax.set_ylim(low, 100 + (4 if annotate else 0))
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    axes[-1].set_xticks(
        x,
        models,
        rotation=20 if len(models) > 3 else 0,
        ha="right" if len(models) > 3 else "center",
    )
    axes[-1].set_xlabel("Model")
    axes[0].legend(
        title="split",
        ncols=min(len(splits), 6),
        loc="lower center",
        bbox_to_anchor=(0.5, 1.02),
        fontsize=8,
        frameon=False,
    )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _history_rows(history):
    # A LeukoNetClassifier holds its skorch net in ``net_``; a skorch net holds
    # its History (a list of per-epoch dicts) in ``history``.
    net = getattr(history, "net_", None)
    if net is not None:
        history = net
    inner = getattr(history, "history", None)
    if isinstance(inner, list):
        history = inner
    if isinstance(history, Mapping):
        raise TypeError(
            "history must be a list of per-epoch dicts (or a skorch History), got a "
            "single dict; wrap it in a list."
        )
    try:
        rows = list(history)
    except TypeError:
        raise TypeError(
            "history must be a skorch History, a fitted skorch net or a list of "
            f"per-epoch dicts, got {type(history).__name__}."
        ) from None
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(
                f"history[{i}] is a {type(row).__name__}; each epoch must be a dict "
                "such as {'epoch': 1, 'train_loss': 0.7, 'valid_acc': 0.6}."
            )
    if not rows:
        raise ValueError("history is empty: train at least one epoch first.")
    return rows


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def plot_history(history, path, *, title=None):
    """Training curves: losses on the left, accuracies and scores on the right.

    Parameters
    ----------
    history : skorch History, fitted skorch net or list of dict
        One dict per epoch with keys such as ``"epoch"``, ``"train_loss"``,
        ``"valid_loss"``, ``"valid_acc"``. Missing keys are tolerated: each
        curve is drawn where its values exist, ``epoch`` defaults to the row
        number, and an empty panel says what was not recorded. Numeric keys
        containing "loss" go to the left panel; other numeric keys (except
        ``epoch``, ``dur``, learning rates and ``*_best`` flags) to the right.
    path : str or path-like
        Output image file; parent folders are created.
    title : str, default=None
        Figure title.

    Returns
    -------
    path : pathlib.Path
        The written file.
    """
    rows = _history_rows(history)
    epochs = np.array(
        [
            row["epoch"] if _is_number(row.get("epoch")) else i + 1
            for i, row in enumerate(rows)
        ],
        dtype=float,
    )
    keys = list(
        dict.fromkeys(k for row in rows for k, v in row.items() if _is_number(v))
    )
    skip = {"epoch", "dur", "lr", "event_lr"}
    loss_keys = [k for k in keys if "loss" in k and not k.endswith("_best")]
    score_keys = [
        k
        for k in keys
        if k not in skip
        and "loss" not in k
        and not k.endswith("_best")
        and not k.endswith("_lr")
        and not k.endswith("_batch_count")
    ]

    def series(name):
        return np.array(
            [row[name] if _is_number(row.get(name)) else np.nan for row in rows],
            dtype=float,
        )

    fig = Figure(figsize=(10, 3.8))
    ax_loss, ax_score = fig.subplots(1, 2, sharex=True)
    if "valid_acc" in score_keys and np.isfinite(series("valid_acc")).any():
        acc = series("valid_acc")
        best = int(np.nanargmax(acc))
        for ax in (ax_loss, ax_score):
            ax.axvline(
                epochs[best],
                color="0.5",
                linestyle=":",
                linewidth=1,
                label=f"best valid_acc {acc[best]:.3f} (epoch {epochs[best]:g})",
            )
    for ax, names, what in (
        (ax_loss, loss_keys, "loss"),
        (ax_score, score_keys, "score"),
    ):
        for name in names:
            style = "--" if name.startswith("train") else "-"
            ax.plot(epochs, series(name), style, marker="o", markersize=3, label=name)
        if names:
            ax.legend(fontsize=8)
        else:
            ax.text(
                0.5,
                0.5,
                f"no {what} recorded",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="0.4",
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.set_title("Loss")
    ax_score.set_title("Accuracy / scores")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _symmetric_limit(values):
    # An all-zero map (no coefficient survives the threshold) still gets a
    # readable colour bar.
    limit = float(np.abs(values).max())
    return limit if limit > 0 else 1.0


def _percentile_limit(values, q=99.5):
    inside = values[values > 0]
    return float(np.percentile(inside, q)) if inside.size else 1.0


def _colorbar(fig, image, ax):
    cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    cbar.ax.tick_params(labelsize=7)


def plot_cell_spaces(image, path, *, stain_matrix="giemsa", zoom=None, title=None):
    """One cell in RGB, optical-density stain space and log-DCT space.

    Row 1: the RGB image and its three channels. Row 2: the three stain
    channels of the optical density (OD) after stain deconvolution
    (:class:`~sklearn_leuko.preprocessing.StainDeconvolution`, the SD layer
    input of Stage-1) and a false-colour composite. Row 3: the thresholded
    log-DCT coefficients of each stain channel
    (:class:`~sklearn_leuko.preprocessing.LogDCT`, Stage-2): the full map of
    the first channel, with a box marking the low-frequency corner, and that
    corner enlarged for each channel.

    Parameters
    ----------
    image : array-like of shape (height, width, 3) or (1, height, width, 3)
        One uint8 RGB cell image.
    path : str or path-like
        Output image file; parent folders are created.
    stain_matrix : str or array-like, default="giemsa"
        Passed to ``StainDeconvolution``.
    zoom : int, default=None
        Side of the low-frequency corner shown enlarged; ``None`` uses a
        quarter of the image side (at least 8 coefficients).
    title : str, default=None
        Figure title.

    Returns
    -------
    path : pathlib.Path
        The written file.
    """
    from ..preprocessing import LogDCT, StainDeconvolution

    arr = np.asarray(image)
    if arr.ndim == 3:
        arr = arr[None]
    images = check_rgb_images(arr, name="image")
    if images.shape[0] != 1:
        raise ValueError(
            f"image holds {images.shape[0]} images; pass one cell, e.g. images[0]."
        )
    images = images.astype(np.uint8)
    od = np.asarray(StainDeconvolution(stain_matrix=stain_matrix).fit_transform(images))
    coef = np.asarray(LogDCT().fit_transform(od))
    od, coef = od[0], coef[0]
    height, width = images.shape[1:3]
    if zoom is None:
        zoom = max(8, min(height, width) // 4)
    zoom = int(min(zoom, height, width))
    names = (
        _STAIN_NAMES.get(stain_matrix, ("stain 1", "stain 2", "stain 3"))
        if isinstance(stain_matrix, str)
        else ("stain 1", "stain 2", "stain 3")
    )

    fig = Figure(figsize=(13, 9.6))
    axes = fig.subplots(3, 4)
    rgb = images[0]
    axes[0, 0].imshow(rgb, interpolation="nearest")
    axes[0, 0].set_title("RGB image")
    for c, name in enumerate(("red", "green", "blue")):
        im = axes[0, c + 1].imshow(
            rgb[..., c], cmap="gray", vmin=0, vmax=255, interpolation="nearest"
        )
        axes[0, c + 1].set_title(f"RGB: {name} channel")
        _colorbar(fig, im, axes[0, c + 1])

    # A few saturated border pixels would set a max-based scale; use the 99th
    # percentile of the cell's pixels instead.
    cell = np.abs(od).reshape(3, -1)
    cell = cell[:, (cell > 0).any(axis=0)] if (cell > 0).any() else cell
    scale = np.maximum(np.percentile(cell, 99, axis=1), 1e-12)[:, None, None].ravel()
    composite = np.clip(np.moveaxis(od, 0, -1) / scale, 0.0, 1.0)
    axes[1, 0].imshow(composite, interpolation="nearest")
    axes[1, 0].set_title("OD stains (false colour)")
    for c in range(3):
        if od[c].min() < 0:
            vmax = _percentile_limit(np.abs(od[c]))
            style = {"cmap": "RdBu_r", "vmin": -vmax, "vmax": vmax}
        else:
            style = {"cmap": "magma", "vmax": _percentile_limit(od[c])}
        im = axes[1, c + 1].imshow(od[c], interpolation="nearest", **style)
        axes[1, c + 1].set_title(f"OD: {names[c]}")
        _colorbar(fig, im, axes[1, c + 1])

    nonzero = 100.0 * np.count_nonzero(coef) / coef.size
    vmax = _symmetric_limit(coef[0])
    im = axes[2, 0].imshow(
        coef[0], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest"
    )
    axes[2, 0].add_patch(
        Rectangle((-0.5, -0.5), zoom, zoom, fill=False, edgecolor="black", lw=1.2)
    )
    axes[2, 0].set_title(f"log-DCT: {names[0]} (full)\n{nonzero:.2f}% non-zero")
    _colorbar(fig, im, axes[2, 0])
    for c in range(3):
        corner = coef[c, :zoom, :zoom]
        vmax = _symmetric_limit(corner)
        im = axes[2, c + 1].imshow(
            corner, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest"
        )
        axes[2, c + 1].set_title(f"log-DCT: {names[c]}\nlow-freq. {zoom}x{zoom}")
        _colorbar(fig, im, axes[2, c + 1])
    for ax in axes[:2].ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[2]:
        ax.set_xlabel("horizontal frequency")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    row_labels = ("RGB", "optical density", "log-DCT\nvertical frequency")
    for row, label in enumerate(row_labels):
        axes[row, 0].set_ylabel(label, fontsize=12, fontweight="bold")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


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
        ax.plot(fpr, tpr, linewidth=1.6, label=f"{label} (AUC {auc:.3f})")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (hem called all)")
    ax.set_ylabel("True positive rate (all called all)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title if title is not None else "ROC curves ('all' positive)")
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
            label=f"{label} (Brier {brier:.3f})",
        )
        ax_hist.stairs(counts, edges, color=line.get_color(), linewidth=1.4)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_ylabel("Fraction of cells that are 'all'")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title if title is not None else "Calibration (reliability diagram)")
    ax_hist.set_xlabel("Predicted P('all') (points: mean of the bin)")
    ax_hist.set_ylabel("cells")
    ax_hist.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_gradcam_overlay(
    images, heatmaps, path, *, titles=None, alpha=0.45, ncols=None, cmap="jet"
):
    """A grid of cells with their Grad-CAM heatmaps overlaid.

    Each panel shows the RGB cell and, on top, the heatmap in ``cmap`` with
    opacity ``alpha`` times the heat, so cold regions leave the cell visible
    and hot regions are coloured (the black background stays black where
    there is no heat).

    Parameters
    ----------
    images : array-like of shape (n, H, W, 3)
        uint8 RGB cells.
    heatmaps : array-like of shape (n, H, W)
        Heat in [0, 1] per pixel, e.g. from
        :func:`sklearn_leuko.nn.grad_cam` (a torch tensor is accepted).
    path : str or path-like
        Output image file; parent folders are created.
    titles : sequence of str, default=None
        One title per panel (e.g. subject, true label and P("all")).
    alpha : float, default=0.45
        Opacity of the hottest pixels, in [0, 1].
    ncols : int, default=None
        Panels per row; ``None`` uses up to 6.
    cmap : str, default="jet"
        Matplotlib colour map of the heat.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np
    >>> from sklearn_leuko.report import plot_gradcam_overlay
    >>> cells = np.full((2, 16, 16, 3), 200, np.uint8)
    >>> heat = np.random.default_rng(0).random((2, 16, 16))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = plot_gradcam_overlay(cells, heat, os.path.join(d, "cam.png"))
    ...     p.stat().st_size > 0
    True
    """
    arr = np.asarray(images)
    images = check_rgb_images(arr, name="images").astype(np.uint8)
    if hasattr(heatmaps, "detach"):
        heatmaps = heatmaps.detach().cpu().numpy()
    heat = np.asarray(heatmaps, dtype=np.float64)
    if heat.shape != images.shape[:3]:
        raise ValueError(
            f"heatmaps must have shape {images.shape[:3]} (one map per image, same "
            f"size), got {heat.shape}."
        )
    if not np.isfinite(heat).all() or heat.min() < 0 or heat.max() > 1:
        raise ValueError(
            "heatmaps must hold values in [0, 1] (grad_cam's output is), got "
            f"values in [{np.nanmin(heat):g}, {np.nanmax(heat):g}]."
        )
    if not (isinstance(alpha, numbers.Real) and 0 <= alpha <= 1):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}.")
    n = images.shape[0]
    if titles is not None:
        titles = [str(t) for t in titles]
        if len(titles) != n:
            raise ValueError(
                f"titles has {len(titles)} entries but there are {n} images; pass "
                "one title per image or None."
            )
    if ncols is None:
        ncols = min(n, 6)
    elif (
        isinstance(ncols, bool) or not isinstance(ncols, numbers.Integral) or ncols < 1
    ):
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}.")
    ncols = int(min(ncols, n))
    nrows = -(-n // ncols)
    colours = colormaps[cmap](heat)[..., :3]
    weight = alpha * heat[..., None]
    blended = (1.0 - weight) * (images / 255.0) + weight * colours

    fig = Figure(figsize=(2.2 * ncols, 2.2 * nrows + (0.3 if titles else 0.0)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(np.clip(blended[i], 0.0, 1.0), interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
