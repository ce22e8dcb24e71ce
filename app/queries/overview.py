"""Questions of the overview page: KPIs, the time series, and the breakdown tiles.

Table decider: visitors and page views are event figures and come from raw events (exact
distinct devices over the range, current to the last flushed batch); sessions, bounce rate and
durations are session figures and come from the ``sessions`` mart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from app.filters import Filter
from app.periods import BUCKET_SQL, DateRange, Granularity
from app.queries.base import (
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
    session_filter_sql,
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


@st.cache_data(ttl=RAW_TTL_S, show_spinner=False)
def event_totals(project_id: str, date_range: DateRange, filters: Filters = ()) -> dict[str, int]:
    """Distinct visitors and page views of the range (raw events)."""
    where = event_filter_sql(filters)
    frame = run(
        f"""select uniqExact(device_id) as visitors, countIf(name = '{PAGE_VIEW}') as pageviews
        from {raw_table('events')}
        where {EVENTS_IN_RANGE} and {where.sql}""",
        {**range_params(project_id, date_range), **where.params},
    )
    return {"visitors": int(frame.visitors[0]), "pageviews": int(frame.pageviews[0])}


@st.cache_data(ttl=MART_TTL_S, show_spinner=False)
def session_totals(project_id: str, date_range: DateRange,
                   filters: Filters = ()) -> dict[str, float]:
    """Sessions started in the range, their bounces and total duration (sessions mart)."""
    where = session_filter_sql(filters)
    frame = run(
        f"""select count() as sessions, countIf(is_bounce) as bounces,
               sum(toFloat64(duration_s)) as duration_s
        from {mart('sessions')}
        where {SESSIONS_IN_RANGE} and {where.sql}""",
        {**range_params(project_id, date_range), **where.params},
    )
    return {"sessions": int(frame.sessions[0]), "bounces": int(frame.bounces[0]),
            "duration_s": float(frame.duration_s[0])}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def kpis(project_id: str, date_range: DateRange, filters: Filters = ()) -> Kpis:
    events = event_totals(project_id, date_range, filters)
    sessions = session_totals(project_id, date_range, filters)
    count = int(sessions["sessions"])
    return Kpis(
        visitors=events["visitors"],
        sessions=count,
        pageviews=events["pageviews"],
        bounce_rate=_ratio(sessions["bounces"], count),
        avg_session_duration_s=_ratio(sessions["duration_s"], count),
        views_per_session=_ratio(events["pageviews"], count),
    )


@st.cache_data(ttl=RAW_TTL_S, show_spinner=False)
def timeseries(project_id: str, date_range: DateRange, granularity: Granularity,
               filters: Filters = ()) -> pd.DataFrame:
    """Visitors and page views per bucket, every bucket of the range present (zeros filled)."""
    where = event_filter_sql(filters)
    bucket = BUCKET_SQL[granularity].format(column="created_at")
    frame = run(
        f"""select toString({bucket}) as bucket, uniqExact(device_id) as visitors,
               countIf(name = '{PAGE_VIEW}') as pageviews
        from {raw_table('events')}
        where {EVENTS_IN_RANGE} and {where.sql}
        group by bucket order by bucket""",
        {**range_params(project_id, date_range), **where.params},
        columns=("bucket", "visitors", "pageviews"),
    )
    frame["bucket"] = pd.to_datetime(frame["bucket"])
    full = pd.DataFrame({"bucket": date_range.buckets(granularity)})
    merged = full.merge(frame, on="bucket", how="left").fillna(0)
    return merged.astype({"visitors": "int64", "pageviews": "int64"})


@st.cache_data(ttl=RAW_TTL_S, show_spinner=False)
def top_pages(project_id: str, date_range: DateRange, filters: Filters = (),
              limit: int = 10) -> pd.DataFrame:
    """Paths by page views, with their distinct visitors."""
    where = event_filter_sql(filters)
    return run(
        f"""select path, uniqExact(device_id) as visitors, count() as pageviews
        from {raw_table('events')}
        where {EVENTS_IN_RANGE} and name = '{PAGE_VIEW}' and {where.sql}
        group by path order by pageviews desc, path limit {{limit:UInt32}}""",
        {**range_params(project_id, date_range), **where.params, "limit": limit},
        columns=("path", "visitors", "pageviews"),
    )


@st.cache_data(ttl=MART_TTL_S, show_spinner=False)
def session_breakdown(project_id: str, date_range: DateRange, dimension: str,
                      filters: Filters = (), limit: int = 10) -> pd.DataFrame:
    """Visitors and sessions per value of one session dimension (sessions mart)."""
    expression = SESSION_DIMENSIONS[dimension]  # KeyError for anything off the whitelist
    where = session_filter_sql(filters)
    skip_empty = f"and {dimension} != ''" if dimension in _SKIP_EMPTY else ""
    params: dict[str, Any] = {**range_params(project_id, date_range), **where.params,
                              "limit": limit}
    return run(
        f"""select {expression} as value, uniqExact(device_id) as visitors, count() as sessions,
               round(avg(is_bounce), 4) as bounce_rate
        from {mart('sessions')}
        where {SESSIONS_IN_RANGE} {skip_empty} and {where.sql}
        group by value order by visitors desc, sessions desc, value limit {{limit:UInt32}}""",
        params,
        columns=("value", "visitors", "sessions", "bounce_rate"),
    )
