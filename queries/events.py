"""Custom events and their properties (events_current, filters applied)."""

from __future__ import annotations

import pandas as pd

from queries.base import (
    DISTINCT_DEVICES,
    EVENTS,
    EVENTS_IN_RANGE,
    RAW_TTL_S,
    event_filter_sql,
    mart,
    range_params,
    run,
)
from queries.cache import cached
from queries.filters import Filter
from queries.periods import BUCKET_SQL, DateRange, Granularity

Filters = tuple[Filter, ...]


@cached(RAW_TTL_S)
def event_counts(project_id: str, date_range: DateRange, filters: Filters = ()) -> pd.DataFrame:
    """Every event name except page views: occurrences and distinct visitors."""
    where = event_filter_sql(filters)
    return run(
        f"""select event_name as name, count() as events, {DISTINCT_DEVICES} as visitors
        from {mart(EVENTS)}
        where {EVENTS_IN_RANGE} and not is_pageview and {where.sql}
        group by name order by events desc, name""",
        {**range_params(project_id, date_range), **where.params},
        columns=("name", "events", "visitors"),
    )


@cached(RAW_TTL_S)
def event_trend(project_id: str, date_range: DateRange, granularity: Granularity,
                names: tuple[str, ...], filters: Filters = ()) -> pd.DataFrame:
    """Occurrences per bucket of the named events (long format: bucket, name, events)."""
    where = event_filter_sql(filters)
    bucket = BUCKET_SQL[granularity].format(column="created_at")
    frame = run(
        f"""select toString({bucket}) as bucket, event_name as name, count() as events
        from {mart(EVENTS)}
        where {EVENTS_IN_RANGE} and event_name in {{names:Array(String)}} and {where.sql}
        group by bucket, name order by bucket, name""",
        {**range_params(project_id, date_range), **where.params, "names": list(names)},
        columns=("bucket", "name", "events"),
    )
    frame["bucket"] = pd.to_datetime(frame["bucket"])
    return frame


@cached(RAW_TTL_S)
def event_properties(project_id: str, date_range: DateRange, name: str,
                     filters: Filters = (), limit: int = 50) -> pd.DataFrame:
    """The property keys and values of one event, by occurrences."""
    where = event_filter_sql(filters)
    return run(
        f"""select key, value, count() as events, {DISTINCT_DEVICES} as visitors
        from {mart(EVENTS)}
        array join mapKeys(properties) as key, mapValues(properties) as value
        where {EVENTS_IN_RANGE} and event_name = {{name:String}} and {where.sql}
        group by key, value order by events desc, key, value limit {{limit:UInt32}}""",
        {**range_params(project_id, date_range), **where.params, "name": name, "limit": limit},
        columns=("key", "value", "events", "visitors"),
    )


@cached(RAW_TTL_S)
def event_names(project_id: str, date_range: DateRange) -> list[str]:
    """Every event name seen in the range (for pickers)."""
    frame = run(
        f"""select distinct event_name as name from {mart(EVENTS)}
        where {EVENTS_IN_RANGE} order by name""",
        range_params(project_id, date_range),
        columns=("name",),
    )
    return [str(n) for n in frame.name]
