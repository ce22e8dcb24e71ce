"""The query layer: filters, periods and the SQL of every figure, over dbt relations only.

The dashboards, the read API (in the collector process) and the alerts (in Dagster) share it,
so it imports no Streamlit: the dashboards plug their cache in (``queries.cache.use``).
"""
