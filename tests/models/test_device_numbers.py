"""int_device_numbers when a key holds two numbers, as two dbt runs at once could leave it: the
state marts join each event to one number (macros/current_days.sql, numbered), so no page view
or visitor is counted twice. test_marts checks the numbers themselves against the reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from models_scenario import raw_view

PROJECT = "device-numbers"  # no projects row: its days are UTC days
DAY = datetime(2026, 11, 2, tzinfo=UTC)


def _view(device: str, minute: int, received: datetime) -> dict:
    return raw_view(PROJECT, device, DAY + timedelta(hours=10, minutes=minute), received)


def test_a_key_numbered_twice_counts_each_page_view_once(models_warehouse: Any) -> None:
    models = models_warehouse
    numbers = f"{models.analytics}_intermediate.int_device_numbers"
    now = datetime.now(UTC).replace(microsecond=0)

    def day_row() -> tuple[int, int]:
        return models.client.query(
            f"select finalizeAggregation(visitors_state), pageviews "
            f"from {models.analytics}.daily_visitor_states "
            "where project_id = {project:String} and day = {day:Date}",
            parameters={"project": PROJECT, "day": DAY.date()}).result_rows[0]

    models.insert_events([_view("d1", 0, now - timedelta(minutes=50)),
                          _view("d1", 5, now - timedelta(minutes=50)),
                          _view("d2", 0, now - timedelta(minutes=50))])
    models.dbt("run", "--select", "+daily_visitor_states")
    assert day_row() == (2, 3)

    # d1's key numbered a second time, then d2 gains a view: the day is recomputed
    models.client.command(
        f"insert into {numbers} (device_key, device_number, project_id, device_id, "
        f"first_received_at) select device_key, (select max(device_number) from {numbers}) + 1, "
        f"project_id, device_id, first_received_at from {numbers} "
        "where project_id = {project:String} and device_id = 'd1'",
        parameters={"project": PROJECT})
    assert models.client.command(
        f"select count() from {numbers} where device_id = 'd1'") == 2
    models.insert_events([_view("d2", 20, now)])
    models.dbt("run", "--select", "+daily_visitor_states")
    assert day_row() == (2, 4)
