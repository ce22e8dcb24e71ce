"""Copy the projects into the warehouse's ``<raw_database>.projects`` (the models read each
project's name and time zone there).

``accounts`` queues every project change in an outbox in the change's own transaction;
``sync_projects`` drains it, and is the explicit step after a change (the CLI, the Admin
page, the demo), at every ``trackhouse up``, by ``trackhouse project sync`` and by Dagster's
schedule. A change made while the warehouse is down stays queued until one of them runs
(ADR 0027).
"""

from __future__ import annotations

import logging

from clickhouse_connect.driver.client import Client

from accounts import service
from accounts.db import session_scope
from trackhouse.settings import Settings, get_settings

log = logging.getLogger(__name__)

# the warehouse table's columns (warehouse/migrations), in the order of service.mirror_row
COLUMNS = ("id", "name", "domain", "timezone", "created_at", "updated_at", "is_deleted")


def sync_projects(*, everything: bool = False, client: Client | None = None,
                  settings: Settings | None = None) -> int:
    """Upsert the queued project changes (``everything``: every project as well) into the
    warehouse and drop them from the outbox; return the number of rows sent.

    Raises when the warehouse cannot take them; the outbox is then left as it was.
    """
    from warehouse.client import warehouse
    from warehouse.migrate import migrate

    settings = settings or get_settings()
    with session_scope(settings) as session:
        queued = service.queued_mirror(session)
        rows = {entry.project_id: service.mirror_row(entry) for entry in queued}
        if everything:
            rows.update((p.id, service.mirror_row(p)) for p in service.list_projects(session))
        if rows:
            own_client = client is None
            target = client or warehouse(settings)
            try:
                migrate(target, settings)  # idempotent; the table may not exist yet
                target.insert(f"{settings.raw_database}.projects",
                              [[row[c] for c in COLUMNS] for row in rows.values()],
                              column_names=list(COLUMNS))
            finally:
                if own_client:
                    target.close()
        service.forget_mirrored(session, queued)
    return len(rows)


def sync_projects_or_warn(settings: Settings | None = None) -> int | None:
    """``sync_projects`` for the step after a change: the change stands if the warehouse is
    down (it stays queued), so a failure is logged, not raised."""
    try:
        return sync_projects(settings=settings)
    except Exception as error:  # noqa: BLE001 - queued; the next sync takes it
        log.warning("project changes not copied to the warehouse yet (%s); they stay queued "
                    "for `trackhouse project sync`", error)
        return None
