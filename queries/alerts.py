"""Figures the alert rules watch, one question per function, read from dbt relations only.

Not cached: a rule is evaluated right after a marts build and must see that build. A window
without a row has no traffic, so its figure is 0 (a drop to nothing is the drop that matters);
a funnel with no entrants that day has no conversion (None: nothing to compare).
"""

from __future__ import annotations

from datetime import date, datetime

from queries.base import EVENTS, mart, run

# the metric of a rule -> its column in daily_metrics / hourly_metrics (whitelist)
TRAFFIC_COLUMNS = {"visitors": "visitors", "pageviews": "pageviews"}


def daily_figure(project_id: str, metric: str, day: date) -> float:
    """Visitors or page views of one project day (the daily_metrics mart)."""
    column = TRAFFIC_COLUMNS[metric]
    frame = run(
        f"""select sum({column}) as value from {mart('daily_metrics')}
        where project_id = {{project:String}} and day = {{day:Date}}""",
        {"project": project_id, "day": day}, columns=("value",))
    return float(frame["value"].iloc[0]) if not frame.empty else 0.0


def hourly_figure(project_id: str, metric: str, day: date, hour: int) -> float:
    """Visitors or page views of one hour of the project's clock (the hourly_metrics mart)."""
    column = TRAFFIC_COLUMNS[metric]
    frame = run(
        f"""select sum({column}) as value from {mart('hourly_metrics')}
        where project_id = {{project:String}} and day = {{day:Date}} and hour = {{hour:UInt8}}""",
        {"project": project_id, "day": day, "hour": hour}, columns=("value",))
    return float(frame["value"].iloc[0]) if not frame.empty else 0.0


def event_count(project_id: str, event_name: str, start: datetime, end: datetime) -> float:
    """Counted events of one name in [start, end) (UTC), from events_current."""
    frame = run(
        f"""select count() as value from {mart(EVENTS)}
        where project_id = {{project:String}} and event_name = {{name:String}}
          and created_at >= {{start:DateTime64(3, 'UTC')}}
          and created_at < {{end:DateTime64(3, 'UTC')}}""",
        {"project": project_id, "name": event_name, "start": start, "end": end},
        columns=("value",))
    return float(frame["value"].iloc[0]) if not frame.empty else 0.0


def funnel_conversion(project_id: str, funnel: str, day: date) -> float | None:
    """Share (0-1) of a funnel's entrants of one project day who reached its last step (the
    funnel_steps mart); None when nobody entered it that day."""
    frame = run(
        f"""select argMax(conversion_rate, step) as value, count() as steps
        from {mart('funnel_steps')}
        where project_id = {{project:String}} and funnel = {{funnel:String}}
          and day = {{day:Date}}""",
        {"project": project_id, "funnel": funnel, "day": day}, columns=("value", "steps"))
    if frame.empty or not int(frame["steps"].iloc[0]):
        return None
    return float(frame["value"].iloc[0])
