"""Event data shown as text, never as markup: the one place that escapes it.

Anything that comes from tracked events (names, paths, properties, filter values in a shared
URL) is attacker-controlled: a public client id is enough to send it.

- Plotly renders a subset of HTML in every label, legend and hover text (``<a href>``, ``<b>``,
  ``<br>``, ...) and decodes entities: ``plotly_text`` turns ``&``, ``<`` and ``>`` into
  entities, which Plotly shows as the characters themselves.
- ``st.markdown``, ``st.caption``, ``st.error`` and other Streamlit text elements read
  Markdown (links, emphasis, ``:color[...]`` directives, LaTeX) and turn bare URLs, ``www.``
  names and e-mail addresses into links *after* parsing, so backslash escapes do not stop
  those. ``markdown_text`` puts event data and URL values in an inline code span, where
  nothing of that applies; ``markdown_escape`` backslash-escapes every ASCII punctuation
  character, for names an admin typed (project names, messages about them) that should read
  as prose.
- Tables (``st.dataframe``), widget options and ``st.json`` show text as text already.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import pandas as pd

_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
_BACKTICKS = re.compile(r"`+")


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


def markdown_escape(value: object) -> str:
    """A string Streamlit's Markdown shows literally, on one line, except that a URL or an
    e-mail address in it becomes a link (see the module doc)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _LINE_BREAKS.sub(" ", str(value)))


def markdown_text(value: object) -> str:
    """Markdown that shows the string exactly as text (an inline code span, on one line)."""
    text = _LINE_BREAKS.sub(" ", str(value))
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    # CommonMark strips one space from each end of a code span that starts and ends with one:
    # the padding keeps backticks at the ends apart from the fence, and spaces as they are
    padded = text.startswith(("`", " ")) or text.endswith(("`", " "))
    pad = " " if padded else ""
    return f"{fence}{pad}{text}{pad}{fence}"
