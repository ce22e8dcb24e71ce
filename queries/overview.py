"""Questions of the overview page: KPIs, the time series, and the breakdown tiles.

Table decider: visitors and page views are event figures: exact distinct devices over the
range, current to the last stored batch. Without filters they merge the per-day states of the
daily_visitor_states_current / daily_page_states_current views (the marts' closed days plus the
open days dbt has not taken yet), and under filters on one event field (event name, path or one
property) over more than a week those of daily_event_value_states_current; under other filters
they read events_current. Sessions, bounce rate and durations are session figures and come
from the ``sessions`` mart, whose rows also hold what each session contains (for event-level
filters). Every relation read is dbt's; the rules of what counts live there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import yaml

from queries.base import (
    DISTINCT_DEVICES,
    EVENTS,
    EVENTS_IN_RANGE,
    MART_TTL_S,
    MERGED_VISITORS,
    RAW_TTL_S,
    SESSIONS_IN_RANGE,
    event_filter_sql,
    mart,
    range_params,
    run,
    session_filter_sql,
    visitor_states,
)
from queries.cache import cached
from queries.filters import Filter, SqlFragment
from queries.periods import BUCKET_SQL, DAY_BUCKET_SQL, DateRange, Granularity
from trackhouse.dbt import DBT_PROJECT_DIR

Filters = tuple[Filter, ...]

def _session_dimensions() -> dict[str, str]:
    """The breakdown dimensions and their expressions over the sessions mart's columns: the dbt
    project's var ``session_dimensions``, which daily_session_states rolls sessions up by."""
    with (DBT_PROJECT_DIR / "dbt_project.yml").open(encoding="utf-8") as project:
        return dict(yaml.safe_load(project)["vars"]["session_dimensions"])


# Breakdown dimensions of the sessions mart (whitelist: the key picks a fixed expression).
SESSION_DIMENSIONS = _session_dimensions()
# Dimensions whose empty value means "not set" and is left out of the tile: each is a column of
# the sessions mart, '' exactly when the dimension's value is '' (tested before the expression).
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


@cached(RAW_TTL_S)
def event_totals(project_id: str, date_range: DateRange, filters: Filters = ()) -> pd.DataFrame:
    """Distinct visitors and page views of the range and of the previous period: a range's
    visitors are the distinct devices of the whole range (exact and current), never a sum of
    days. Rows: (current: 1 for the range, 0 before, visitors, pageviews).

    Table decider (``visitor_states``): without filters, or under filters on one event field
    over more than a week, the per-day states of daily_visitor_states_current /
    daily_event_value_states_current merged; other filters read events_current.
    """
    states = visitor_states(filters, date_range.days)
    if states is not None:
        table, matching = states
        return run(
            f"""select day >= {{current_day:Date}} as current,
                   {MERGED_VISITORS} as visitors, sum(pageviews) as pageviews
            from {table}
            where {SESSIONS_IN_RANGE} and {matching.sql}
            group by current order by current""",
            {**_span_params(project_id, date_range), **matching.params},
            columns=("current", "visitors", "pageviews"),
        )
    where = event_filter_sql(filters)
    return run(
        f"""select created_at >= {{current_start:DateTime64(3, 'UTC')}} as current,
               {DISTINCT_DEVICES} as visitors, countIf(is_pageview) as pageviews
        from {mart(EVENTS)}
        where {EVENTS_IN_RANGE} and {where.sql}
        group by current order by current""",
        {**_span_params(project_id, date_range), **where.params},
        columns=("current", "visitors", "pageviews"),
    )


def _event_series(project_id: str, span: DateRange, granularity: Granularity,
                  filters: Filters, split: DateRange) -> pd.DataFrame:
    """Visitors and page views per bucket of ``span`` from events_current; ``current`` says
    whether a row lies in ``split`` (the range the user chose)."""
    where = event_filter_sql(filters)
    bucket = BUCKET_SQL[granularity].format(column="created_at")
    return run(
        f"""select created_at >= {{current_start:DateTime64(3, 'UTC')}} as current,
               toString({bucket}) as bucket,
               {DISTINCT_DEVICES} as visitors, countIf(is_pageview) as pageviews
        from {mart(EVENTS)}
        where {EVENTS_IN_RANGE} and {where.sql}
        group by current, bucket order by current, bucket""",
        {**range_params(project_id, span), **where.params,
         "current_start": split.utc_bounds()[0]},
        columns=("current", "bucket", "visitors", "pageviews"),
    )


def _state_series(project_id: str, span: DateRange, granularity: Granularity,
                  split: DateRange, states: tuple[str, SqlFragment]) -> pd.DataFrame:
    """The same figures from the day states of ``states`` (``visitor_states``: a view and the
    condition on its rows), merged per day, week or month (exact distinct visitors of each
    bucket)."""
    bucket = DAY_BUCKET_SQL[granularity]
    table, matching = states
    return run(
        f"""select day >= {{current_day:Date}} as current,
               toString(toDateTime({bucket}, 'UTC')) as bucket,
               {MERGED_VISITORS} as visitors, sum(pageviews) as pageviews
        from {table}
        where {SESSIONS_IN_RANGE} and {matching.sql}
        group by current, bucket order by current, bucket""",
        {**range_params(project_id, span), **matching.params, "current_day": split.start},
        columns=("current", "bucket", "visitors", "pageviews"),
    )


