"""The per-day state marts hold the events created before their build's cutoff, and their
current views add exactly those created since (macros/current_days.sql, ADR 0043): no event is
counted twice or lost across runs, including one created after the cutoff but received long
before it (a device clock ahead), which only the next build's "days since the last cutoff"
picks up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from models_scenario import raw_view

PROJECT = "state-cutoff"  # no projects row: its days are UTC days
STATE_MARTS = ("daily_visitor_states", "daily_page_states", "daily_event_value_states")
REPROCESS_MINUTES = 30  # dbt_project.yml's var
VIEWS_ONLY = "field = 'event'"  # the value states' one row per event of a screen_view


def _figures(models: Any, relation: str) -> dict:
    """{day: (visitors, page views)} of a state relation's rows of PROJECT."""
    where = f"project_id = {{project:String}} and {VIEWS_ONLY if 'value' in relation else '1'}"
    rows = models.client.query(
        f"select day, groupBitmapMerge(visitors_state), sum(pageviews) "
        f"from {models.analytics}.{relation} where {where} group by day order by day",
        parameters={"project": PROJECT}).result_rows
    return {day: (int(visitors), int(views)) for day, visitors, views in rows}


def _cutoff(models: Any, mart: str) -> datetime:
    return models.client.query(
        f"select max(cutoff) from {models.analytics}.{mart}").result_rows[0][0]


def _run(models: Any) -> None:
    models.dbt("run", "--select", *(f"+{mart}_current" for mart in STATE_MARTS))


def test_marts_stop_at_their_cutoff_and_views_add_the_rest_exactly(models_warehouse: Any) -> None:
    models = models_warehouse
    # a past day, so that every time below lies before the runs start
    day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
    day_before, next_day = day - timedelta(days=1), day + timedelta(days=1)
    newest_receipt = day + timedelta(hours=10)
    models.insert_events([
        # the newest receipt, of an event of the day before: only that day's session is new
        # within reprocess_minutes of it, so only that day is recomputed for new events
        raw_view(PROJECT, "q", day_before + timedelta(hours=20), newest_receipt),
        raw_view(PROJECT, "y", day + timedelta(hours=8), day + timedelta(hours=8, minutes=10)),
        # created three hours after it was received: a device clock ahead
        raw_view(PROJECT, "x", day + timedelta(hours=12), day + timedelta(hours=9)),
    ])
    _run(models)

    # the cutoff is the newest receipt minus reprocess_minutes: y is in, x is after it
    for mart in STATE_MARTS:
        assert _cutoff(models, mart).replace(tzinfo=UTC) == newest_receipt \
            - timedelta(minutes=REPROCESS_MINUTES), mart
        assert _figures(models, mart) == {day_before.date(): (1, 1), day.date(): (1, 1)}, mart
        assert _figures(models, f"{mart}_current") == {day_before.date(): (1, 1),
                                                        day.date(): (2, 2)}, mart

    # a later receipt on the next day moves the cutoff past x; x's session has nothing new
    models.insert_events([raw_view(PROJECT, "z", next_day + timedelta(hours=13),
                                   next_day + timedelta(hours=13))])
    for mart in STATE_MARTS:  # before the run: the views count z from the raw rows
        assert _figures(models, f"{mart}_current") == {
            day_before.date(): (1, 1), day.date(): (2, 2), next_day.date(): (1, 1)}, mart
    _run(models)
    for mart in STATE_MARTS:
        # x's day was recomputed as a day of events after the last cutoff; z is after the new one
        assert _figures(models, mart) == {day_before.date(): (1, 1), day.date(): (2, 2)}, mart
        assert _figures(models, f"{mart}_current") == {
            day_before.date(): (1, 1), day.date(): (2, 2), next_day.date(): (1, 1)}, mart


def test_an_erased_newest_receipt_does_not_move_the_cutoff_back(models_warehouse: Any) -> None:
    """Erasing the device with the newest receipt lowers stg_events' newest received_at; the
    days it recomputes keep the cutoff the other rows were cut at, so the views lose nothing."""
    from lifecycle.privacy import Subject, erase

    models = models_warehouse
    project = "state-cutoff-erasure"
    # yesterday: later than every receipt of the test above, and before the runs start
    day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
    earlier = day - timedelta(days=2)
    models.insert_events([
        # received after the test above's events (a late one), so that this run takes it
        raw_view(project, "q", earlier + timedelta(hours=10), day + timedelta(hours=9)),
        raw_view(project, "b", day + timedelta(hours=10), day + timedelta(hours=10, minutes=5)),
        # the newest receipt, of a device erased below, on b's day
        raw_view(project, "n", day + timedelta(hours=10, minutes=30), day + timedelta(hours=12)),
    ])
    _run(models)

    def figures(relation: str) -> dict:
        rows = models.client.query(
            f"select day, groupBitmapMerge(visitors_state), sum(pageviews) "
            f"from {models.analytics}.{relation} where project_id = {{project:String}} "
            f"and {VIEWS_ONLY if 'value' in relation else '1'} group by day order by day",
            parameters={"project": project}).result_rows
        return {row_day: (int(visitors), int(views)) for row_day, visitors, views in rows}

    for mart in STATE_MARTS:
        assert figures(f"{mart}_current") == {earlier.date(): (1, 1), day.date(): (2, 2)}, mart

    # the erasure's dbt run, restricted to the state marts (this module seeds no funnels)
    erase(Subject(project, "device", "n"), settings=models.settings, client=models.client,
          dbt=lambda _args: _run(models))
    for mart in STATE_MARTS:
        # b's day was recomputed without n: b is in the mart or in the view's tail, not lost
        assert figures(f"{mart}_current") == {earlier.date(): (1, 1), day.date(): (1, 1)}, mart
        assert figures(mart) == {earlier.date(): (1, 1), day.date(): (1, 1)}, mart
