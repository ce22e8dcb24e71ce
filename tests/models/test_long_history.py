"""Ten years of imported history build into the marts, in a full build and in an incremental
one: a model's insert may touch a partition for every week (staging) or month (sessions) of
the accepted time range, far more than ClickHouse's default of 100 per insert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from models_scenario import Scenario

PROJECT = "long-history"
MONTHS = 121  # one more than ten years: past the default limit in months and in weeks
# the models that write the most partitions per insert (staging by week, sessions by month)
# and those between them, with their data tests
BUILD = ("--select", "+sessions", "+daily_metrics", "--indirect-selection", "cautious",
         "--exclude-resource-type", "unit_test")


def monthly_visits(scenario: Scenario, first_year: int, months: int, received: datetime) -> None:
    """One page view on the 15th of each month from January of ``first_year``, all imported
    (received) at ``received``."""
    for n in range(months):
        at = datetime(first_year + n // 12, n % 12 + 1, 15, 12, tzinfo=UTC)
        scenario.event(PROJECT, f"dev-{n % 7}", "screen_view", at, path="/history",
                       received_at=received)


def figures(models: Any) -> tuple[int, int, int]:
    """Sessions, their distinct months, and the page views of daily_metrics."""
    sessions, months = models.client.query(
        f"select count(), uniqExact(toYYYYMM(day)) from {models.analytics}.sessions "
        "where project_id = {p:String}", parameters={"p": PROJECT}).result_rows[0]
    views = models.client.query(
        f"select sum(pageviews) from {models.analytics}.daily_metrics "
        "where project_id = {p:String}", parameters={"p": PROJECT}).result_rows[0][0]
    return int(sessions), int(months), int(views)


def test_ten_years_of_history_reach_the_marts(models_warehouse: Any) -> None:
    models = models_warehouse
    now = datetime.now(UTC)
    models.insert_projects({PROJECT: "UTC"})
    history = Scenario()
    monthly_visits(history, 2010, MONTHS, now - timedelta(hours=2))
    models.insert_events(history.events)
    models.dbt("build", *BUILD, "--full-refresh")
    assert figures(models) == (MONTHS, MONTHS, MONTHS)

    # an import of the ten years before lands in the next incremental run
    first_import = len(history.events)  # one scenario: its ids stay distinct
    monthly_visits(history, 2000, MONTHS - 1, now - timedelta(minutes=5))
    models.insert_events(history.events[first_import:])
    models.dbt("build", *BUILD)
    assert figures(models) == (2 * MONTHS - 1, 2 * MONTHS - 1, 2 * MONTHS - 1)
