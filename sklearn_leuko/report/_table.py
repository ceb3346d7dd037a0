"""Table 2 of the paper: accuracy and per-class F1 per validation fold and test set.

Mourya et al. (2018), Table 2: one row per model, for each of the validation
folds "Val0".."Val3" and the "Test set" three numbers in percent, "Acc",
"F1,N" (F1 of the normal class) and "F1,C" (F1 of the cancer class).
"""

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils._escape import escape_csv_frame, escape_markdown
from ..utils._files import atomic_write

__all__ = [
    "TABLE2_METRICS",
    "format_table2",
    "load_table2",
    "save_table2",
    "subject_table",
    "table2",
]

#: Column label in the table -> key in :data:`~sklearn_leuko.metrics.CNMC_SCORING`.
TABLE2_METRICS = {
    "Acc": "accuracy",
    "F1-N": "f1_normal",
    "F1-C": "f1_cancer",
    "F1-W": "f1_weighted",
}


def _percent(value):
    return round(100.0 * float(value), 2) if np.isfinite(value) else np.nan


def _check_dict(value, name):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name} must be a dict mapping model name -> results, got "
            f"{type(value).__name__}."
        )
    return value


def _fold_scores(cv_result, model, key):
    if not isinstance(cv_result, Mapping):
        raise TypeError(
            f"results[{model!r}] must be the dict returned by cross_validate, got "
            f"{type(cv_result).__name__}."
        )
    name = f"test_{key}"
    if name not in cv_result:
        raise ValueError(
            f"results[{model!r}] has no {name!r} (keys: {sorted(cv_result)}); run "
            "cross_validate(..., scoring=sklearn_leuko.metrics.CNMC_SCORING)."
        )
    return np.atleast_1d(np.asarray(cv_result[name], dtype=np.float64))


def _test_score(metrics, model, key):
    if not isinstance(metrics, Mapping):
        raise TypeError(
            f"test[{model!r}] must be a dict of metrics as returned by cnmc_metrics, "
            f"got {type(metrics).__name__}."
        )
    for name in (key, f"test_{key}"):
        if name in metrics:
            return float(metrics[name])
    raise ValueError(
        f"test[{model!r}] has no {key!r} (keys: {sorted(metrics)}); pass the dict "
        "returned by sklearn_leuko.metrics.cnmc_metrics(y_test, y_pred)."
    )


def table2(
    results,
    *,
    test=None,
    models=None,
    metrics=("Acc", "F1-N", "F1-C"),
    mean=True,
):
    """Cross-validation and test results in the layout of the paper's Table 2.

    Parameters
    ----------
    results : dict
        Model name -> the dict returned by
        ``sklearn.model_selection.cross_validate(..., scoring=CNMC_SCORING)``
        (keys ``test_accuracy``, ``test_f1_normal``, ``test_f1_cancer``, one
        value per fold). May be empty when only ``test`` is given.
    test : dict, default=None
        Model name -> metrics on a held-out test set, as returned by
        :func:`sklearn_leuko.metrics.cnmc_metrics`. Adds a "Test" column group.
    models : list of str, default=None
        Rows to show, in this order. ``None`` shows the models of
        ``results`` then those only in ``test``, in insertion order.
    metrics : sequence of {"Acc", "F1-N", "F1-C", "F1-W"}, default=("Acc", "F1-N", "F1-C")
        Metrics per split; "F1-W" is the weighted F1 of the C-NMC challenge.
    mean : bool, default=True
        Add a "Mean" column group, the mean over the validation folds.

    Returns
    -------
    table : pandas.DataFrame
        Index "Model" (one row per model); columns a MultiIndex
        ``(split, metric)`` with splits "Val0".."ValK-1", "Mean" and "Test".
        Values in percent rounded to 2 decimals; NaN where a model has fewer
        folds or no test result.

    See Also
    --------
    format_table2 : The table as aligned text or Markdown.
    save_table2 : Write it to CSV.

    Examples
    --------
    >>> from sklearn_leuko.report import table2
    >>> cv = {"test_accuracy": [0.9, 0.8], "test_f1_normal": [0.85, 0.7],
    ...       "test_f1_cancer": [0.92, 0.84]}
    >>> test = {"accuracy": 0.875, "f1_normal": 0.8, "f1_cancer": 0.9}
    >>> t = table2({"Stage-1": cv}, test={"Stage-1": test})
    >>> t.loc["Stage-1", ("Mean", "Acc")], t.loc["Stage-1", ("Test", "F1-C")]
    (np.float64(85.0), np.float64(90.0))
    """
    results = _check_dict(results, "results")
    test = _check_dict(test, "test")
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in TABLE2_METRICS]
    if not metrics or unknown:
        raise ValueError(
            f"metrics must be a non-empty subset of {list(TABLE2_METRICS)}, got "
            f"{metrics!r}."
        )
    available = list(results) + [m for m in test if m not in results]
    if models is None:
        models = available
    else:
        models = list(models)
        missing = [m for m in models if m not in results and m not in test]
        if missing:
            raise ValueError(
                f"models {missing} are in neither results nor test; available: "
                f"{available}."
            )
    if not models:
        raise ValueError("results and test are both empty: nothing to tabulate.")

    folds = {
        model: {
            m: _fold_scores(results[model], model, TABLE2_METRICS[m]) for m in metrics
        }
        for model in models
        if model in results
    }
    n_folds = max((len(v) for f in folds.values() for v in f.values()), default=0)
    splits = [f"Val{k}" for k in range(n_folds)]
    if mean and n_folds:
        splits.append("Mean")
    if test:
        splits.append("Test")

    rows = []
    for model in models:
        row = []
        for split in splits:
            for m in metrics:
                if split == "Test":
                    value = (
                        _test_score(test[model], model, TABLE2_METRICS[m])
                        if model in test
                        else np.nan
                    )
                elif model not in folds:
                    value = np.nan
                elif split == "Mean":
                    value = float(np.mean(folds[model][m]))
                else:
                    scores = folds[model][m]
                    k = int(split[3:])
                    value = scores[k] if k < len(scores) else np.nan
                row.append(_percent(value))
        rows.append(row)
    columns = pd.MultiIndex.from_product([splits, metrics], names=["split", "metric"])
    index = pd.Index(models, name="Model")
    return pd.DataFrame(rows, index=index, columns=columns, dtype=np.float64)


