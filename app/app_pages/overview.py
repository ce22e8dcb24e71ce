"""Overview: KPIs with their change, the time series against the previous period, breakdowns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from app import charts
from app.page_context import analytics_page
from queries import overview as q
from queries.periods import bucket_in_progress

# The breakdown tiles: key -> (title, {dimension: tab label}); the first dimension is the
# default. "path" is top pages (page views), "map" the country map; the rest are dimensions
# of the sessions mart.
TILES = {
    "overview.pages": ("Pages", {"path": "Top pages", "entry_path": "Entry pages",
                                 "exit_path": "Exit pages"}),
    "overview.sources": ("Sources", {"referrer_name": "Referrers", "referrer_type": "Channels",
                                     "utm_source": "UTM source", "utm_medium": "UTM medium",
                                     "utm_campaign": "UTM campaign"}),
    "overview.places": ("Locations", {"map": "Map", "country": "Countries", "region": "Regions",
                                      "city": "Cities"}),
    "overview.devices": ("Devices", {"browser": "Browsers", "os": "Operating systems",
                                     "device": "Devices"}),
}
MAP_COUNTRIES = 250

view = analytics_page("Overview")
project, date_range, filters = view.project.id, view.date_range, view.filters
previous_range = date_range.previous()


def picked(key: str) -> str:
    """The dimension a tile shows (its picker's value from the last run, else the default)."""
    choices = TILES[key][1]
    value = st.session_state.get(key)
    return value if value in choices else next(iter(choices))


def tile_query(dimension: str) -> tuple[Callable[..., pd.DataFrame], tuple[Any, ...]]:
    if dimension == "path":
        return q.top_pages, (project, date_range, filters)
    if dimension == "map":
        return q.session_breakdown, (project, date_range, "country", filters, MAP_COUNTRIES)
    return q.session_breakdown, (project, date_range, dimension, filters)


current, previous = q.kpis(project, date_range, filters)
cards = charts.KPI_CARDS
for column, (label, field, fmt, colour) in zip(st.columns(len(cards)), cards, strict=True):
    now, before = getattr(current, field), getattr(previous, field)
    column.metric(label, fmt(now), delta=charts.change(now, before), delta_color=colour,
                  help=f"Previous period ({previous_range.start} – {previous_range.end}): "
                       f"{fmt(before)}")

metric = st.segmented_control("Chart", ["visitors", "pageviews"], default="visitors",
                              format_func=lambda m: "Visitors" if m == "visitors" else "Page views",
                              key="overview.metric") or "visitors"
series, previous_series = q.timeseries(project, date_range, view.granularity, filters)
st.plotly_chart(charts.timeseries(series, previous_series, metric,
                                  "Visitors" if metric == "visitors" else "Page views",
                                  view.granularity,
                                  bucket_in_progress(view.granularity, date_range.tz)),
                key="overview.series")


def show_tile(key: str) -> None:
    """A tile's heading, its dimension picker, and the picked dimension's table or map."""
    title, choices = TILES[key]
    st.subheader(title)
    dimension = st.segmented_control(title, list(choices), default=picked(key),
                                     format_func=lambda d: choices[d], key=key,
                                     label_visibility="collapsed") or next(iter(choices))
    function, args = tile_query(dimension)
    frame = function(*args)
    if dimension == "map":
        st.plotly_chart(charts.world_map(frame), key="overview.map", config=charts.MAP_CONFIG)
    elif frame.empty:
        st.caption("No data for this range.")
    else:
        label = choices[dimension].removesuffix("s")
        st.dataframe(frame.rename(columns={"value": label, "path": label}), hide_index=True,
                     width="stretch", height=min(38 * (len(frame) + 1), 400),
                     column_config=charts.BREAKDOWN_COLUMNS)
    if key == "overview.places":
        st.caption("[IP Geolocation by DB-IP](https://db-ip.com)")


for row in (("overview.pages", "overview.sources"), ("overview.places", "overview.devices")):
    for column, key in zip(st.columns(2), row, strict=True):
        with column:
            show_tile(key)
