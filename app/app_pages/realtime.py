"""Realtime: the last minutes of events_current (current to the last stored batch),
refreshed every few seconds."""

from __future__ import annotations

import streamlit as st

from app import charts
from app.page_context import current_project
from app.text import markdown_escape
from queries import realtime as q

REFRESH_S = 10

project = current_project()
st.title("Realtime")
st.caption(f"{markdown_escape(project.name)} · refreshes every {REFRESH_S} s")


@st.fragment(run_every=REFRESH_S)
def live() -> None:
    visitors = q.live_visitors(project.id)
    per_minute = q.events_per_minute(project.id)
    left, right = st.columns([1, 3])
    left.metric("Visitors in the last 5 minutes", charts.format_count(visitors))
    left.metric("Events in the last 30 minutes",
                charts.format_count(int(per_minute.pageviews.sum() + per_minute.other.sum())))
    long = per_minute.melt(id_vars="minute", value_vars=["pageviews", "other"],
                           var_name="kind", value_name="events")
    right.plotly_chart(charts.stacked_bars(long, "minute", "events", "kind"),
                       key="realtime.minutes")
    stream, sources = st.columns([3, 1])
    with stream:
        st.subheader("Live events")
        st.dataframe(q.live_stream(project.id), hide_index=True, width="stretch")
    with sources:
        st.subheader("Sources (30 min)")
        st.dataframe(q.live_sources(project.id), hide_index=True, width="stretch")


live()
