"""Event data shown as text, never as markup: the one place that escapes it.

Anything that comes from tracked events (names, paths, properties, filter values in a shared
URL) is attacker-controlled: a public client id is enough to send it.

- Plotly renders a subset of HTML in every label, legend and hover text (``<a href>``, ``<b>``,
  ``<br>``, ...) and decodes entities: ``plotly_text`` turns ``&``, ``<`` and ``>`` into
  entities, which Plotly shows as the characters themselves.
- ``st.markdown``, ``st.caption``, ``st.error`` and other Streamlit text elements read
  Markdown (links, autolinks, emphasis, ``:color[...]`` directives, LaTeX):
  ``markdown_text`` backslash-escapes every ASCII punctuation character (CommonMark lets any
  of them be escaped) and folds line breaks, so the text shows as typed.
- Tables (``st.dataframe``), widget options and ``st.json`` show text as text already.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import pandas as pd

_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def plotly_text(value: object) -> str:
    """A string Plotly shows literally in labels, legends and hover text."""
    return html.escape(str(value), quote=False)


def plotly_labels(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """A copy of ``frame`` whose text columns among ``columns`` are escaped for Plotly (other
    columns, such as times and numbers, stay as they are)."""
    escaped = {column: frame[column].map(plotly_text) for column in columns
               if column in frame and (pd.api.types.is_object_dtype(frame[column])
                                       or pd.api.types.is_string_dtype(frame[column]))}
    return frame.assign(**escaped) if escaped else frame


def markdown_text(value: object) -> str:
    """A string Streamlit's Markdown shows literally, on one line."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _LINE_BREAKS.sub(" ", str(value)))
