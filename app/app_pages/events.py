"""Events: custom events, their trend and their properties."""

from __future__ import annotations

import streamlit as st

from app import charts
from app.page_context import analytics_page
from queries import events as q

view = analytics_page("Events")
project, date_range, filters = view.project.id, view.date_range, view.filters

counts = q.event_counts(project, date_range, filters)
if counts.empty:
    st.info("No custom events in this range.")
    st.stop()

st.dataframe(counts, hide_index=True, width="stretch",
             column_config={"name": "Event", "events": "Occurrences", "visitors": "Visitors"})
chosen = st.multiselect("Trend of", counts.name.tolist(), default=counts.name.tolist()[:5],
                        key="events.trend")
if chosen:
    trend = q.event_trend(project, date_range, view.granularity, tuple(chosen), filters)
    st.plotly_chart(charts.stacked_bars(trend, "bucket", "events", "name"), key="events.chart")

st.subheader("Properties")
name = st.selectbox("Event", counts.name.tolist(), key="events.properties")
properties = q.event_properties(project, date_range, name, filters)
if properties.empty:
    st.caption("This event carries no properties in this range.")
else:
    st.dataframe(properties, hide_index=True, width="stretch")
