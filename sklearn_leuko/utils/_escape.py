"""Escaping of user strings (subject IDs, file names) per output format.

Subject IDs and file names come from the user's file system or from a CSV
someone else wrote; each output format gets one rule, applied everywhere the
library writes that format:

- Markdown (:func:`escape_markdown`): ``|``, ``<``, ``>``, backslash and
  line breaks would break a table row or pass HTML through;
- CSV (:func:`escape_csv_cell`, :func:`escape_csv_frame`): a text cell that
  starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a
  formula to a spreadsheet (CSV injection, OWASP); it gets a leading ``'``.
  Numbers are never changed: ``-0.5`` stays a number;
- matplotlib: figures that show user strings draw them with
  ``parse_math=False`` (titles) or through :func:`escape_mathtext` (tick
  labels and legend entries, which have no such switch), so a ``$`` is a
  dollar sign, never mathtext.
"""

__all__ = ["escape_csv_cell", "escape_csv_frame", "escape_markdown", "escape_mathtext"]

_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_MARKDOWN = {"\\": "\\\\", "|": "\\|", "<": "&lt;", ">": "&gt;"}


def escape_markdown(text):
    """``text`` safe inside a Markdown table cell.

    Examples
    --------
    >>> escape_markdown("H1|<b>x</b>\\nnext")
    'H1\\\\|&lt;b&gt;x&lt;/b&gt; next'
    """
    text = str(text)
    out = "".join(_MARKDOWN.get(ch, ch) for ch in text)
    return " ".join(out.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def escape_mathtext(text):
    """``text`` that matplotlib draws as plain text, never as mathtext.

    Every ``$`` becomes ``\\$``, which matplotlib draws as a dollar sign.

    Examples
    --------
    >>> escape_mathtext("UID_$x$.bmp")
    'UID_\\\\$x\\\\$.bmp'
    """
    return str(text).replace("$", "\\$")


def escape_csv_cell(value):
    """A CSV cell that no spreadsheet runs as a formula.

    Strings starting with ``= + - @``, a tab or a carriage return get a
    leading ``'``; every other value (numbers included) is returned as is.

    Examples
    --------
    >>> escape_csv_cell("=HYPERLINK(1)"), escape_csv_cell(-0.5), escape_csv_cell("H3")
    ("'=HYPERLINK(1)", -0.5, 'H3')
    """
    if isinstance(value, str) and value.startswith(_CSV_TRIGGERS):
        return "'" + value
    return value


def escape_csv_frame(frame):
    """A copy of a :class:`pandas.DataFrame` with its text cells escaped.

    Only object and string columns are touched; numeric columns stay numbers.
    The index is escaped too when it holds text.
    """
    frame = frame.copy()
    for column in frame.columns:
        if not _is_numeric(frame[column]):
            frame[column] = frame[column].map(escape_csv_cell)
    if not _is_numeric(frame.index.to_series()):
        frame.index = frame.index.map(escape_csv_cell)
    return frame


def _is_numeric(series):
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
