"""Questions of the overview page: KPIs, the time series, and the breakdown tiles.

Table decider: visitors and page views are event figures: exact distinct devices over the
range, current to the last flushed batch, merged from the per-day states of the
daily_visitor_states / daily_page_states marts for closed days and from raw events for the
open ones (raw events only under filters); sessions, bounce rate and durations are session
figures and come from the ``sessions`` mart (``session_contents`` under event-level filters).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
import streamlit as st

from app.filters import Filter
from app.periods import BUCKET_SQL, DateRange, Granularity, today_in
from app.queries.base import (
    DISTINCT_DEVICES,
    EVENTS_IN_RANGE,
    MART_TTL_S,
    PAGE_VIEW,
    RAW_TTL_S,
    SESSIONS_IN_RANGE,
    event_filter_sql,
    mart,
    range_params,
    raw_table,
    run,
    session_source,
)

Filters = tuple[Filter, ...]

# Breakdown dimensions of the sessions mart (whitelist: the key picks a fixed column).
SESSION_DIMENSIONS = {
    "entry_path": "entry_path",
    "exit_path": "exit_path",
    "referrer_name": "if(referrer_name = '', if(referrer = '', '(direct)', domain(referrer)), "
                     "referrer_name)",
    "referrer_type": "if(referrer_type = '', '(none)', referrer_type)",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "country": "country",
    "region": "concat(country, ' · ', region)",
    "city": "concat(country, ' · ', city)",
    "browser": "browser",
    "os": "os",
    "device": "device",
}
# Dimensions whose empty value means "not set" and is left out of the tile.
_SKIP_EMPTY = {"utm_source", "utm_medium", "utm_campaign", "entry_path", "exit_path", "region",
               "city"}


@dataclass(frozen=True)
class Kpis:
    visitors: int
    sessions: int
    pageviews: int
    bounce_rate: float
    avg_session_duration_s: float
    views_per_session: float


def _span_params(project_id: str, date_range: DateRange) -> dict[str, Any]:
    """Parameters of one scan over the previous period and the range together; rows at or
    after ``current_start`` (``current_day``) belong to the range."""
    span = DateRange(date_range.previous().start, date_range.end, date_range.tz)
    current_start, _ = date_range.utc_bounds()
    return {**range_params(project_id, span), "current_start": current_start,
            "current_day": date_range.start}


# The first project day whose figures come from raw events rather than a state mart: today,
# or an earlier day when dbt has not caught up (the local day of the mart's newest received_at,
# which its last run may have read only in part).
# A project the mart has no row of yet reads raw events only (open from 1970-01-01).
_OPEN_DAY = """least({{today:Date}}, (
    select if(count() = 0, toDate(0), toDate(max(last_received_at), {{tz:String}}))
    from {mart} where project_id = {{project:String}}))"""
# Raw events from the first open day on (and inside the range).
_OPEN_EVENTS = """created_at >= greatest({{start:DateTime64(3, 'UTC')}},
    toDateTime64(toDateTime({open_day}, {{tz:String}}), 3, 'UTC'))"""


def _merged_params(project_id: str, date_range: DateRange) -> dict[str, Any]:
    return {**_span_params(project_id, date_range), "today": today_in(date_range.tz)}


@st.cache_data(ttl=RAW_TTL_S, show_spinner=False)
def event_totals(project_id: str, date_range: DateRange, filters: Filters = ()) -> pd.DataFrame:
    """Distinct visitors and page views of the range and of the previous period: a range's
    visitors are the distinct devices of the whole range (exact and current), never a sum of
    days. Rows: (current: 1 for the range, 0 before, visitors, pageviews).

    Table decider: without filters, closed days come from the daily_visitor_states mart (one
    distinct-device state per day, merged) and only the open days from raw events, merged in
    one query; filters read raw events (the mart has no per-event dimensions).
    """
    if not filters:
        return _merged_event_totals(project_id, date_range)
    where = event_filter_sql(filters)
    return run(
        f"""select created_at >= {{current_start:DateTime64(3, 'UTC')}} as current,
               {DISTINCT_DEVICES} as visitors, countIf(name = '{PAGE_VIEW}') as pageviews
        from {raw_table('events')}
        where {EVENTS_IN_RANGE} and {where.sql}
        group by current order by current""",
        {**_span_params(project_id, date_range), **where.params},
        columns=("current", "visitors", "pageviews"),
    )


def _merged_event_totals(project_id: str, date_range: DateRange) -> pd.DataFrame:
    return _merge_visitor_states(
        "daily_visitor_states", "current", "day >= {current_day:Date}",
        "created_at >= {current_start:DateTime64(3, 'UTC')}", "1", "order by current",
        _merged_params(project_id, date_range))


def _merge_visitor_states(states_mart: str, key: str, mart_key: str, raw_key: str,
                          raw_condition: str, order: str, params: dict[str, Any]) -> pd.DataFrame:
    """Exact distinct visitors and page views per ``key``: the per-day states of
    ``states_mart`` for the closed days merged with states computed from raw events for the
    open ones, in one query (``mart_key`` / ``raw_key`` compute the key on either side)."""
    states = mart(states_mart)
    return run(
        f"""with {_OPEN_DAY.format(mart=states)} as open_day
        select {key}, uniqExactMerge(visitors_state) as visitors,
               sum(part_pageviews) as pageviews
        from (
            select {mart_key} as {key}, visitors_state, pageviews as part_pageviews
            from {states}
            where {SESSIONS_IN_RANGE} and day < open_day
            union all
            select {raw_key} as {key},
                   uniqExactState(cityHash64(device_id)) as visitors_state,
                   countIf(name = '{PAGE_VIEW}') as part_pageviews
            from {raw_table('events')}
            where {EVENTS_IN_RANGE} and {raw_condition}
              and {_OPEN_EVENTS.format(open_day='open_day')}
            group by {key}
        )
        group by {key} {order}""",
        params,
        columns=(key, "visitors", "pageviews"),
    )


def _raw_series(project_id: str, date_range: DateRange, granularity: Granularity,
                filters: Filters, split: DateRange) -> pd.DataFrame:
    """Visitors and page views per bucket of ``date_range`` from raw events; ``current`` says
    whether a row lies in ``split`` (the range the user chose)."""
    where = event_filter_sql(filters)
    bucket = BUCKET_SQL[granularity].format(column="created_at")
    return run(
        f"""select created_at >= {{current_start:DateTime64(3, 'UTC')}} as current,
               toString({bucket}) as bucket,
               {DISTINCT_DEVICES} as visitors, countIf(name = '{PAGE_VIEW}') as pageviews
        from {raw_table('events')}
        where {EVENTS_IN_RANGE} and {where.sql}
        group by current, bucket order by current, bucket""",
        {**range_params(project_id, date_range), **where.params,
         "current_start": split.utc_bounds()[0]},
        columns=("current", "bucket", "visitors", "pageviews"),
    )


def _mart_series(project_id: str, date_range: DateRange, granularity: Granularity,
                 split: DateRange) -> pd.DataFrame:
    """The same figures from the daily / hourly metrics marts (complete project days)."""
    if granularity is Granularity.HOUR:
        source, bucket = mart("hourly_metrics"), "toDateTime(day, 'UTC') + toIntervalHour(hour)"
    else:
        source, bucket = mart("daily_metrics"), "toDateTime(day, 'UTC')"
    return run(
        f"""select day >= {{current_day:Date}} as current, toString({bucket}) as bucket,
               visitors, pageviews
        from {source}
        where {SESSIONS_IN_RANGE} order by current, bucket""",
        {**range_params(project_id, date_range), "current_day": split.start},
        columns=("current", "bucket", "visitors", "pageviews"),
    )


@st.cache_data(ttl=RAW_TTL_S, show_spinner=False)
def event_series(project_id: str, date_range: DateRange, granularity: Granularity,
                 filters: Filters = ()) -> pd.DataFrame:
    """Visitors and page views per bucket of the range and of the previous period.

    Table decider: visitors per day (or hour) are exact in the daily / hourly metrics marts,
    so without filters the project days before today come from there (a few hundred rows)
    and only today, which the marts may not have caught up with, from raw events. Filters,
    weeks and months (whose distinct visitors no daily row can give) read raw events.
    Rows: (current, bucket as local wall-clock text, visitors, pageviews).
    """
    span = DateRange(date_range.previous().start, date_range.end, date_range.tz)
    if filters or granularity not in (Granularity.HOUR, Granularity.DAY):
        return _raw_series(project_id, span, granularity, filters, date_range)
    today = today_in(date_range.tz)
    parts = []
    if span.start < today:
        closed = DateRange(span.start, min(span.end, today - timedelta(days=1)), span.tz)
        parts.append(_mart_series(project_id, closed, granularity, date_range))
    if span.end >= today:
        open_days = DateRange(max(span.start, today), span.end, span.tz)
        parts.append(_raw_series(project_id, open_days, granularity, (), date_range))
    return pd.concat(parts, ignore_index=True)


@st.cache_data(ttl=MART_TTL_S, show_spinner=False)
def session_figures(project_id: str, date_range: DateRange,
                    filters: Filters = ()) -> pd.DataFrame:
    """Sessions started in the range and in the previous period, their bounces and total
    duration (one scan of the sessions mart, or of session_contents under event-level
    filters: ``session_source``). Rows: (current, sessions, bounces, duration_s)."""
    source, where = session_source(filters)
    return run(
        f"""select day >= {{current_day:Date}} as current, count() as sessions,
               countIf(is_bounce) as bounces, sum(toFloat64(duration_s)) as duration_s
        from {source}
        where {SESSIONS_IN_RANGE} and {where.sql}
        group by current order by current""",
        {**_span_params(project_id, date_range), **where.params},
        columns=("current", "sessions", "bounces", "duration_s"),
    )


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _row(frame: pd.DataFrame, current: bool) -> dict[str, Any]:
    rows = frame[frame["current"].astype(bool) == current]
    return {} if rows.empty else rows.iloc[0].to_dict()


def kpis(project_id: str, date_range: DateRange, filters: Filters = ()) -> tuple[Kpis, Kpis]:
    """The KPIs of the range and of the previous period."""
    totals = event_totals(project_id, date_range, filters)
    sessions = session_figures(project_id, date_range, filters)
    result = []
    for current in (True, False):
        event_row, session_row = _row(totals, current), _row(sessions, current)
        count = int(session_row.get("sessions", 0))
        pageviews = int(event_row.get("pageviews", 0))
        result.append(Kpis(
            visitors=int(event_row.get("visitors", 0)),
            sessions=count,
            pageviews=pageviews,
            bounce_rate=_ratio(session_row.get("bounces", 0), count),
            avg_session_duration_s=_ratio(session_row.get("duration_s", 0.0), count),
            views_per_session=_ratio(pageviews, count),
        ))
    return result[0], result[1]


def timeseries(project_id: str, date_range: DateRange, granularity: Granularity,
               filters: Filters = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Visitors and page views per bucket of the range and of the previous period, every
    bucket present (zeros filled)."""
    events = event_series(project_id, date_range, granularity, filters)
    series = []
    for current, period in ((True, date_range), (False, date_range.previous())):
        rows = events[events["current"].astype(bool) == current]
        frame = rows[["bucket", "visitors", "pageviews"]].assign(
            bucket=pd.to_datetime(rows["bucket"]))
        full = pd.DataFrame({"bucket": period.buckets(granularity)})
        merged = full.merge(frame, on="bucket", how="left").fillna(0)
        series.append(merged.astype({"visitors": "int64", "pageviews": "int64"}))
    return series[0], series[1]


