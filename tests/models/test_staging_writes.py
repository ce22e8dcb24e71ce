"""Staging's incremental run writes only what changed: ids already stored with the same
first-received copy are not rewritten, and the DELETE runs only when a stored id must be
replaced (macros/delete_insert.sql, docs/decisions/0014). test_marts compares the incremental
marts with a full refresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from models_scenario import raw_view


def _event(device: str, at: datetime, received: datetime) -> dict:
    return raw_view("staging-writes", device, at, received)


def test_only_new_or_changed_ids_are_written(models_warehouse: Any) -> None:
    models = models_warehouse
    staged = f"{models.analytics}_staging.stg_events"
    now = datetime.now(UTC).replace(microsecond=0)

    def mutations() -> int:
        return int(models.client.command(
            "select count() from system.mutations where database = {db:String} "
            "and table = 'stg_events'", parameters={"db": f"{models.analytics}_staging"}))

    def rows() -> list[tuple]:
        return models.client.query(
            f"select event_id, device_id, created_at, received_at, path from {staged} "
            "order by event_id").result_rows

    first = _event("d1", now - timedelta(minutes=20), now - timedelta(minutes=10))
    second = _event("d2", now - timedelta(minutes=15), now - timedelta(minutes=5))
    models.insert_events([first, second])
    models.dbt("run", "--select", "stg_events")
    assert len(rows()) == 2
    before = mutations()

    # a later copy of `second` (loses to the stored one) and a new id: nothing to delete
    third = _event("d3", now - timedelta(minutes=2), now - timedelta(minutes=1))
    models.insert_events([{**second, "received_at": second["received_at"] + timedelta(seconds=3),
                           "path": "/later-copy"}, third])
    models.dbt("run", "--select", "stg_events")
    assert mutations() == before
    assert len(rows()) == 3
    assert {row[4] for row in rows()} == {"/"}

    # a copy of `first` received before the stored one but stored only now: it wins, and the
    # stored row is deleted and replaced
    models.insert_events([{**first, "received_at": first["received_at"] - timedelta(seconds=1),
                           "path": "/earlier-copy"}])
    models.dbt("run", "--select", "stg_events")
    assert mutations() == before + 1
    assert len(rows()) == 3
    assert [row[4] for row in rows() if row[0] == first["id"]] == ["/earlier-copy"]
    assert {row[4] for row in rows() if row[0] != first["id"]} == {"/"}
