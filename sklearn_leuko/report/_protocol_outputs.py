"""Tables, text and files made from the raw results of the protocol.

:func:`~sklearn_leuko.evaluation.run_protocol` returns predictions and
scores; this module arranges them: Table 2, the subject-level diagnosis,
the misclassified subjects (:func:`protocol_tables`), the report printed by
``sklearn-leuko cv`` (:func:`format_protocol_report`) and the files it writes
(:func:`write_protocol_outputs`).
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ..metrics import (
    cell_roc_auc_score,
    misclassified_subjects,
    subject_predictions,
    subject_roc_auc_score,
)
from ..utils._escape import escape_csv_frame
from ..utils._files import atomic_write, write_text_atomic
from ._table import format_table2, save_table2, subject_table, table2

__all__ = [
    "auc_table",
    "format_protocol_report",
    "protocol_tables",
    "score_curves",
    "summary_table",
    "write_protocol_outputs",
]

_SPLITS = (("val", "Val subjects"), ("test", "Test subjects"))


def _has_test(result):
    return len(result.test_index) > 0


def _subject_frames(cells, has_test, test_fold):
    """Subject-level diagnosis per split (mean-probability rule)."""
    tables = {}
    for split in ("val", "test") if has_test else ("val",):
        part = cells[cells["split"] == split]
        table = subject_predictions(
            part["y_true"].to_numpy(),
            part["y_pred"].to_numpy(),
            groups=part["subject"].to_numpy(),
            proba=part["p_all"].to_numpy(),
            method="mean_proba",
        )
        if split == "val":
            fold_of = part.groupby("subject")["fold"].first()
            table.insert(1, "fold", table["subject"].map(fold_of).to_numpy())
        else:
            table.insert(1, "fold", test_fold)
        tables[split] = table
    return tables


def _misclassified(cells, has_test):
    wrong = []
    for split in ("val", "test") if has_test else ("val",):
        part = cells[cells["split"] == split]
        bad = misclassified_subjects(
            part["y_true"].to_numpy(),
            part["y_pred"].to_numpy(),
            groups=part["subject"].to_numpy(),
            proba=part["p_all"].to_numpy(),
        )
        bad.insert(0, "split", split)
        wrong.append(bad)
    return pd.concat(wrong, ignore_index=True)


def protocol_tables(result):
    """Table 2 and the subject-level tables of a protocol run.

    Parameters
    ----------
    result : ProtocolResult
        What :func:`~sklearn_leuko.evaluation.run_protocol` returned.

    Returns
    -------
    tables : :class:`~sklearn.utils.Bunch`
        table2 : pandas.DataFrame
            :func:`table2` of the stages ("Val0".., "Mean", "Test"; Acc,
            F1-N, F1-C and weighted F1 in percent).
        subject_table : pandas.DataFrame
            Subject-level diagnosis per stage (mean-probability rule) on the
            validation subjects (pooled over the folds, every non-test
            subject once) and on the test subjects.
        subjects : dict
            Stage label -> :func:`~sklearn_leuko.metrics.subject_predictions`
            table, validation and test subjects (column ``split``).
        subject_accuracy : dict
            Stage label -> ``{"val": float, "test": float}`` (NaN without
            test set).
        misclassified : dict
            Stage label -> :func:`~sklearn_leuko.metrics.misclassified_subjects`
            (at least half of the subject's cells wrong), with ``split``.
        auc_table : pandas.DataFrame
            Threshold-free: ROC AUC of the cells and of the subjects (score =
            mean P(all) of a subject's cells) on the validation folds
            (pooled out-of-fold predictions) and the test subjects, in
            percent; NaN where a split holds one class only.

    Examples
    --------
    See :func:`~sklearn_leuko.evaluation.run_protocol`.
    """
    has_test = _has_test(result)
    subjects, subject_acc, misclassified = {}, {}, {}
    val_tables, test_tables = {}, {}
    for label in result.stages:
        cells = result.predictions[label]
        frames = _subject_frames(cells, has_test, result.test_fold.get(label))
        val_tables[label] = frames["val"]
        if has_test:
            test_tables[label] = frames["test"]
        subjects[label] = pd.concat(
            [frame.assign(split=split) for split, frame in frames.items()],
            ignore_index=True,
        )
        subjects[label] = subjects[label][
            ["split", *[c for c in subjects[label].columns if c != "split"]]
        ]
        subject_acc[label] = {
            "val": float(val_tables[label]["correct"].mean()),
            "test": float(test_tables[label]["correct"].mean()) if has_test else np.nan,
        }
        misclassified[label] = _misclassified(cells, has_test)

    table = table2(
        result.cv_results,
        test=result.test_metrics if has_test else None,
        metrics=("Acc", "F1-N", "F1-C", "F1-W"),
    )
    subj = subject_table(val_tables)
    subj.columns = pd.MultiIndex.from_product([["Validation subjects"], subj.columns])
    if has_test:
        subj_test = subject_table(test_tables)
        subj_test.columns = pd.MultiIndex.from_product(
            [["Test subjects"], subj_test.columns]
        )
        subj = pd.concat([subj, subj_test], axis=1)
    return Bunch(
        table2=table,
        auc_table=auc_table(result),
        subject_table=subj,
        subjects=subjects,
        subject_accuracy=subject_acc,
        misclassified=misclassified,
    )


def _auc(function, part, **kwargs):
    import warnings

    if len(part) == 0:
        return np.nan
    with warnings.catch_warnings():
        # one class in the split: NaN, said in the table's docstring
        warnings.simplefilter("ignore")
        return 100 * function(
            part["y_true"].to_numpy(), part["p_all"].to_numpy(), **kwargs
        )


def auc_table(result):
    """ROC AUC per stage: cells and subjects, validation folds and test subjects.

    Parameters
    ----------
    result : ProtocolResult

    Returns
    -------
    table : pandas.DataFrame
        Index "Model"; columns "Val cell AUC", "Val subject AUC" and, with a
        test set, "Test cell AUC", "Test subject AUC", in percent. The
        validation AUCs pool the out-of-fold predictions of all folds.
    """
    rows = {}
    for label in result.stages:
        cells = result.predictions[label]
        row = {}
        for split, name in (("val", "Val"), ("test", "Test")):
            part = cells[cells["split"] == split]
            if split == "test" and not _has_test(result):
                continue
            row[f"{name} cell AUC"] = _auc(cell_roc_auc_score, part)
            row[f"{name} subject AUC"] = _auc(
                subject_roc_auc_score, part, groups=part["subject"].to_numpy()
            )
        rows[label] = row
    table = pd.DataFrame.from_dict(rows, orient="index").round(2)
    table.index.name = "Model"
    return table


def summary_table(result, tables=None):
    """Per stage: weighted F1, subjects diagnosed correctly and training time.

    Parameters
    ----------
    result : ProtocolResult
    tables : Bunch, default=None
        :func:`protocol_tables` of ``result`` (computed when ``None``).

    Returns
    -------
    table : pandas.DataFrame
    """
    tables = protocol_tables(result) if tables is None else tables
    has_test = _has_test(result)
    rows = {}
    for label in result.stages:
        cv = result.cv_results[label]
        subjects = tables.subjects[label]
        row = {"Val F1-W": 100 * float(np.mean(cv["test_f1_weighted"]))}
        if has_test:
            row["Test F1-W"] = 100 * result.test_metrics[label]["f1_weighted"]
        row["Val AUC"] = tables.auc_table.loc[label, "Val cell AUC"]
        if has_test:
            row["Test AUC"] = tables.auc_table.loc[label, "Test cell AUC"]
        for split, name in _SPLITS:
            part = subjects[subjects["split"] == split]
            if len(part):
                row[name] = (
                    f"{int(part['correct'].sum())}/{len(part)} "
                    f"({100 * part['correct'].mean():.1f}%)"
                )
        row["Train s/fold"] = float(np.mean(cv["fit_time"]))
        rows[label] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "Model"
    return table


def format_protocol_report(result, tables=None):
    """The text report of a protocol run, as printed by ``sklearn-leuko cv``.

    Table 2 (Acc, F1-N, F1-C per fold, mean and test), weighted F1,
    subject-level diagnosis and training time, and the misclassified
    subjects of every stage.

    Parameters
    ----------
    result : ProtocolResult
    tables : Bunch, default=None
        :func:`protocol_tables` of ``result`` (computed when ``None``).

    Returns
    -------
    text : str
    """
    tables = protocol_tables(result) if tables is None else tables
    n_folds = len(result.folds)
    table = tables.table2
    paper = table[[c for c in table.columns if c[1] in ("Acc", "F1-N", "F1-C")]]
    lines = [
        "",
        "Table 2: accuracy (Acc), F1 of the normal (F1-N) and of the cancer (F1-C) "
        "class, per cell, in percent.",
    ]
    line = (
        f"Val0..Val{n_folds - 1}: validation folds (subjects unseen in training); "
        "Mean: their mean"
    )
    if _has_test(result):
        subjects = result.test_subjects
        line += (
            f"; Test: the {len(subjects)} held-out subjects ({', '.join(subjects)}), "
            "each stage's model of its fold with the best validation accuracy"
        )
    lines.append(line + ".")
    if result.settings.get("epoch_selection") == "validation_fold":
        lines.append(
            "Best epochs chosen on the validation folds themselves "
            "(epoch_selection='validation_fold', as in the paper): the Val columns "
            "are optimistic."
        )
    lines += ["", format_table2(paper), ""]
    lines += [
        "Weighted F1 (F1-W, the C-NMC challenge metric), ROC AUC of the cells "
        "(validation folds pooled), subjects diagnosed correctly (leukemic when the "
        "mean P(all) of their cells is >= 0.5) and training time:",
        "",
        format_table2(summary_table(result, tables), floatfmt=".2f"),
        "",
        "Misclassified subjects (at least half of their cells wrong; split, share "
        "of cells wrong):",
    ]
    for label in result.stages:
        bad = tables.misclassified[label]
        items = (
            ", ".join(
                f"{row.subject} ({row.split}, {100 * row.cell_error:.0f}%)"
                for row in bad.itertuples()
            )
            if len(bad)
            else "none"
        )
        lines.append(f"  {label}: {items}")
    lines.append("")
    return "\n".join(lines)


def score_curves(result):
    """``{stage label: (y_true, p_all)}`` of the test cells (or the pooled
    validation cells without a test set), for ROC and calibration plots."""
    split = "test" if _has_test(result) else "val"
    curves = {}
    for label in result.stages:
        cells = result.predictions[label]
        part = cells[cells["split"] == split]
        curves[label] = (part["y_true"].to_numpy(), part["p_all"].to_numpy())
    return curves


def write_protocol_outputs(result, folder, X, y, filenames, tables=None):
    """Write the tables and figures of a protocol run into a folder.

    Files: ``table2.csv``, ``table2.md`` (Table 2, the ROC AUC table and
    the subject-level table), ``subjects.csv``, ``predictions.csv``, and the
    figures ``confusion_matrix.png`` (best stage, test subjects or pooled
    validation folds), ``fold_metrics.png``, ``roc_curves.png`` and
    ``calibration.png`` (every stage), ``history.png`` (a training curve)
    and ``cell_spaces.png`` (one cell in RGB, OD and log-DCT space).

    Parameters
    ----------
    result : ProtocolResult
    folder : str or path-like
        Created if needed; files in it are overwritten.
    X : ndarray of shape (n_samples, H, W, 3)
        The images the protocol ran on.
    y : array-like of shape (n_samples,)
    filenames : array-like of str, shape (n_samples,)
        A name per image, for the predictions table and figure titles.
    tables : Bunch, default=None
        :func:`protocol_tables` of ``result`` (computed when ``None``).

    Returns
    -------
    written : list of (pathlib.Path, str)
        Every file written and what it holds.
    """
    from ._cell_plots import plot_cell_spaces
    from ._plots import plot_confusion_matrix, plot_fold_metrics, plot_history
    from ._score_plots import plot_calibration, plot_roc_curves

    tables = protocol_tables(result) if tables is None else tables
    output = Path(folder)
    output.mkdir(parents=True, exist_ok=True)
    filenames = np.asarray(filenames).astype(str)
    written = []
    path = save_table2(tables.table2, output / "table2.csv")
    written.append((path, "Table 2 (CSV)"))
    path = write_text_atomic(
        output / "table2.md",
        "## Table 2\n\n"
        + format_table2(tables.table2, "markdown")
        + "\n\n## ROC AUC\n\n"
        + format_table2(tables.auc_table, "markdown")
        + "\n\n## Subject-level diagnosis\n\n"
        + format_table2(tables.subject_table, "markdown")
        + "\n",
    )
    written.append((path, "Table 2 and subject-level table (Markdown)"))

    subjects = pd.concat(
        [df.assign(stage=label) for label, df in tables.subjects.items()],
        ignore_index=True,
    )
    subjects = subjects[["stage", *[c for c in subjects.columns if c != "stage"]]]
    path = output / "subjects.csv"
    with atomic_write(path, "w", newline="") as handle:
        escape_csv_frame(subjects).to_csv(handle, index=False)
    written.append((path, "subject-level diagnosis per stage"))

    cells = pd.concat(
        [df.assign(stage=label) for label, df in result.predictions.items()],
        ignore_index=True,
    )
    cells.insert(0, "filename", filenames[cells["index"].to_numpy()])
    cells = cells[["stage", *[c for c in cells.columns if c != "stage"]]]
    path = output / "predictions.csv"
    with atomic_write(path, "w", newline="") as handle:
        escape_csv_frame(cells).to_csv(handle, index=False)
    written.append((path, "cell predictions (validation folds and test)"))

    best = result.best_stage
    frame = result.predictions[best]
    split = "test" if _has_test(result) else "val"
    part = frame[frame["split"] == split]
    where = "test subjects" if split == "test" else "validation folds, pooled"
    path = plot_confusion_matrix(
        part["y_true"].to_numpy(),
        part["y_pred"].to_numpy(),
        output / "confusion_matrix.png",
        title=f"{best} on the {where} (n = {len(part)} cells)",
    )
    written.append((path, f"confusion matrix of {best} ({where})"))

    path = plot_fold_metrics(
        tables.table2, output / "fold_metrics.png", title="Table 2 per split"
    )
    written.append((path, "metrics per fold and test set"))

    curves = score_curves(result)
    where = "test subjects" if _has_test(result) else "validation folds, pooled"
    path = plot_roc_curves(
        curves, output / "roc_curves.png", title=f"ROC curves, cells of the {where}"
    )
    written.append((path, f"ROC curve of every stage ({where})"))
    path = plot_calibration(
        curves, output / "calibration.png", title=f"Calibration, {where}"
    )
    written.append((path, f"reliability diagram of every stage ({where})"))

    if result.histories:
        label = next(iter(result.histories))
        fold = result.test_fold.get(label, 0)
        path = plot_history(
            result.histories[label][fold],
            output / "history.png",
            title=f"{label} network, fold {fold}: training and inner validation",
        )
        written.append((path, f"training curves of the {label} network (fold {fold})"))

    index = result.test_index[0] if _has_test(result) else 0
    path = plot_cell_spaces(
        X[index],
        output / "cell_spaces.png",
        title=f"{filenames[index]} ({np.asarray(y)[index]}): RGB, optical density, "
        "log-DCT",
    )
    written.append((path, "one cell in RGB, OD and log-DCT space"))
    return written
