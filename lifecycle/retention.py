"""Per-project retention of raw events (``trackhouse project update --retention-days N``).

A project's period is kept in the metadata database (``projects.retention_days``; none: keep
forever). ``expire`` deletes the project's event rows older than the period from the raw
tables and their row-for-row copies in staging (every table with ``project_id`` and
``created_at`` there), with ClickHouse lightweight deletes: the rows vanish from every query at
once and leave the disk at the parts' next merge. The marts keep their aggregates. Dagster runs
``expire`` daily (``orchestration/lifecycle.py``); ``trackhouse retention run`` runs it now.

Why not TTL or dropping partitions (docs/decisions/0010-data-lifecycle.md): a monthly partition of
``events`` holds every project, so a partition can only be dropped once every project in it is
past its period, and a table TTL would write each project's period into the table's DDL (an
``ALTER ... MODIFY TTL`` on the largest table, rewriting parts, at every change, deleting only
when merges happen to run). A scheduled delete reads the periods when it runs: a change takes
effect at the next run, without DDL or downtime.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from lifecycle.tables import data_tables
from trackhouse.settings import Settings, get_settings
from warehouse.client import warehouse

log = logging.getLogger(__name__)

# wait until the rows are masked on every replica before returning
DELETE_SETTINGS = {"lightweight_deletes_sync": 2}


def periods(settings: Settings | None = None) -> dict[str, int]:
    """Project id -> retention in days, for the projects that have one."""
    from sqlalchemy import select

    from accounts.db import session_scope, upgrade
    from accounts.models import Project

    upgrade(settings)
    with session_scope(settings) as session:
        rows = session.execute(
            select(Project.id, Project.retention_days).where(Project.retention_days.is_not(None))
        ).all()
    return {project_id: int(days) for project_id, days in rows}


def expire(*, settings: Settings | None = None, client: Client | None = None,
           now: datetime | None = None, retention: dict[str, int] | None = None,
           progress: Callable[[str], None] = log.info) -> dict[str, int]:
    """Delete event rows older than their project's period; return rows deleted per table."""
    settings = settings or get_settings()
    retention = periods(settings) if retention is None else retention
    now = now or datetime.now(UTC)
    deleted: dict[str, int] = {}
    if not retention:
        return deleted
    own = client is None
    client = client or warehouse(settings)
    try:
        tables = [t for t in data_tables(client, settings)
                  if t.layer in ("raw", "staging") and t.has("project_id", "created_at")]
        for project_id, days in sorted(retention.items()):
            cutoff = now - timedelta(days=days)
            params = {"project": project_id,
                      "cutoff": cutoff.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]}
            where = ("project_id = {project:String} "
                     "and created_at < toDateTime64({cutoff:String}, 3, 'UTC')")
            for table in tables:
                [(count,)] = client.query(f"select count() from {table.ref} where {where}",
                                          parameters=params).result_rows
                if not count:
                    continue
                client.command(f"delete from {table.ref} where {where}", parameters=params,
                               settings=DELETE_SETTINGS)
                name = f"{table.database}.{table.name}"
                deleted[name] = deleted.get(name, 0) + int(count)
                progress(f"{project_id}: deleted {count} row(s) older than {days} day(s) "
                         f"from {name}")
    finally:
        if own:
            client.close()
    return deleted