def _flat_columns(columns):
    if isinstance(columns, pd.MultiIndex):
        return [" ".join(str(part) for part in col) for col in columns]
    return [str(col) for col in columns]


def _cell(value, floatfmt):
    if value is None:
        return "-"
    if isinstance(value, (float, np.floating)):
        return "-" if math.isnan(value) else format(value, floatfmt)
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _format_text(df, cells, index_name):
    index = [str(i) for i in df.index]
    first = max([len(index_name)] + [len(i) for i in index])
    if isinstance(df.columns, pd.MultiIndex):
        groups = [str(g) for g in df.columns.get_level_values(0)]
        leaves = [str(v) for v in df.columns.get_level_values(-1)]
    else:
        groups = [None] * df.shape[1]
        leaves = [str(c) for c in df.columns]
    widths = [
        max([len(leaves[j])] + [len(row[j]) for row in cells])
        for j in range(len(leaves))
    ]
    # Consecutive columns sharing a top-level label form one group, separated
    # from the next group by " | ".
    numeric = _numeric_columns(df)
    spans = []
    for j, g in enumerate(groups):
        if spans and spans[-1][0] == g:
            spans[-1][2] = j + 1
        else:
            spans.append([g, j, j + 1])

    def span_width(start, stop):
        return sum(widths[start:stop]) + 2 * (stop - start - 1)

    for g, start, stop in spans:
        extra = len(g or "") - span_width(start, stop)
        if extra > 0:
            widths[stop - 1] += extra

    def line(first_cell, values):
        parts = [
            "  ".join(
                values[j].rjust(widths[j]) if numeric[j] else values[j].ljust(widths[j])
                for j in range(start, stop)
            )
            for _, start, stop in spans
        ]
        return first_cell.ljust(first) + " | " + " | ".join(parts)

    lines = []
    if groups[0] is not None:
        headers = [g.center(span_width(start, stop)) for g, start, stop in spans]
        lines.append(" " * first + " | " + " | ".join(headers))
    lines.append(line(index_name, leaves))
    lines.append("-" * len(lines[-1]))
    lines.extend(line(name, row) for name, row in zip(index, cells, strict=True))
    return "\n".join(text.rstrip() for text in lines)


def _numeric_columns(df):
    return [
        all(
            isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_))
            for v in df.iloc[:, j]
        )
        for j in range(df.shape[1])
    ]


def _format_markdown(df, cells, index_name):
    header = [index_name] + _flat_columns(df.columns)
    numeric = _numeric_columns(df)
    align = [":---"] + ["---:" if n else ":---" for n in numeric]
    lines = [
        "| " + " | ".join(escape_markdown(h) for h in header) + " |",
        "| " + " | ".join(align) + " |",
    ]
    for name, row in zip(df.index, cells, strict=True):
        lines.append(
            "| " + " | ".join(escape_markdown(c) for c in [str(name), *row]) + " |"
        )
    return "\n".join(lines)