@cached(RAW_TTL_S)
def event_series(project_id: str, date_range: DateRange, granularity: Granularity,
                 filters: Filters = ()) -> pd.DataFrame:
    """Visitors and page views per bucket of the range and of the previous period.

    Table decider: days, weeks and months merge the day states of ``visitor_states`` (a few
    hundred rows) without filters, or under filters on one event field over more than a week;
    hours and other filters read events_current. Rows: (current, bucket as local wall-clock
    text, visitors, pageviews).
    """
    span = DateRange(date_range.previous().start, date_range.end, date_range.tz)
    states = visitor_states(filters, date_range.days)
    if states is None or granularity is Granularity.HOUR:
        return _event_series(project_id, span, granularity, filters, date_range)
    return _state_series(project_id, span, granularity, date_range, states)


@cached(MART_TTL_S)
def session_figures(project_id: str, date_range: DateRange,
                    filters: Filters = ()) -> pd.DataFrame:
    """Sessions started in the range and in the previous period, their bounces and total
    duration (one scan of the sessions mart, under ``session_filter_sql``). Rows: (current,
    sessions, bounces, duration_s)."""
    where = session_filter_sql(filters)
    return run(
        f"""select day >= {{current_day:Date}} as current, count() as sessions,
               countIf(is_bounce) as bounces, sum(toFloat64(duration_s)) as duration_s
        from {mart("sessions")}
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


@cached(RAW_TTL_S)
def top_pages(project_id: str, date_range: DateRange, filters: Filters = (),
              limit: int = 10) -> pd.DataFrame:
    """Paths by page views, with their distinct visitors over the range.

    Table decider as in ``event_totals``: without filters, the per-day states of
    daily_page_states_current merged per path; filters read events_current."""
    if not filters:
        return run(
            f"""select path, {MERGED_VISITORS} as visitors,
                   sum(pageviews) as pageviews
            from {mart('daily_page_states_current')}
            where {SESSIONS_IN_RANGE}
            group by path order by pageviews desc, path limit {{limit:UInt32}}""",
            {**range_params(project_id, date_range), "limit": limit},
            columns=("path", "visitors", "pageviews"),
        )
    where = event_filter_sql(filters)
    return run(
        f"""select path, {DISTINCT_DEVICES} as visitors, count() as pageviews
        from {mart(EVENTS)}
        where {EVENTS_IN_RANGE} and is_pageview and {where.sql}
        group by path order by pageviews desc, path limit {{limit:UInt32}}""",
        {**range_params(project_id, date_range), **where.params, "limit": limit},
        columns=("path", "visitors", "pageviews"),
    )


@cached(MART_TTL_S)
def session_breakdown(project_id: str, date_range: DateRange, dimension: str,
                      filters: Filters = (), limit: int = 10) -> pd.DataFrame:
    """Visitors and sessions per value of one session dimension.

    Table decider: without filters, the per-day rollup daily_session_states merged per value;
    with filters, the sessions mart's rows matching ``session_filter_sql``, grouped by the
    dimension's expression."""
    expression = SESSION_DIMENSIONS[dimension]  # KeyError for anything off the whitelist
    skip_empty = dimension in _SKIP_EMPTY
    if not filters:
        return run(
            f"""select value, visitors, session_count as sessions,
                   round(bounce_count / session_count, 4) as bounce_rate
            from (
                select value, {MERGED_VISITORS} as visitors, sum(sessions) as session_count,
                       sum(bounces) as bounce_count
                from {mart('daily_session_states')}
                where {SESSIONS_IN_RANGE} and dimension = {{dimension:String}}
                    {"and value != ''" if skip_empty else ""}
                group by value
            )
            order by visitors desc, sessions desc, value limit {{limit:UInt32}}""",
            {**range_params(project_id, date_range), "dimension": dimension, "limit": limit},
            columns=("value", "visitors", "sessions", "bounce_rate"),
        )
    where = session_filter_sql(filters)
    params: dict[str, Any] = {**range_params(project_id, date_range), **where.params,
                              "limit": limit}
    return run(
        f"""select {expression} as value, {DISTINCT_DEVICES} as visitors,
               count() as sessions, round(avg(is_bounce), 4) as bounce_rate
        from {mart("sessions")}
        where {SESSIONS_IN_RANGE} {f"and {dimension} != ''" if skip_empty else ""}
            and {where.sql}
        group by value order by visitors desc, sessions desc, value limit {{limit:UInt32}}""",
        params,
        columns=("value", "visitors", "sessions", "bounce_rate"),
    )
