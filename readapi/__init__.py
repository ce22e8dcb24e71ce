"""The read API's plain functions (OpenPanel's export, Plausible's Stats API v2 subset), each
a function of an authenticated project and a request's parameters that answers JSON-ready
data or raises ``ReadApiError``. Every figure is read from dbt relations with the dashboards'
own SQL fragments (queries/base.py), never from raw tables (docs/decisions/0015)."""