def format_table2(df, fmt="text", *, floatfmt=".2f"):
    """Render a table (from :func:`table2` or :func:`subject_table`) as text.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows are models; columns either a ``(split, metric)`` MultiIndex or
        flat labels.
    fmt : {"text", "markdown"}, default="text"
        ``"text"``: aligned columns, split names centred over their metrics.
        ``"markdown"``: a GitHub-flavoured Markdown table with flattened
        column names such as "Val0 Acc".
    floatfmt : str, default=".2f"
        Format of floating-point values; NaN is shown as "-".

    Returns
    -------
    text : str

    Examples
    --------
    >>> from sklearn_leuko.report import format_table2, table2
    >>> cv = {"test_accuracy": [0.9], "test_f1_normal": [0.85],
    ...       "test_f1_cancer": [0.92]}
    >>> print(format_table2(table2({"S1": cv}, mean=False), "markdown"))
    | Model | Val0 Acc | Val0 F1-N | Val0 F1-C |
    | :--- | ---: | ---: | ---: |
    | S1 | 90.00 | 85.00 | 92.00 |
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}.")
    if fmt not in ("text", "markdown"):
        raise ValueError(f"fmt must be 'text' or 'markdown', got {fmt!r}.")
    cells = [[_cell(v, floatfmt) for v in row] for row in df.itertuples(index=False)]
    index_name = str(df.index.name) if df.index.name is not None else ""
    if fmt == "markdown":
        return _format_markdown(df, cells, index_name)
    return _format_text(df, cells, index_name)


def save_table2(df, path):
    """Write a :func:`table2` table to CSV with flattened column names.

    Columns become "Val0 Acc", "Val0 F1-N", ..., "Test F1-C"; the first
    column holds the model names. :func:`load_table2` reads it back.

    Parameters
    ----------
    df : pandas.DataFrame
        The output of :func:`table2`.
    path : str or path-like
        Destination; parent folders are created.

    Returns
    -------
    path : pathlib.Path
        The written file.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = df.copy()
    flat.columns = _flat_columns(df.columns)
    flat.index.name = df.index.name or "Model"
    with atomic_write(path, "w", newline="") as handle:
        escape_csv_frame(flat).to_csv(handle)
    return path


def load_table2(path):
    """Read a CSV written by :func:`save_table2` back into the Table-2 layout.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    table : pandas.DataFrame
        Index "Model", columns a ``(split, metric)`` MultiIndex.
    """
    flat = pd.read_csv(path, index_col=0)
    pairs = []
    for col in flat.columns:
        if " " not in col:
            raise ValueError(
                f"column {col!r} of {path} is not of the form '<split> <metric>'; "
                "was the file written by save_table2?"
            )
        pairs.append(tuple(col.rsplit(" ", 1)))
    flat.columns = pd.MultiIndex.from_tuples(pairs, names=["split", "metric"])
    flat.index = flat.index.astype(str)
    return flat.astype(np.float64)


def subject_table(subjects):
    """One line per model summarising subject-level diagnosis.

    Parameters
    ----------
    subjects : dict or pandas.DataFrame
        Model name -> output of
        :func:`sklearn_leuko.metrics.subject_predictions` (or a list of
        them, one per fold, which are pooled). A single DataFrame is shown
        as model "model".

    Returns
    -------
    table : pandas.DataFrame
        Index "Model"; columns "Subjects" (count), "Correct" (count),
        "Subject acc" (percent, 2 decimals), "Cell acc" (mean over subjects
        of the within-subject cell accuracy, percent) and "Wrong" (the
        wrongly diagnosed subject IDs, comma separated, "" if none).

    Examples
    --------
    >>> from sklearn_leuko.metrics import subject_predictions
    >>> from sklearn_leuko.report import format_table2, subject_table
    >>> s = subject_predictions(["all", "all", "hem", "hem"], ["all", "hem", "all", "all"],
    ...                         groups=["1", "1", "H2", "H2"])
    >>> print(format_table2(subject_table({"S1": s})))
    Model | Subjects  Correct  Subject acc  Cell acc  Wrong
    -------------------------------------------------------
    S1    |        2        1        50.00     25.00  H2
    """
    if isinstance(subjects, pd.DataFrame):
        subjects = {"model": subjects}
    subjects = _check_dict(subjects, "subjects")
    if not subjects:
        raise ValueError("subjects is empty: nothing to tabulate.")
    rows = {}
    for model, frames in subjects.items():
        if isinstance(frames, pd.DataFrame):
            frames = [frames]
        df = pd.concat(list(frames), ignore_index=True)
        needed = {"subject", "correct", "cell_accuracy"}
        if not needed <= set(df.columns):
            raise ValueError(
                f"subjects[{model!r}] lacks columns {sorted(needed - set(df.columns))}; "
                "pass the output of sklearn_leuko.metrics.subject_predictions."
            )
        wrong = df.loc[~df["correct"].astype(bool), "subject"].astype(str).tolist()
        rows[model] = {
            "Subjects": int(len(df)),
            "Correct": int(df["correct"].sum()),
            "Subject acc": _percent(df["correct"].mean()),
            "Cell acc": _percent(df["cell_accuracy"].mean()),
            "Wrong": ", ".join(wrong),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "Model"
    return table