@st.cache_data(ttl=RAW_TTL_S, show_spinner=False)
def top_pages(project_id: str, date_range: DateRange, filters: Filters = (),
              limit: int = 10) -> pd.DataFrame:
    """Paths by page views, with their distinct visitors over the range.

    Table decider as in ``event_totals``: without filters, closed days come from the
    daily_page_states mart (merged per path) and the open days from raw events."""
    if not filters:
        return _merged_top_pages(project_id, date_range, limit)
    where = event_filter_sql(filters)
    return run(
        f"""select path, {DISTINCT_DEVICES} as visitors, count() as pageviews
        from {raw_table('events')}
        where {EVENTS_IN_RANGE} and name = '{PAGE_VIEW}' and {where.sql}
        group by path order by pageviews desc, path limit {{limit:UInt32}}""",
        {**range_params(project_id, date_range), **where.params, "limit": limit},
        columns=("path", "visitors", "pageviews"),
    )


def _merged_top_pages(project_id: str, date_range: DateRange, limit: int) -> pd.DataFrame:
    return _merge_visitor_states(
        "daily_page_states", "path", "path", "path", f"name = '{PAGE_VIEW}'",
        "order by pageviews desc, path limit {limit:UInt32}",
        {**range_params(project_id, date_range), "today": today_in(date_range.tz),
         "limit": limit})


@st.cache_data(ttl=MART_TTL_S, show_spinner=False)
def session_breakdown(project_id: str, date_range: DateRange, dimension: str,
                      filters: Filters = (), limit: int = 10) -> pd.DataFrame:
    """Visitors and sessions per value of one session dimension (the sessions mart, or
    session_contents under event-level filters: ``session_source``)."""
    expression = SESSION_DIMENSIONS[dimension]  # KeyError for anything off the whitelist
    source, where = session_source(filters)
    skip_empty = f"and {dimension} != ''" if dimension in _SKIP_EMPTY else ""
    params: dict[str, Any] = {**range_params(project_id, date_range), **where.params,
                              "limit": limit}
    return run(
        f"""select {expression} as value, {DISTINCT_DEVICES} as visitors, count() as sessions,
               round(avg(is_bounce), 4) as bounce_rate
        from {source}
        where {SESSIONS_IN_RANGE} {skip_empty} and {where.sql}
        group by value order by visitors desc, sessions desc, value limit {{limit:UInt32}}""",
        params,
        columns=("value", "visitors", "sessions", "bounce_rate"),
    )
