"""Explore: every mart dbt built, with its docs, charted when it has a day, week or month
column and numeric columns. A new model in dbt_project/models/marts/ shows up here after the
pipeline's next run, without any Python."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.page_context import analytics_page
from queries import explore as q
from trackhouse.dbt_docs import docs_url

view = analytics_page("Explore", granularity=False, filters=False)
st.link_button("dbt docs: models, columns, tests and lineage", docs_url(),
               icon=":material/menu_book:")
marts = q.marts()
if marts is None:
    st.info("dbt's manifest has not been published yet: Dagster publishes it with the dbt docs "
            "site after its first build of the models (the `incremental_marts` job).")
    st.stop()
if not marts:
    st.info("The dbt project has no marts (models in `models/marts/`).")
    st.stop()

by_name = {mart.name: mart for mart in marts}
chartable = [mart.name for mart in marts if mart.chartable]
names = chartable + [name for name in by_name if name not in chartable]
name = st.selectbox(
    "Mart", names, key="explore.mart",
    format_func=lambda n: n if by_name[n].chartable else f"{n} (not charted)",
)
mart = by_name[name or names[0]]
if mart.description:
    st.markdown(mart.description)
if not mart.built:
    st.warning(f"`{mart.name}` is in the dbt project but not built in the warehouse yet.")
elif mart.chartable:
    # widget keys per mart: a kept choice of another mart's columns would not apply here
    left, middle, right = st.columns([1, 3, 1])
    time_column = left.selectbox("Period", mart.time_columns, key=f"explore.period.{mart.name}")
    measures = middle.multiselect("Columns", mart.numeric_columns,
                                  default=mart.numeric_columns[:2],
                                  key=f"explore.measures.{mart.name}")
    aggregate = right.selectbox("Aggregate", list(q.AGGREGATES),
                                key=f"explore.aggregate.{mart.name}")
    if measures and time_column and aggregate:
        frame = q.series(mart, time_column, tuple(measures), aggregate, view.project.id,
                         view.date_range)
        if frame.empty:
            st.info(f"`{mart.name}` has no rows for this project in this range.")
        else:
            dated = frame.assign(**{time_column: pd.to_datetime(frame[time_column])})
            st.line_chart(dated, x=time_column, y=measures)
            with st.expander("Data"):
                st.dataframe(frame, hide_index=True, width="stretch")
else:
    st.caption("Charted when a mart has a project_id, a day, week or month column (a Date) "
               "and numeric columns.")

st.subheader("Columns")
st.dataframe(
    pd.DataFrame([{"column": c.name, "type": c.data_type, "description": c.description}
                  for c in mart.columns], columns=["column", "type", "description"]),
    hide_index=True, width="stretch",
)
with st.expander(f"All marts ({len(marts)})"):
    st.dataframe(
        pd.DataFrame([{"mart": m.name, "charted": m.chartable, "description": m.description}
                      for m in marts], columns=["mart", "charted", "description"]),
        hide_index=True, width="stretch",
    )
