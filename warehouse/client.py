"""The one way Trackhouse code reaches ClickHouse.

Every process (collector worker, dbt, Dagster, Streamlit, tests) talks to the warehouse over
ClickHouse's HTTP interface, either to the embedded endpoint (``trackhouse warehouse``) or to a
real ClickHouse server named by ``TRACKHOUSE_CLICKHOUSE_URL``. No other module builds its own
client.
"""

from __future__ import annotations

from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from trackhouse.settings import Settings, get_settings
from warehouse import cluster


def warehouse(
    settings: Settings | None = None, *, database: str | None = None, **kwargs: Any
) -> Client:
    """Return a clickhouse-connect client configured from the Trackhouse settings.

    ``database`` defaults to ``default`` (the raw database may not exist before
    ``migrate``); extra keyword arguments go to ``clickhouse_connect.get_client``
    (e.g. ``compress``, ``settings``, ``session_id``).
    """
    settings = settings or get_settings()
    endpoint = settings.clickhouse_endpoint
    kwargs.setdefault("connect_timeout", 5)
    kwargs.setdefault("send_receive_timeout", 300)
    # Trackhouse processes are many short-lived callers; a per-client session would pin them to
    # one server connection and serialise their queries, so sessions are opt-in.
    kwargs.setdefault("autogenerate_session_id", False)
    if settings.clickhouse_cluster:  # inserts answer once every shard stored its rows (0019)
        kwargs["settings"] = cluster.INSERT_SETTINGS | (kwargs.get("settings") or {})
    return clickhouse_connect.get_client(
        host=endpoint.host,
        port=endpoint.port,
        secure=endpoint.secure,
        username=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        database=database if database is not None else "default",
        **kwargs,
    )
