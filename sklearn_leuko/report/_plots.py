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
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import confusion_matrix

from ..metrics import as_cnmc_labels
from ..utils._escape import escape_mathtext
from ..utils._files import atomic_write

__all__ = ["plot_confusion_matrix", "plot_fold_metrics", "plot_history"]

_LABEL_NAMES = {"hem": "hem (normal)", "all": "all (cancer)"}


def _save(fig, path, dpi=120):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, dpi=dpi, bbox_inches="tight", format=fmt)
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
    ax.set_title(title, parse_math=False)
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
        [escape_mathtext(model) for model in models],
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
        fig.suptitle(title, parse_math=False)
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
        fig.suptitle(title, parse_math=False)
    fig.tight_layout()
    return _save(fig, path)
