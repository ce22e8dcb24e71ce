"""Funnels: those defined in dbt (seed ``funnels.csv``) and an ad-hoc builder over raw events."""

from __future__ import annotations

import streamlit as st

from app import charts
from app.page_context import analytics_page
from queries import events as event_queries
from queries import funnels as q

view = analytics_page("Funnels", granularity=False)
project, date_range = view.project.id, view.date_range


def show(frame) -> None:
    if frame.empty or not frame.visitors.iloc[0]:
        st.info("Nobody started this funnel in the range.")
        return
    st.plotly_chart(charts.funnel(frame), key=f"funnel.{id(frame)}")
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        "step": "Step", "event_name": "Event", "visitors": "Visitors",
        "conversion": st.column_config.NumberColumn("Conversion", format="percent"),
        "drop_off": "Dropped", "drop_off_rate": st.column_config.NumberColumn(
            "Drop-off", format="percent")})


defined, adhoc = st.tabs(["Defined funnels", "Build a funnel"])
with defined:
    names = q.defined_funnels(project)
    if not names:
        st.info("No funnels are defined for this project (dbt seed `funnels.csv`).")
    else:
        funnel = st.selectbox("Funnel", names, key="funnels.defined")
        st.caption("Counts are (visitor, day of step 1) pairs, as in the `funnel_steps` mart.")
        show(q.funnel_steps(project, date_range, funnel))
with adhoc:
    options = event_queries.event_names(project, date_range)
    steps = st.multiselect("Steps, in order", options, max_selections=q.MAX_STEPS,
                           key="funnels.steps")
    window = st.number_input("Window (seconds)", min_value=1, max_value=90 * 86400,
                             value=86400, step=3600, key="funnels.window")
    if len(steps) < 2:
        st.caption("Pick at least two steps.")
    else:
        show(q.adhoc_funnel(project, date_range, tuple(steps), int(window), view.filters))
