"""Overview: KPIs with their change, the time series against the previous period, breakdowns."""

from __future__ import annotations

import streamlit as st

from app import charts
from app.page_context import analytics_page
from app.queries import overview as q

view = analytics_page("Overview")
project, date_range, filters = view.project.id, view.date_range, view.filters
previous_range = date_range.previous()

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
                                  view.granularity), key="overview.series")


def breakdown_table(frame, label: str) -> None:
    if frame.empty:
        st.caption("No data for this range.")
        return
    st.dataframe(frame.rename(columns={"value": label, "path": label}), hide_index=True,
                 width="stretch", height=min(38 * (len(frame) + 1), 400),
                 column_config=charts.BREAKDOWN_COLUMNS)


def tile(title: str, choices: dict[str, str], key: str) -> str:
    """A tile's heading and its dimension picker; only the picked dimension is queried."""
    st.subheader(title)
    return st.segmented_control(title, list(choices), default=next(iter(choices)),
                                format_func=choices.get, key=key,
                                label_visibility="collapsed") or next(iter(choices))


left, right = st.columns(2)
with left:
    choice = tile("Pages", {"path": "Top pages", "entry_path": "Entry pages",
                            "exit_path": "Exit pages"}, "overview.pages")
    if choice == "path":
        breakdown_table(q.top_pages(project, date_range, filters), "Page")
    else:
        breakdown_table(q.session_breakdown(project, date_range, choice, filters), "Page")
with right:
    sources = {"referrer_name": "Referrers", "referrer_type": "Channels",
               "utm_source": "UTM source", "utm_medium": "UTM medium",
               "utm_campaign": "UTM campaign"}
    choice = tile("Sources", sources, "overview.sources")
    breakdown_table(q.session_breakdown(project, date_range, choice, filters), sources[choice])

left, right = st.columns(2)
with left:
    places = {"map": "Map", "country": "Countries", "region": "Regions", "city": "Cities"}
    choice = tile("Locations", places, "overview.places")
    if choice == "map":
        countries = q.session_breakdown(project, date_range, "country", filters, limit=250)
        st.plotly_chart(charts.world_map(countries), key="overview.map")
    else:
        breakdown_table(q.session_breakdown(project, date_range, choice, filters), places[choice])
    st.caption("[IP Geolocation by DB-IP](https://db-ip.com)")
with right:
    devices = {"browser": "Browsers", "os": "Operating systems", "device": "Devices"}
    choice = tile("Devices", devices, "overview.devices")
    breakdown_table(q.session_breakdown(project, date_range, choice, filters), devices[choice])
