"""Overview: KPIs with their change, the time series against the previous period, breakdowns."""

from __future__ import annotations

import streamlit as st

from app import charts
from app.page_context import analytics_page
from app.queries import overview as q

view = analytics_page("Overview")
project, date_range, filters = view.project.id, view.date_range, view.filters
previous_range = date_range.previous()

current = q.kpis(project, date_range, filters)
previous = q.kpis(project, previous_range, filters)

cards = [
    ("Visitors", "visitors", charts.format_count, "normal"),
    ("Sessions", "sessions", charts.format_count, "normal"),
    ("Page views", "pageviews", charts.format_count, "normal"),
    ("Bounce rate", "bounce_rate", charts.format_rate, "inverse"),
    ("Avg. session", "avg_session_duration_s", charts.format_duration, "normal"),
    ("Views / session", "views_per_session", charts.format_ratio, "normal"),
]
for column, (label, field, fmt, colour) in zip(st.columns(len(cards)), cards, strict=True):
    now, before = getattr(current, field), getattr(previous, field)
    column.metric(label, fmt(now), delta=charts.change(now, before), delta_color=colour,
                  help=f"Previous period ({previous_range.start} – {previous_range.end}): "
                       f"{fmt(before)}")

metric = st.segmented_control("Chart", ["visitors", "pageviews"], default="visitors",
                              format_func=lambda m: "Visitors" if m == "visitors" else "Page views",
                              key="overview.metric") or "visitors"
series = q.timeseries(project, date_range, view.granularity, filters)
previous_series = q.timeseries(project, previous_range, view.granularity, filters)
st.plotly_chart(charts.timeseries(series, previous_series, metric,
                                  "Visitors" if metric == "visitors" else "Page views",
                                  view.granularity), key="overview.series")


def breakdown_table(frame, label: str) -> None:
    if frame.empty:
        st.caption("No data for this range.")
        return
    st.dataframe(frame.rename(columns={"value": label, "path": label}), hide_index=True,
                 width="stretch", height=min(38 * (len(frame) + 1), 400))


left, right = st.columns(2)
with left:
    st.subheader("Pages")
    pages, entry, exit_ = st.tabs(["Top pages", "Entry pages", "Exit pages"])
    with pages:
        breakdown_table(q.top_pages(project, date_range, filters), "Page")
    with entry:
        breakdown_table(q.session_breakdown(project, date_range, "entry_path", filters),
                        "Entry page")
    with exit_:
        breakdown_table(q.session_breakdown(project, date_range, "exit_path", filters), "Exit page")
with right:
    st.subheader("Sources")
    tabs = st.tabs(["Referrers", "Channels", "UTM source", "UTM medium", "UTM campaign"])
    dimensions = ["referrer_name", "referrer_type", "utm_source", "utm_medium", "utm_campaign"]
    labels = ["Referrer", "Channel", "Source", "Medium", "Campaign"]
    for tab, dimension, label in zip(tabs, dimensions, labels, strict=True):
        with tab:
            breakdown_table(q.session_breakdown(project, date_range, dimension, filters), label)

left, right = st.columns(2)
with left:
    st.subheader("Locations")
    world, countries, regions, cities = st.tabs(["Map", "Countries", "Regions", "Cities"])
    country_frame = q.session_breakdown(project, date_range, "country", filters, limit=250)
    with world:
        st.plotly_chart(charts.world_map(country_frame), key="overview.map")
    with countries:
        breakdown_table(country_frame.head(10), "Country")
    with regions:
        breakdown_table(q.session_breakdown(project, date_range, "region", filters), "Region")
    with cities:
        breakdown_table(q.session_breakdown(project, date_range, "city", filters), "City")
    st.caption("[IP Geolocation by DB-IP](https://db-ip.com)")
with right:
    st.subheader("Devices")
    tabs = st.tabs(["Browsers", "Operating systems", "Devices"])
    for tab, dimension, label in zip(tabs, ["browser", "os", "device"],
                                     ["Browser", "OS", "Device"], strict=True):
        with tab:
            breakdown_table(q.session_breakdown(project, date_range, dimension, filters), label)
