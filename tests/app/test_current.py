"""The *_current views: events stored after the last dbt run count on the dashboards at once,
under staging's rules (bots and session events never, a retried delivery once), and a late
copy of an event the marts already hold is not counted again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dashboard_fixture as fd
from dashboard_fixture import DashboardData

from queries import events as event_queries
from queries import overview, realtime
from queries.base import EVENTS, mart, visitor_states
from queries.filters import Filter, Op
from queries.periods import Preset, preset_range

PROJECT = "dash-current"  # its own project: the other tests' figures stay put


def insert(rows: list[fd.Event], received_at: datetime | None = None) -> None:
    from warehouse.client import warehouse

    client = warehouse()
    try:
        table = "trackhouse.events"
        data = fd.rows(rows)
        if received_at is not None:  # a copy delivered again later
            data = [[*row[:6], received_at, *row[7:]] for row in data]
        client.insert(table, data, column_names=fd.COLUMNS)
    finally:
        client.close()


def test_events_stored_since_the_last_run_count_once(dashboard_data: DashboardData) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # "a few minutes ago" of today: never before midnight, where it would be yesterday's
    start = max(now - timedelta(minutes=12), now.replace(hour=0, minute=0, second=0))
    minute = (now - start) / 12  # a minute, or less just after midnight
    views = [fd.Event(PROJECT, "screen_view", device, start + (2 - n) * minute,
                      path=f"/p{n}", country="DE") for n, device in enumerate("abc")]
    signup = fd.Event(PROJECT, "signup", "a", start + 3 * minute, path="/p0",
                      properties={"plan": "pro"})
    ignored = [fd.Event(PROJECT, "screen_view", "crawler", start + 3 * minute,
                        path="/p0", is_bot=True),
               fd.Event(PROJECT, "session_start", "a", start + 2 * minute, path="/p0")]
    insert([*views, signup, *ignored])
    insert([views[0]], received_at=now)  # a retried delivery of the same event id

    today = preset_range(Preset.TODAY, "UTC")
    totals = overview.event_totals.__wrapped__(PROJECT, today)
    assert totals[totals.current.astype(bool)][["visitors", "pageviews"]].values.tolist() \
        == [[3, 3]]
    pages = overview.top_pages.__wrapped__(PROJECT, today)
    assert dict(zip(pages.path, pages.pageviews, strict=True)) == {"/p0": 1, "/p1": 1, "/p2": 1}
    month = preset_range(Preset.LAST_30_DAYS, "UTC")  # long enough for the value states
    for filters, expected in (((Filter("path", Op.IS, "/p0"),), [1, 1]),
                              ((Filter("prop:plan", Op.IS, "pro"),), [1, 0]),
                              ((Filter("country", Op.IS, "DE"),), [3, 3])):  # a scan
        assert (visitor_states(filters, month.days) is None) == (filters[0].field == "country")
        for period in (today, month):
            filtered = overview.event_totals.__wrapped__(PROJECT, period, filters)
            assert filtered[filtered.current.astype(bool)][["visitors", "pageviews"]].values \
                .tolist() == [expected], (filters, period)
    counts = event_queries.event_counts.__wrapped__(PROJECT, today)
    assert dict(zip(counts.name, counts.events, strict=True)) == {"signup": 1}
    assert realtime.live_visitors.__wrapped__(PROJECT, minutes=30) == 3


def test_a_late_copy_of_a_modelled_event_is_not_counted_again(
        dashboard_data: DashboardData) -> None:
    date_range = preset_range(Preset.LAST_30_DAYS, fd.PROJECT_ZONES[fd.SHOP])
    before = overview.event_totals.__wrapped__(fd.SHOP, date_range,
                                               (Filter("browser", Op.IS, "Safari"),))
    old = next(e for e in dashboard_data.events if e.project_id == fd.SHOP
               and e.browser == "Safari" and e.name == "screen_view"
               and e.created_at < dashboard_data.now - timedelta(days=2))
    copy = fd.Event(**{**old.__dict__, "id": old.id})
    insert([copy], received_at=datetime.now(UTC))
    after = overview.event_totals.__wrapped__(fd.SHOP, date_range,
                                              (Filter("browser", Op.IS, "Safari"),))
    assert after.values.tolist() == before.values.tolist()
    assert uuid.UUID(old.id)  # the copy kept the event's id


def test_a_projects_open_day_is_not_read_for_another_project(
        dashboard_data: DashboardData) -> None:
    """events_current's raw part reads only the queried project's rows: another project's
    traffic since the marts' cutoff costs its dashboards nothing."""
    from warehouse.client import warehouse

    client = warehouse()
    # the condition cache (ClickHouse 25.3 and later) skips granules a repeated condition
    # matched nothing in, which would change the rows a repeat reads
    uncached = ({"use_query_condition_cache": 0} if client.command(
        "select count() from system.settings where name = 'use_query_condition_cache'") else {})

    def rows_read(project: str) -> int:
        result = client.query(f"select count() from {mart(EVENTS)} "
                              "where project_id = {project:String}",
                              parameters={"project": project}, settings=uncached)
        return int(result.summary["read_rows"])

    now = datetime.now(UTC).replace(microsecond=0)
    busy = [fd.Event(PROJECT, "screen_view", f"busy-{n}", now - timedelta(seconds=n % 60),
                     path="/busy") for n in range(300)]
    # a project without events whose id sorts before every other: no granule of any part can
    # hold it, whatever merges run meanwhile, unless the query ignores its project
    quiet = "0-quiet"
    try:
        quiet_before, busy_before = rows_read(quiet), rows_read(PROJECT)
        insert(busy)  # a part of the raw table of its own, created after the cutoff
        quiet_after, busy_after = rows_read(quiet), rows_read(PROJECT)
    finally:
        client.close()
    assert busy_after >= busy_before + len(busy)  # its own project reads them
    assert quiet_after == quiet_before  # another project reads none of them
