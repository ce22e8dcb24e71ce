"""Funnels: the analyst-defined ones of the ``funnel_steps`` mart, ad-hoc ones over
events_current."""

from __future__ import annotations

import pandas as pd

from queries.base import (
    EVENTS,
    EVENTS_IN_RANGE,
    MART_TTL_S,
    RAW_TTL_S,
    event_filter_sql,
    mart,
    range_params,
    run,
)
from queries.cache import cached
from queries.filters import Filter
from queries.periods import DateRange

MAX_STEPS = 10


def with_conversion(frame: pd.DataFrame) -> pd.DataFrame:
    """Add conversion (of step 1) and drop-off (from the previous step) to step counts."""
    frame = frame.sort_values("step").reset_index(drop=True)
    first = frame.visitors.iloc[0] if len(frame) else 0
    previous = frame.visitors.shift(1).fillna(frame.visitors)
    frame["conversion"] = frame.visitors / first if first else 0.0
    frame["drop_off"] = (previous - frame.visitors).astype("int64")
    dropped = previous - frame.visitors
    frame["drop_off_rate"] = (dropped / previous.where(previous > 0)).fillna(0.0)
    return frame


@cached(MART_TTL_S)
def defined_funnels(project_id: str) -> list[str]:
    frame = run(
        f"select distinct funnel from {mart('funnel_steps')} where project_id = {{project:String}} "
        "order by funnel",
        {"project": project_id},
        columns=("funnel",),
    )
    return [str(name) for name in frame.funnel]


@cached(MART_TTL_S)
def funnel_steps(project_id: str, date_range: DateRange, funnel: str) -> pd.DataFrame:
    """Steps of a defined funnel over the range: (device, step-1 day) pairs summed over days."""
    frame = run(
        f"""select step, any(event_name) as event_name, sum(visitors) as visitors
        from {mart('funnel_steps')}
        where project_id = {{project:String}} and funnel = {{funnel:String}}
          and day between {{start_day:Date}} and {{end_day:Date}}
        group by step order by step""",
        {**range_params(project_id, date_range), "funnel": funnel},
        columns=("step", "event_name", "visitors"),
    )
    return with_conversion(frame)


@cached(RAW_TTL_S)
def adhoc_funnel(project_id: str, date_range: DateRange, steps: tuple[str, ...],
                 window_seconds: int, filters: tuple[Filter, ...] = ()) -> pd.DataFrame:
    """Devices reaching each step in order (each strictly later) within the window.

    ClickHouse ``windowFunnel`` over the range's events, one level per device; millisecond
    timestamps so that "strictly later" holds below one second too.
    """
    if not 2 <= len(steps) <= MAX_STEPS:
        raise ValueError(f"a funnel has 2 to {MAX_STEPS} steps")
    where = event_filter_sql(filters)
    step_params = {f"step{i}": name for i, name in enumerate(steps)}
    conditions = ", ".join(f"event_name = {{step{i}:String}}" for i in range(len(steps)))
    levels = run(
        f"""select level, count() as devices from (
            select windowFunnel({{window_ms:UInt64}}, 'strict_increase')(
                       toUInt64(toUnixTimestamp64Milli(created_at)), {conditions}) as level
            from {mart(EVENTS)}
            where {EVENTS_IN_RANGE} and event_name in {{steps:Array(String)}} and {where.sql}
            group by device_id
        ) group by level""",
        {**range_params(project_id, date_range), **where.params, **step_params,
         "steps": list(steps), "window_ms": window_seconds * 1000},
        columns=("level", "devices"),
    )
    by_level = dict(zip(levels.level.astype(int), levels.devices.astype(int), strict=True))
    rows = [{"step": k, "event_name": name,
             "visitors": sum(n for level, n in by_level.items() if level >= k)}
            for k, name in enumerate(steps, start=1)]
    return with_conversion(pd.DataFrame(rows))
