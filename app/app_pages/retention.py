"""Retention: cohorts by first visit, the share that came back N days or weeks later.

Filters keep the visitors whose first session matches them."""

from __future__ import annotations

import streamlit as st

from app import charts
from app.page_context import analytics_page
from queries import retention as q

view = analytics_page("Retention", granularity=False)
granularity = st.segmented_control("Cohorts by", list(q.GRANULARITIES), default="day",
                                   format_func=str.capitalize, key="retention.granularity") or "day"
if view.filters:
    st.caption("Cohorts of the visitors whose first session matches the filters.")
frame = q.cohorts(view.project.id, view.date_range, granularity, filters=view.filters)
if frame.empty:
    st.info("No cohorts start in this range.")
else:
    st.plotly_chart(charts.retention_heatmap(frame, granularity), key="retention.heatmap")
    with st.expander("Table"):
        st.dataframe(frame, hide_index=True, width="stretch")
