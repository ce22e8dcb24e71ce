"""The query layer against fixture figures computed in Python: exact range visitors (not sums
of buckets), events and properties, the ad-hoc funnel's windowFunnel semantics."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta

import dashboard_fixture as fd
from dashboard_fixture import DashboardData

from queries import events as event_queries
from queries import funnels, overview, retention
from queries.base import session_filter_sql, visitor_states
from queries.filters import Filter, Op
from queries.periods import Granularity, Preset, preset_range

RANGE = preset_range(Preset.LAST_30_DAYS, fd.PROJECT_ZONES[fd.SHOP])


def in_range(data: DashboardData) -> list[fd.Event]:
    first, after = fd.bounds(RANGE.start, RANGE.end, RANGE.tz)
    return [e for e in fd.counted(data.events, fd.SHOP) if first <= e.created_at < after]


def test_range_visitors_are_distinct_over_the_range_not_a_sum_of_days(
        dashboard_data: DashboardData) -> None:
    current, previous = overview.kpis(fd.SHOP, RANGE)
    series, previous_series = overview.timeseries(fd.SHOP, RANGE, Granularity.DAY)
    events = in_range(dashboard_data)
    assert current.visitors == len({e.device_id for e in events})
    assert series.visitors.sum() > current.visitors  # devices come back on several days
    assert series.pageviews.sum() == current.pageviews
    assert len(series) == RANGE.days and len(previous_series) == RANGE.days
    daily = Counter(e.created_at.astimezone(fd.ZoneInfo(RANGE.tz)).date() for e in events
                    if e.name == "screen_view")
    assert {b.date(): n for b, n in zip(series.bucket, series.pageviews, strict=True) if n} \
        == dict(daily)


def test_event_counts_and_properties(dashboard_data: DashboardData) -> None:
    events = [e for e in in_range(dashboard_data) if e.name != "screen_view"]
    counts = event_queries.event_counts(fd.SHOP, RANGE)
    assert dict(zip(counts.name, counts.events, strict=True)) == Counter(e.name for e in events)
    properties = event_queries.event_properties(fd.SHOP, RANGE, "signup")
    expected = Counter((k, v) for e in events if e.name == "signup"
                       for k, v in e.properties.items())
    assert dict(zip(zip(properties.key, properties.value, strict=True), properties.events,
                    strict=True)) == expected


def python_funnel(events: list[fd.Event], steps: list[str], window: timedelta) -> list[int]:
    """Devices reaching each step: steps in order, each strictly later, all within the window
    after one step-1 event (greedy earliest match is optimal for a chain)."""
    by_device: dict[str, list[fd.Event]] = defaultdict(list)
    for event in events:
        if event.name in steps:
            by_device[event.device_id].append(event)
    levels = []
    for device_events in by_device.values():
        device_events.sort(key=lambda e: e.created_at)
        best = 0
        for start in (e for e in device_events if e.name == steps[0]):
            level, last = 1, start.created_at
            for step in steps[1:]:
                nxt = next((e for e in device_events if e.name == step and e.created_at > last
                            and e.created_at <= start.created_at + window), None)
                if nxt is None:
                    break
                level, last = level + 1, nxt.created_at
            best = max(best, level)
        levels.append(best)
    return [sum(level >= k for level in levels) for k in range(1, len(steps) + 1)]


def test_adhoc_funnel_matches_window_funnel_semantics(dashboard_data: DashboardData) -> None:
    steps = ["screen_view", "signup", "purchase"]
    for window in (timedelta(minutes=10), timedelta(days=1)):
        frame = funnels.adhoc_funnel(fd.SHOP, RANGE, tuple(steps), int(window.total_seconds()))
        expected = python_funnel(in_range(dashboard_data), steps, window)
        assert frame.visitors.tolist() == expected
        assert frame.conversion.iloc[0] == 1.0
        assert frame.drop_off.tolist() == [0, expected[0] - expected[1], expected[1] - expected[2]]


def test_event_filters_keep_sessions_with_a_matching_event(dashboard_data: DashboardData) -> None:
    filters = (Filter("event", Op.IS, "purchase"),)
    current, _ = overview.kpis(fd.SHOP, RANGE, filters)
    expected = fd.expected_kpis(dashboard_data.events, fd.SHOP, RANGE.start, RANGE.end,
                                event_match=lambda e: e.name == "purchase")
    assert current.sessions == expected["sessions"] > 0
    assert current.visitors == expected["visitors"]
    assert current.pageviews == 0  # page views are events too: none is named "purchase"


def test_hourly_and_daily_series_equal_the_fixture(dashboard_data: DashboardData) -> None:
    """Closed days come from the metrics marts, today from raw events; both must agree with
    the events themselves, and a filtered series (always raw) too."""
    zone = fd.ZoneInfo(RANGE.tz)
    events = in_range(dashboard_data)
    for granularity, key in ((Granularity.DAY, "%Y-%m-%d 00"), (Granularity.HOUR, "%Y-%m-%d %H")):
        series, _ = overview.timeseries(fd.SHOP, RANGE, granularity)
        got = {f"{b:{key}}": (v, p) for b, v, p in zip(
            series.bucket, series.visitors, series.pageviews, strict=True) if v}
        devices: dict[str, set[str]] = defaultdict(set)
        views: Counter[str] = Counter()
        for event in events:
            bucket = f"{event.created_at.astimezone(zone):{key}}"
            devices[bucket].add(event.device_id)
            views[bucket] += event.name == "screen_view"
        assert got == {b: (len(d), views[b]) for b, d in devices.items()}
    filtered, _ = overview.timeseries(fd.SHOP, RANGE, Granularity.DAY,
                                      (Filter("browser", Op.IS, "Safari"),))
    assert filtered.pageviews.sum() == sum(e.name == "screen_view" and e.browser == "Safari"
                                           for e in events)


EVENT_FILTER_CASES = [  # (filters, session_match, event_match): path, name, property, together
    ((Filter("path", Op.CONTAINS, "DOCS"),), None, lambda e: "docs" in e.path),
    ((Filter("path", Op.IS_NOT, "/"),), None, lambda e: e.path != "/"),
    ((Filter("prop:plan", Op.IS, "pro"),), None, lambda e: e.properties.get("plan") == "pro"),
    ((Filter("event", Op.IS, "signup"),), None, lambda e: e.name == "signup"),
    # an event without the property matches: not answerable from the sessions' value keys
    ((Filter("prop:plan", Op.IS, ""),), None, lambda e: e.properties.get("plan", "") == ""),
    # one event must match every event filter: a signup with plan pro (not "a signup and a
    # purchase, which always has plan pro")
    ((Filter("event", Op.IS, "signup"), Filter("prop:plan", Op.IS, "pro")), None,
     lambda e: e.name == "signup" and e.properties.get("plan") == "pro"),
    ((Filter("browser", Op.IS, "Chrome"), Filter("path", Op.IS, "/pricing")),
     lambda e: e.browser == "Chrome", lambda e: e.path == "/pricing"),
]


# Event filters that the sessions' event_value_keys answer: one "is" on a name or property
ONE_VALUE_CASES = [(Filter("prop:plan", Op.IS, "pro"),), (Filter("event", Op.IS, "signup"),)]


# Filters the per-field day states answer (one event field) and filters that scan
# events_current: a property condition that keeps '' (events without the property), two fields.
VALUE_STATE_CASES = [
    (Filter("event", Op.IS, "signup"),),
    (Filter("path", Op.CONTAINS, "DOCS"),),
    (Filter("path", Op.IS_NOT, "/"), Filter("path", Op.IS_NOT, "/pricing")),
    (Filter("prop:plan", Op.IS, "pro"),),
]
SCAN_CASES = [
    (Filter("prop:plan", Op.IS_NOT, "pro"),),
    (Filter("event", Op.IS, "signup"), Filter("prop:plan", Op.IS, "pro")),
    (Filter("browser", Op.IS, "Chrome"), Filter("path", Op.IS, "/pricing")),
]


def event_match(filters: tuple[Filter, ...]) -> fd.Predicate:
    """The fixture events the filters keep, by the filter semantics (a missing property is '')."""
    def value(event: fd.Event, field: str) -> str:
        if field.startswith("prop:"):
            return event.properties.get(field.removeprefix("prop:"), "")
        return {"event": event.name, "path": event.path, "browser": event.browser}[field]

    def keeps(item: Filter, event: fd.Event) -> bool:
        have = value(event, item.field)
        if item.op is Op.IS:
            return have == item.value
        if item.op is Op.IS_NOT:
            return have != item.value
        return item.value.lower() in have.lower()

    return lambda e: all(keeps(item, e) for item in filters)


def test_event_figures_under_filters_equal_the_fixture_from_states_or_scan(
        dashboard_data: DashboardData) -> None:
    """Visitors and page views of the range and the previous period, and per day, under filters:
    from daily_event_value_states_current for one event field, from events_current otherwise;
    both equal the events themselves."""
    zone = fd.ZoneInfo(RANGE.tz)
    previous = RANGE.previous()
    for filters in VALUE_STATE_CASES + SCAN_CASES:
        assert (visitor_states(filters, RANGE.days) is not None) == \
            (filters in VALUE_STATE_CASES), filters
        assert visitor_states(filters, 7) is None, filters  # a week's figures scan
        match = event_match(filters)
        current, before = overview.kpis(fd.SHOP, RANGE, filters)
        for got, period in ((current, RANGE), (before, previous)):
            expected = fd.expected_kpis(dashboard_data.events, fd.SHOP, period.start, period.end,
                                        event_match=match)
            assert (got.visitors, got.pageviews) == \
                (expected["visitors"], expected["pageviews"]), (filters, period)
        assert current.visitors > 0, filters
        series, _ = overview.timeseries(fd.SHOP, RANGE, Granularity.DAY, filters)
        devices: dict[date, set[str]] = defaultdict(set)
        views: Counter[date] = Counter()
        for event in filter(match, in_range(dashboard_data)):
            day = event.created_at.astimezone(zone).date()
            devices[day].add(event.device_id)
            views[day] += event.name == "screen_view"
        got_days = {b.date(): (v, p) for b, v, p in zip(
            series.bucket, series.visitors, series.pageviews, strict=True) if v}
        assert got_days == {d: (len(s), views[d]) for d, s in devices.items()}, filters


def test_session_figures_and_breakdowns_under_event_filters(
        dashboard_data: DashboardData) -> None:
    """Sessions that contain a matching event (the sessions' contents arrays): the KPIs and
    the session breakdowns equal the fixture's sessions computed in Python."""
    zone = fd.ZoneInfo(RANGE.tz)
    for filters, session_match, event_match in EVENT_FILTER_CASES:
        assert ("has(event_value_keys" in session_filter_sql(filters).sql) == \
            (filters in ONE_VALUE_CASES), filters
        session_match = session_match or (lambda e: True)
        current, _ = overview.kpis(fd.SHOP, RANGE, filters)
        expected = fd.expected_kpis(dashboard_data.events, fd.SHOP, RANGE.start, RANGE.end,
                                    session_match=session_match, event_match=event_match)
        assert 0 < current.sessions == expected["sessions"], filters
        assert round(current.bounce_rate, 9) == round(expected["bounce_rate"], 9), filters
        assert round(current.avg_session_duration_s, 3) == \
            round(expected["avg_session_duration_s"], 3), filters
        started = [s for s in fd.sessions(dashboard_data.events, fd.SHOP)
                   if RANGE.start <= s[0].created_at.astimezone(zone).date() <= RANGE.end
                   and session_match(s[0]) and any(event_match(e) for e in s)]
        for dimension in ("browser", "entry_path"):
            frame = overview.session_breakdown(fd.SHOP, RANGE, dimension, filters, limit=50)
            assert breakdown_rows(frame) == expected_breakdown(started, dimension), (filters,
                                                                                     dimension)


def breakdown_rows(frame) -> dict[str, tuple[int, int]]:
    return {v: (int(n), int(s)) for v, n, s in zip(frame.value, frame.visitors, frame.sessions,
                                                   strict=True)}


def expected_breakdown(sessions: list[list[fd.Event]], dimension: str) -> dict[str, tuple]:
    """(visitors, sessions) per browser or entry path of the fixture's sessions, in Python."""
    devices: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter()
    for session in sessions:
        views = [e for e in session if e.name == "screen_view"]
        value = session[0].browser if dimension == "browser" else \
            (views[0].path if views else "")
        if value:
            devices[value].add(session[0].device_id)
            counts[value] += 1
    return {v: (len(d), counts[v]) for v, d in devices.items()}


def test_unfiltered_breakdowns_merge_the_rollup_into_the_sessions_figures(
        dashboard_data: DashboardData) -> None:
    """Without filters the breakdowns merge daily_session_states' day rows: equal to the
    fixture's sessions computed in Python, and to grouping the sessions mart itself (a filter
    every session meets takes that path) for every dimension."""
    zone = fd.ZoneInfo(RANGE.tz)
    started = [s for s in fd.sessions(dashboard_data.events, fd.SHOP)
               if RANGE.start <= s[0].created_at.astimezone(zone).date() <= RANGE.end]
    for dimension in ("browser", "entry_path"):
        frame = overview.session_breakdown.__wrapped__(fd.SHOP, RANGE, dimension, limit=50)
        assert breakdown_rows(frame) == expected_breakdown(started, dimension), dimension
    every_session = (Filter("country", Op.IS_NOT, "no such country"),)
    for dimension in overview.SESSION_DIMENSIONS:
        rolled = overview.session_breakdown.__wrapped__(fd.SHOP, RANGE, dimension, limit=1000)
        scanned = overview.session_breakdown.__wrapped__(fd.SHOP, RANGE, dimension,
                                                         every_session, limit=1000)
        assert len(rolled) > 0 and rolled.values.tolist() == scanned.values.tolist(), dimension


def python_retention(events: list[fd.Event], granularity: str,
                     first_session_match: fd.Predicate) -> list[tuple]:
    """(cohort, period, cohort_size, retained) of the visitors whose first session starts in
    RANGE and matches, by metrics.md: active on the project days with one of its events."""
    zone = fd.ZoneInfo(RANGE.tz)

    def day(event: fd.Event) -> date:
        return event.created_at.astimezone(zone).date()

    def monday(value: date) -> date:
        return value - timedelta(days=value.weekday())

    first: dict[str, list[fd.Event]] = {}
    for session in sorted(fd.sessions(events, fd.SHOP), key=lambda s: s[0].created_at):
        first.setdefault(session[0].device_id, session)
    retained: Counter[tuple] = Counter()
    for device, session in first.items():
        first_day = day(session[0])
        if not (RANGE.start <= first_day <= RANGE.end and first_session_match(session)):
            continue
        active = {day(e) for e in fd.counted(events, fd.SHOP) if e.device_id == device}
        if granularity == "day":
            cohort, periods = first_day, {(d - first_day).days for d in active}
        else:
            cohort = monday(first_day)
            periods = {(monday(d) - cohort).days // 7 for d in active}
        for period in periods:
            if period <= 12:
                retained[(cohort, period)] += 1
    return sorted((c, p, retained[(c, 0)], n) for (c, p), n in retained.items())


def cohort_rows(frame) -> list[tuple]:
    return [(c, int(p), int(s), int(r)) for c, p, s, r in zip(
        frame.cohort, frame.period, frame.cohort_size, frame.retained, strict=True)]


def test_retention_filters_keep_visitors_whose_first_session_matches(
        dashboard_data: DashboardData) -> None:
    cases = [  # (filters, the first session matches)
        ((Filter("browser", Op.IS, "Safari"),), lambda s: s[0].browser == "Safari"),
        ((Filter("path", Op.IS, "/pricing"),), lambda s: any(e.path == "/pricing" for e in s)),
        ((Filter("country", Op.IS, "DE"), Filter("event", Op.IS, "signup")),
         lambda s: s[0].country == "DE" and any(e.name == "signup" for e in s)),
    ]
    for granularity in ("day", "week"):
        everyone = (Filter("browser", Op.IS_NOT, "no such browser"),)
        assert cohort_rows(retention.cohorts(fd.SHOP, RANGE, granularity, filters=everyone)) \
            == cohort_rows(retention.cohorts(fd.SHOP, RANGE, granularity))  # = the mart
        for filters, match in cases:
            frame = retention.cohorts(fd.SHOP, RANGE, granularity, filters=filters)
            expected = python_retention(dashboard_data.events, granularity, match)
            assert len(expected) > 1 and cohort_rows(frame) == expected, (granularity, filters)
            assert all(frame.rate == frame.retained / frame.cohort_size)
