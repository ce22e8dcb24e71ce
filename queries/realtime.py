"""Realtime questions, from events_current: dbt's view of every counted event, current to the
last batch the collector stored (the marts lag by a dbt run)."""

from __future__ import annotations

import pandas as pd

from queries.base import DISTINCT_DEVICES, EVENTS, REALTIME_TTL_S, mart, run
from queries.cache import cached

RECENT = "project_id = {project:String}"


@cached(REALTIME_TTL_S)
def live_visitors(project_id: str, minutes: int = 5) -> int:
    """Distinct devices with an event in the last ``minutes`` minutes."""
    frame = run(
        f"""select {DISTINCT_DEVICES} as visitors from {mart(EVENTS)}
        where {RECENT} and created_at >= now64(3) - toIntervalMinute({{minutes:UInt32}})""",
        {"project": project_id, "minutes": minutes},
    )
    return int(frame.visitors[0])


@cached(REALTIME_TTL_S)
def events_per_minute(project_id: str, minutes: int = 30) -> pd.DataFrame:
    """Events per minute over the last ``minutes`` minutes, every minute present."""
    return run(
        f"""with toStartOfMinute(now()) as this_minute
        select minute, countIf(is_pageview) as pageviews, count() - pageviews as other
        from (
            select toStartOfMinute(created_at) as minute, is_pageview from {mart(EVENTS)}
            where {RECENT} and created_at >= this_minute - toIntervalMinute({{minutes:UInt32}} - 1)
        )
        group by minute
        order by minute with fill
            from this_minute - toIntervalMinute({{minutes:UInt32}} - 1)
            to this_minute + 60 step 60""",
        {"project": project_id, "minutes": minutes},
        columns=("minute", "pageviews", "other"),
    )


@cached(REALTIME_TTL_S)
def live_stream(project_id: str, limit: int = 50) -> pd.DataFrame:
    """The latest events, newest first."""
    return run(
        f"""select created_at, event_name as name, path, device_id, country, city, browser, os,
               referrer_name
        from {mart(EVENTS)}
        where {RECENT} and created_at >= now64(3) - toIntervalHour(24)
        order by created_at desc limit {{limit:UInt32}}""",
        {"project": project_id, "limit": limit},
        columns=("created_at", "name", "path", "device_id", "country", "city", "browser", "os",
                 "referrer_name"),
    )


@cached(REALTIME_TTL_S)
def live_sources(project_id: str, minutes: int = 30) -> pd.DataFrame:
    """Where the last ``minutes`` minutes of visitors come from."""
    return run(
        f"""select if(referrer_name != '', referrer_name,
                      if(referrer = '', '(direct)', domain(referrer))) as source,
               {DISTINCT_DEVICES} as visitors
        from {mart(EVENTS)}
        where {RECENT} and created_at >= now64(3) - toIntervalMinute({{minutes:UInt32}})
        group by source order by visitors desc, source limit 10""",
        {"project": project_id, "minutes": minutes},
        columns=("source", "visitors"),
    )
