"""Staging's incremental read of the raw events skips what it need not read: the granules
received before its watermark (the raw table's received_at index, migration 0004)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any


def test_the_received_at_index_skips_granules_received_before_the_watermark(
    migrated: None, ch: Any
) -> None:
    from trackhouse.settings import get_settings

    raw = get_settings().raw_database
    project = f"staging-reads-{uuid.uuid4().hex[:8]}"
    [[index_type]] = ch.query(
        "select type from system.data_skipping_indices where database = {db:String} "
        "and table = 'events' and name = 'received_at_minmax'", parameters={"db": raw},
    ).result_rows
    assert index_type == "minmax"

    # A copy of the raw table (its index included) of its own: the shared one holds whatever
    # earlier tests received in the last hour, which the index rightly keeps.
    scratch = f"staging_reads_{uuid.uuid4().hex[:8]}"
    ch.command(f"create database {scratch}")
    try:
        ch.command(f"create table {scratch}.events as {raw}.events")
        # 40 days of one event a minute received as it happened, in parts of many granules
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
        ch.command(
            f"insert into {scratch}.events (id, project_id, name, device_id, created_at, "
            "received_at) select generateUUIDv4(number), {project:String}, 'screen_view', "
            "toString(number % 50), {start:DateTime64(3, 'UTC')} + toIntervalMinute(number), "
            "{start:DateTime64(3, 'UTC')} + toIntervalMinute(number) from numbers(57600)",
            parameters={"project": project, "start": start},
        )
        plan = "\n".join(row[0] for row in ch.query(
            f"explain indexes = 1 select id from {scratch}.events "
            "where received_at > {since:DateTime64(3, 'UTC')}",
            parameters={"since": datetime.now(UTC) - timedelta(hours=1)},
        ).result_rows)
    finally:
        ch.command(f"drop database if exists {scratch}")
    assert "received_at_minmax" in plan
    index_part = plan.split("received_at_minmax", 1)[1]
    selected, total = (int(n) for n in
                       index_part.split("Granules: ", 1)[1].split("\n", 1)[0].split("/"))
    assert total > 2 and selected < total / 2, plan
