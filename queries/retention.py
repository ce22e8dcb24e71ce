"""Cohort retention: the ``retention`` mart, or computed ad hoc under page filters."""

from __future__ import annotations

import pandas as pd

from queries.base import MART_TTL_S, mart, range_params, run, session_filter_sql
from queries.cache import cached
from queries.filters import Filter
from queries.periods import DateRange

GRANULARITIES = ("day", "week")
COLUMNS = ("cohort", "period", "cohort_size", "retained", "rate")
# Sessions of the project from the range's first day on (a cohort member has none before).
SESSIONS_FROM_START = "project_id = {project:String} and day >= {start_day:Date}"
# A cohort member's period of an active day (the retention mart's definitions).
_COHORT_PERIOD = {
    "day": ("first_day", "toUInt32(active_day - first_day)"),
    "week": ("toMonday(first_day)",
             "intDiv(toUInt32(toMonday(active_day) - toMonday(first_day)), 7)"),
}


@cached(MART_TTL_S)
def cohorts(project_id: str, date_range: DateRange, granularity: str,
            max_period: int = 12, filters: tuple[Filter, ...] = ()) -> pd.DataFrame:
    """Cohorts starting in the range: (cohort, period, cohort_size, retained, rate).

    Table decider: without filters, the retention mart. With filters, a cohort keeps only the
    visitors whose first session matches them (session fields: that session's own columns;
    event fields: it contains a matching event), computed from the sessions marts.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"retention granularity is one of {GRANULARITIES}")
    params = {**range_params(project_id, date_range), "granularity": granularity,
              "max_period": max_period}
    if filters:
        return _filtered_cohorts(params, granularity, filters)
    return run(
        f"""select cohort, period, cohort_size, retained, rate
        from {mart('retention')}
        where project_id = {{project:String}} and granularity = {{granularity:String}}
          and cohort between {{start_day:Date}} and {{end_day:Date}}
          and period <= {{max_period:UInt32}}
        order by cohort, period""",
        params,
        columns=COLUMNS,
    )


def _filtered_cohorts(params: dict, granularity: str,
                      filters: tuple[Filter, ...]) -> pd.DataFrame:
    """The retention mart's figures for the visitors whose first session matches ``filters``.

    A visitor's cohort day is the day of its first session (its first event ever); it is
    active on every project day from a session's start day to its end day (a session's
    events are at most 30 minutes apart, so each of those days has one), exactly the days
    with events that the mart counts.
    """
    where = session_filter_sql(filters)
    cohort, period = _COHORT_PERIOD[granularity]
    return run(
        f"""with
        first_seen as (
            -- visitors whose first session ever starts in the range
            select device_id from {mart('sessions')}
            where project_id = {{project:String}}
            group by device_id
            having min(day) between {{start_day:Date}} and {{end_day:Date}}
        ),
        members as (
            -- ... and matches the filters (argMin: the first session's verdict)
            select device_id, min(day) as first_day
            from {mart('sessions')}
            where {SESSIONS_FROM_START} and device_id in (select device_id from first_seen)
            group by device_id
            having argMin({where.sql}, started_at)
        ),
        periods as (
            select {cohort} as cohort, {period} as period, device_id
            from (
                select device_id, arrayJoin(arrayMap(
                    offset -> day + offset, range(toUInt32(end_day - day) + 1))) as active_day
                from {mart('sessions')}
                where {SESSIONS_FROM_START} and device_id in (select device_id from members)
            ) as activity
            inner join members using device_id
        ),
        retained as (
            select cohort, period, uniqExact(device_id) as retained
            from periods
            where period <= {{max_period:UInt32}}
            group by cohort, period
        )
        select cohort, period,
               max(retained) over (partition by cohort) as cohort_size,
               retained, retained / cohort_size as rate
        from retained
        order by cohort, period""",
        {**params, **where.params},
        columns=COLUMNS,
    )
