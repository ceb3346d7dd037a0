"""One self-contained HTML report of a protocol run.

Everything is in the file: figures and cell images are embedded as base64
PNG (``data:`` URLs), the style is inline CSS, there is no JavaScript and no
reference to anything outside the file, so it opens from a disk, a share or
an e-mail attachment, offline.
"""

import base64
import html
import io
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils._files import atomic_write
from ._protocol_outputs import protocol_tables, score_curves, summary_table

__all__ = ["to_html"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em;
     border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 0.9em; }
.figures img { max-width: 560px; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
.gallery { display: flex; flex-wrap: wrap; gap: 14px; }
.cell { border: 1px solid #ddd; padding: 6px; font-size: 0.8em; width: fit-content; }
.cell img { margin-right: 2px; image-rendering: auto; }
.wrong { color: #b00; font-weight: 600; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
"""


def _png_uri(data):
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _img(data, alt, width=None):
    size = f' width="{width}"' if width else ""
    return f'<img src="{_png_uri(data)}" alt="{html.escape(alt)}"{size}>'


def _figure(plot, *args, **kwargs):
    """PNG bytes of a ``report.plot_*`` function (which writes to a path)."""
    with tempfile.TemporaryDirectory() as folder:
        path = plot(*args, Path(folder) / "figure.png", **kwargs)
        return Path(path).read_bytes()


def _table(df, floatfmt="{:.2f}"):
    df = df.copy()
    if isinstance(df.columns, pd.MultiIndex):
        df.columns = [" ".join(str(c) for c in col if c) for col in df.columns]
    if df.index.name:
        df = df.reset_index()
    return df.to_html(
        float_format=lambda v: floatfmt.format(v),
        na_rep="-",
        border=0,
        escape=True,
        index=False,
    )


def _versions(result):
    import sklearn
    import skorch
    import torch

    from .. import __version__
    from .._stages import stage_networks

    devices = set()
    for models in result.estimators.values():
        for model in models:
            devices.update(str(net.device_) for _, net in stage_networks(model))
    return {
        "sklearn-leuko": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "skorch": skorch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": ", ".join(sorted(devices)) or "-",
        "torch threads": torch.get_num_threads(),
    }


def _settings_section(result):
    settings = dict(result.settings)
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(repr(v))}</td></tr>"
        for k, v in settings.items()
    )
    versions = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in _versions(result).items()
    )
    rerun = (
        "from sklearn_leuko.evaluation import run_protocol\n"
        "result = run_protocol(\n"
        "    X, y, subject_ids,\n"
        f"    stages={settings.get('stages')!r},\n"
        f"    n_splits={settings.get('n_splits')!r},\n"
        f"    test_subjects={settings.get('test_subjects')!r},\n"
        f"    net_params={settings.get('net_params')!r},\n"
        f"    stage_params={settings.get('stage_params')!r},\n"
        f"    epoch_selection={settings.get('epoch_selection')!r},\n"
        f"    random_state={settings.get('random_state')!r},\n"
        ")"
    )
    return (
        "<h2>Run</h2>"
        '<table class="settings">' + rows + "</table>"
        "<table class='versions'>" + versions + "</table>"
        "<p class='note'>To rerun it with the same data (X, y, subject_ids):</p>"
        f"<pre>{html.escape(rerun)}</pre>"
    )


def _gallery_rows(result, label, n):
    cells = result.predictions[label]
    split = "test" if len(result.test_index) else "val"
    part = cells[(cells["split"] == split) & (cells["y_true"] != cells["y_pred"])]
    confidence = (part["p_all"] - 0.5).abs()
    return part.assign(confidence=confidence).sort_values(
        "confidence", ascending=False, kind="stable"
    ).head(n), split


def _od_image(images):
    import torch

    from ..nn import rgb_to_od

    rgb = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    od = rgb_to_od(rgb).sum(dim=1).numpy()
    scale = np.percentile(od, 99.5) or 1.0
    return np.clip(od / scale, 0, 1)


def _colormap(values, name):
    from matplotlib import colormaps

    return (colormaps[name](values)[..., :3] * 255).astype(np.uint8)


def _png(array, size):
    from PIL import Image

    image = Image.fromarray(array)
    if image.size[0] > size:
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _overlay(image, heat, alpha=0.5):
    colour = _colormap(heat, "jet").astype(np.float32)
    weight = (alpha * heat)[..., None]
    return (image * (1 - weight) + colour * weight).clip(0, 255).astype(np.uint8)


def _gallery_section(result, X, filenames, n_gallery, size):
    from .._stages import stage_networks

    label = result.best_stage
    rows, split = _gallery_rows(result, label, n_gallery)
    where = "test subjects" if split == "test" else "validation folds"
    head = (
        f"<h2>Most confidently misclassified cells ({html.escape(label)}, "
        f"{where})</h2><p class='note'>Each cell: RGB, optical density (summed over "
        "R, G, B) and the Grad-CAM heatmap of every network of the stage for the "
        "class it wrongly predicted (averaged over the cell's exact flips and "
        "rotations), on the cell.</p>"
    )
    if rows.empty:
        return head + "<p>No misclassified cell.</p>"
    items = []
    for fold, group in rows.groupby("fold", sort=False):
        model = result.estimators[label][int(fold)]
        index = group["index"].to_numpy()
        images = X[index]
        square = images.shape[1] == images.shape[2]
        heats = [
            (
                name,
                net.explain(
                    images, target=group["y_pred"].to_numpy(), views=8 if square else 4
                ),
            )
            for name, net in stage_networks(model)
        ]
        od = _od_image(images)
        for i, row in enumerate(group.itertuples()):
            panels = [
                _img(_png(images[i], size), "RGB", size),
                _img(_png(_colormap(od[i], "magma"), size), "optical density", size),
            ]
            panels += [
                _img(_png(_overlay(images[i], heat[i]), size), f"Grad-CAM {name}", size)
                for name, heat in heats
            ]
            name = (
                ""
                if filenames is None
                else f"{html.escape(str(filenames[row.index]))}<br>"
            )
            items.append(
                (
                    row.confidence,
                    f"<div class='cell'>{''.join(panels)}<br>{name}"
                    f"subject {html.escape(str(row.subject))}, true "
                    f"<b>{html.escape(str(row.y_true))}</b>, predicted "
                    f"<span class='wrong'>{html.escape(str(row.y_pred))}</span>, "
                    f"P(all) = {row.p_all:.3f}<br>panels: RGB, OD, "
                    f"{', '.join(name for name, _ in heats)}</div>",
                )
            )
    items.sort(key=lambda item: -item[0])
    return head + "<div class='gallery'>" + "".join(h for _, h in items) + "</div>"


def _domain_section(result, X):
    """Share of the best stage's test (or validation) cells out of domain."""
    from .._classifier._domain import model_domain_score

    label = result.best_stage
    cells = result.predictions[label]
    split = "test" if len(result.test_index) else "val"
    part = cells[cells["split"] == split]
    flagged, total = 0, 0
    for fold, group in part.groupby("fold", sort=False):
        model = result.estimators[label][int(fold)]
        try:
            scores = model_domain_score(model, X[group["index"].to_numpy()])
        except (TypeError, ValueError, AttributeError):
            return ""  # models without a domain summary
        flagged += int((scores > 1).sum())
        total += len(scores)
    if not total:
        return ""
    where = "test subjects" if split == "test" else "validation folds"
    return (
        f"<h2>Out-of-domain cells</h2><p>{flagged} of {total} cells "
        f"({100 * flagged / total:.1f}%) of the {where} are out of domain for "
        f"{html.escape(label)}: their penultimate features (class-conditional "
        "Mahalanobis) or their background share and mean colour lie beyond the "
        "99th percentile of held-out training cells (<code>domain_score</code> "
        "above 1). Expect 1-3% for cells like the training cells; far more means "
        "the images differ from them.</p>"
    )


def _figures_section(result, tables):
    from ._plots import plot_fold_metrics, plot_history
    from ._score_plots import plot_calibration, plot_roc_curves

    curves = score_curves(result)
    where = "test subjects" if len(result.test_index) else "validation folds, pooled"
    figures = [
        (_figure(plot_roc_curves, curves, title=f"ROC curves, {where}"), "ROC curves"),
        (
            _figure(plot_calibration, curves, title=f"Calibration, {where}"),
            "calibration",
        ),
        (
            _figure(plot_fold_metrics, tables.table2, title="Table 2 per split"),
            "metrics per fold",
        ),
    ]
    curves_html = ""
    for label, histories in result.histories.items():
        fold = result.test_fold.get(label, 0)
        data = _figure(
            plot_history,
            histories[fold],
            title=f"{label} network, fold {fold}: training and inner validation",
        )
        curves_html += _img(data, f"training curves {label}")
    return (
        "<h2>ROC, calibration and folds</h2><div class='figures'>"
        + "".join(_img(data, alt) for data, alt in figures)
        + "</div><h2>Training curves</h2><div class='figures'>"
        + curves_html
        + "</div>"
    )


def to_html(
    result,
    path,
    X,
    *,
    filenames=None,
    n_gallery=12,
    gallery_size=96,
    title="sklearn-leuko: LeukoNet protocol report",
):
    """Write ONE self-contained HTML report of a protocol run.

    The file holds the run's settings and versions (enough to rerun it),
    Table 2, the ROC AUC and summary tables, the subject-level table, ROC
    and calibration curves, metrics per fold, the training curves, and a
    gallery of the most confidently misclassified cells of the test subjects
    (of the validation folds without a test set) of the best stage, each as
    RGB, optical density and Grad-CAM overlays with its subject, true label
    and P(all). Images are embedded (base64 PNG), there is no JavaScript
    and no external reference: it opens offline, from a file or an e-mail
    attachment.

    Parameters
    ----------
    result : ProtocolResult
        What :func:`~sklearn_leuko.evaluation.run_protocol` returned.
    path : str or path-like
        The ``.html`` file to write (atomically).
    X : ndarray of shape (n_samples, H, W, 3), uint8
        The images the protocol ran on (for the gallery).
    filenames : array-like of str, default=None
        A name per image, shown in the gallery.
    n_gallery : int, default=12
        Number of misclassified cells shown.
    gallery_size : int, default=96
        Side in pixels of each gallery image (cells are downscaled to it;
        keeps the file small).
    title : str, default="sklearn-leuko: LeukoNet protocol report"

    Returns
    -------
    path : pathlib.Path
    """
    tables = protocol_tables(result)
    summary = summary_table(result, tables)
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    test = (
        f"Test: the {len(result.test_subjects)} held-out subjects "
        f"({', '.join(map(str, result.test_subjects))}), each stage's model of its "
        "fold with the best validation accuracy."
        if len(result.test_index)
        else "No test set."
    )
    optimistic = (
        "<p class='wrong'>Best epochs were chosen on the validation folds themselves "
        "(epoch_selection='validation_fold', as in the paper): the Val columns are "
        "optimistic.</p>"
        if result.settings.get("epoch_selection") == "validation_fold"
        else ""
    )
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>Written {created}. Best stage on the validation folds: "
        f"<b>{html.escape(result.best_stage)}</b>.</p>",
        _settings_section(result),
        "<h2>Table 2</h2>",
        "<p class='note'>Accuracy (Acc), F1 of the normal (F1-N) and cancer (F1-C) "
        "class and weighted F1 (F1-W, the C-NMC metric), per cell, in percent. "
        f"Val0..: validation folds (subjects unseen in training). {html.escape(test)}"
        "</p>",
        optimistic,
        _table(tables.table2),
        "<h2>Summary and ROC AUC</h2>",
        _table(summary),
        _table(tables.auc_table),
        "<h2>Subject-level diagnosis</h2>",
        "<p class='note'>A subject is called leukemic when the mean P(all) of its "
        "cells is at least 0.5.</p>",
        _table(tables.subject_table),
        _domain_section(result, np.asarray(X)),
        _figures_section(result, tables),
        _gallery_section(result, np.asarray(X), filenames, n_gallery, gallery_size),
    ]
    document = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(document)
    return path
