"""The metrics of docs/metrics.md computed in plain Python, independently of the dbt SQL.

Each function takes raw rows (dicts shaped like ``trackhouse.events`` / ``trackhouse.profiles``
rows) and returns what the corresponding mart must contain, keyed by its grain.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from trackhouse.settings import PROJECT_ROOT

SESSION_GAP = timedelta(minutes=30)
IGNORED_EVENTS = {"session_start", "session_end"}
FIRST_EVENT_FIELDS = (
    "referrer", "referrer_name", "referrer_type", "utm_source", "utm_medium", "utm_campaign",
    "country", "region", "city", "browser", "os", "device",
)


def counted_events(raw: Iterable[dict]) -> list[dict]:
    """Bots and session_start/session_end dropped; one copy per event id (first received)."""
    first: dict = {}
    for event in raw:
        if event["is_bot"] or event["name"] in IGNORED_EVENTS:
            continue
        kept = first.get(event["id"])
        if kept is None or event["received_at"] < kept["received_at"]:
            first[event["id"]] = event
    return list(first.values())


def utc(value: datetime | None) -> datetime | None:
    """A warehouse timestamp (naive means UTC) as an aware UTC datetime."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def project_day(moment: datetime, zone: str) -> date:
    return moment.astimezone(ZoneInfo(zone)).date()


def url_path(path: str) -> str:
    return path.split("?", 1)[0].split("#", 1)[0]


@dataclass
class Session:
    project_id: str
    device_id: str
    events: list[dict] = field(default_factory=list)

    @property
    def started_at(self) -> datetime:
        return self.events[0]["created_at"]

    @property
    def ended_at(self) -> datetime:
        return self.events[-1]["created_at"]

    @property
    def duration_s(self) -> Decimal:
        delta = self.ended_at - self.started_at
        return Decimal(delta // timedelta(milliseconds=1)) / 1000

    @property
    def pageview_events(self) -> list[dict]:
        return [e for e in self.events if e["name"] == "screen_view"]

    def row(self, zone: str) -> dict:
        views = self.pageview_events
        first = self.events[0]
        profiles = [e["profile_id"] for e in self.events if e["profile_id"]]
        return {
            "project_id": self.project_id,
            "device_id": self.device_id,
            "profile_id": profiles[0] if profiles else "",
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_s": self.duration_s,
            "pageviews": len(views),
            "events": len(self.events),
            "is_bounce": len(views) == 1 and len(self.events) == 1,
            "entry_path": url_path(views[0]["path"]) if views else "",
            "exit_path": url_path(views[-1]["path"]) if views else "",
            **{name: first[name] for name in FIRST_EVENT_FIELDS},
            "day": project_day(self.started_at, zone),
        }


def sessionize(events: list[dict]) -> list[Session]:
    """metrics.md: a new session when more than 30 minutes passed since the previous event."""
    by_device: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for event in events:
        by_device[(event["project_id"], event["device_id"])].append(event)
    sessions = []
    for (project_id, device_id), timeline in by_device.items():
        timeline.sort(key=lambda e: e["created_at"])
        current: Session | None = None
        for event in timeline:
            if current is None or event["created_at"] - current.ended_at > SESSION_GAP:
                current = Session(project_id, device_id)
                sessions.append(current)
            current.events.append(event)
    return sessions


def sessions_mart(events: list[dict], zones: dict[str, str]) -> dict[tuple, dict]:
    rows = [s.row(zones.get(s.project_id, "UTC")) for s in sessionize(events)]
    return {(r["project_id"], r["device_id"], r["started_at"]): r for r in rows}


def time_bucket_metrics(
    events: list[dict], zones: dict[str, str], bucket: Callable[[datetime], tuple]
) -> dict[tuple, dict]:
    """The daily figures of metrics.md per (project, *bucket(local time)): events count in the
    bucket of their own time, sessions in the bucket of their first event."""
    buckets: dict[tuple, dict] = defaultdict(
        lambda: {"devices": set(), "pageviews": 0, "events": 0, "sessions": []}
    )

    def key(project_id: str, moment: datetime) -> tuple:
        return (project_id, *bucket(moment.astimezone(ZoneInfo(zones.get(project_id, "UTC")))))

    for event in events:
        figures = buckets[key(event["project_id"], event["created_at"])]
        figures["devices"].add(event["device_id"])
        figures["events"] += 1
        figures["pageviews"] += event["name"] == "screen_view"
    for session in sessions_mart(events, zones).values():
        buckets[key(session["project_id"], session["started_at"])]["sessions"].append(session)
    result = {}
    for grain, figures in buckets.items():
        sessions = figures["sessions"]
        count = len(sessions)
        result[grain] = {
            "visitors": len(figures["devices"]),
            "sessions": count,
            "pageviews": figures["pageviews"],
            "events": figures["events"],
            "bounce_rate": sum(s["is_bounce"] for s in sessions) / count if count else 0.0,
            "avg_session_duration_s": (
                float(sum(s["duration_s"] for s in sessions)) / count if count else 0.0
            ),
            "views_per_session": figures["pageviews"] / count if count else 0.0,
        }
    return result


def daily_metrics(events: list[dict], zones: dict[str, str]) -> dict[tuple, dict]:
    return time_bucket_metrics(events, zones, lambda local: (local.date(),))


def hourly_metrics(events: list[dict], zones: dict[str, str]) -> dict[tuple, dict]:
    """Per hour of the project's clock (the mart has no views_per_session)."""
    rows = time_bucket_metrics(events, zones, lambda local: (local.date(), local.hour))
    return {grain: {k: v for k, v in row.items() if k != "views_per_session"}
            for grain, row in rows.items()}


def daily_pages(events: list[dict], zones: dict[str, str]) -> dict[tuple, dict]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for event in events:
        if event["name"] == "screen_view":
            day = project_day(event["created_at"], zones.get(event["project_id"], "UTC"))
            groups[(event["project_id"], day, url_path(event["path"]))].append(event)
    return {
        key: {"visitors": len({e["device_id"] for e in views}), "pageviews": len(views)}
        for key, views in groups.items()
    }


def daily_event_values(events: list[dict], zones: dict[str, str]) -> dict[tuple, dict]:
    """Per project day, event field and value (the event's name and its URL path, and a page
    view's path as `page`; the scenario's events carry no properties): distinct devices and
    page views."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for event in events:
        day = project_day(event["created_at"], zones.get(event["project_id"], "UTC"))
        groups[(event["project_id"], day, "event", event["name"])].append(event)
        groups[(event["project_id"], day, "path", url_path(event["path"]))].append(event)
        if event["name"] == "screen_view":
            groups[(event["project_id"], day, "page", url_path(event["path"]))].append(event)
    return {
        key: {"visitors": len({e["device_id"] for e in rows}),
              "pageviews": sum(e["name"] == "screen_view" for e in rows)}
        for key, rows in groups.items()
    }


@dataclass(frozen=True)
class Funnel:
    project_id: str
    name: str
    steps: tuple[str, ...]
    window: timedelta


def seed_funnels() -> list[Funnel]:
    """The funnels of the dbt seed funnels.csv."""
    with (PROJECT_ROOT / "dbt_project/seeds/funnels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    funnels = []
    for key in sorted({(r["project_id"], r["funnel"]) for r in rows}):
        steps = sorted((int(r["step"]), r) for r in rows if (r["project_id"], r["funnel"]) == key)
        window = max(int(r["window_seconds"] or 86400) for _, r in steps)
        funnels.append(Funnel(key[0], key[1], tuple(r["event_name"] for _, r in steps),
                              timedelta(seconds=window)))
    return funnels


def funnel_level(start: dict, timeline: list[dict], funnel: Funnel) -> int:
    """Deepest step reached from one step-1 event: each step strictly later than the one
    before, all within the window (inclusive) after the start. Taking the earliest match of
    each next step is optimal for a subsequence, so a greedy scan suffices."""
    level, last = 1, start["created_at"]
    deadline = start["created_at"] + funnel.window
    for event in timeline:
        if level == len(funnel.steps):
            break
        at = event["created_at"]
        if at > deadline:
            break
        if at > last and event["name"] == funnel.steps[level]:
            level, last = level + 1, at
    return level


def funnel_steps(
    events: list[dict], zones: dict[str, str], funnels: list[Funnel]
) -> dict[tuple, dict]:
    by_device: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for event in events:
        by_device[(event["project_id"], event["device_id"])].append(event)
    levels: dict[tuple, int] = {}  # (project, funnel, device, day) -> best level
    for funnel in funnels:
        zone = zones.get(funnel.project_id, "UTC")
        for (project_id, device_id), timeline in by_device.items():
            if project_id != funnel.project_id:
                continue
            timeline = sorted(timeline, key=lambda e: e["created_at"])
            for index, event in enumerate(timeline):
                if event["name"] != funnel.steps[0]:
                    continue
                key = (project_id, funnel.name, device_id, project_day(event["created_at"], zone))
                level = funnel_level(event, timeline[index + 1:], funnel)
                levels[key] = max(levels.get(key, 0), level)
    result: dict[tuple, dict] = {}
    by_funnel = {(f.project_id, f.name): f for f in funnels}
    for (project_id, name, _device, day), level in levels.items():
        funnel = by_funnel[(project_id, name)]
        for step, event_name in enumerate(funnel.steps, start=1):
            row = result.setdefault(
                (project_id, name, day, step), {"event_name": event_name, "visitors": 0}
            )
            row["visitors"] += level >= step
    return result


def retention(events: list[dict], zones: dict[str, str]) -> dict[tuple, dict]:
    active: dict[tuple[str, str], set[date]] = defaultdict(set)
    for event in events:
        day = project_day(event["created_at"], zones.get(event["project_id"], "UTC"))
        active[(event["project_id"], event["device_id"])].add(day)

    def monday(day: date) -> date:
        return day - timedelta(days=day.weekday())

    counts: dict[tuple, int] = defaultdict(int)
    for (project_id, _device), days in active.items():
        first = min(days)
        for period in {(day - first).days for day in days}:
            counts[(project_id, "day", first, period)] += 1
        for period in {(monday(day) - monday(first)).days // 7 for day in days}:
            counts[(project_id, "week", monday(first), period)] += 1
    result = {}
    for (project_id, granularity, cohort, period), retained in counts.items():
        size = counts[(project_id, granularity, cohort, 0)]
        result[(project_id, granularity, cohort, period)] = {
            "cohort_size": size, "retained": retained, "rate": retained / size,
        }
    return result


def profiles(calls: list[dict], events: list[dict]) -> dict[tuple, dict]:
    """Traits: latest non-null value per field; properties merged per key (latest identify
    wins); increments / decrements added on top of the latest identified value of their
    property (a later identify overwrites earlier increments)."""
    unique_calls = {c["id"]: c for c in sorted(calls, key=lambda c: c["received_at"], reverse=True)}
    by_profile: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for call in unique_calls.values():
        by_profile[(call["project_id"], call["profile_id"])].append(call)
    result: dict[tuple, dict] = {}
    for key, profile_calls in by_profile.items():
        profile_calls.sort(key=lambda c: (c["updated_at"], c["received_at"]))
        traits: dict = {"first_name": None, "last_name": None, "email": None}
        values: dict[str, str] = {}
        counted: dict[str, float | None] = {}  # running numeric value once a counter applies
        for call in profile_calls:
            if call["kind"] == "identify":
                for name in traits:
                    if call[name] is not None:
                        traits[name] = call[name]
                for prop, value in call["properties"].items():
                    values[prop] = value
                    counted.pop(prop, None)
            else:
                sign = -1 if call["kind"] == "decrement" else 1
                base = counted.get(call["property"])
                if base is None:
                    try:
                        base = float(values.get(call["property"], "0"))
                    except ValueError:
                        base = 0.0
                counted[call["property"]] = base + sign * abs(call["delta"])
        properties = dict(values)
        for prop, number in counted.items():
            properties[prop] = format_number(number)
        result[key] = {**traits, "properties": properties,
                       "first_seen_at": None, "last_seen_at": None, "events": 0}
    for event in events:
        if not event["profile_id"]:
            continue
        key = (event["project_id"], event["profile_id"])
        row = result.setdefault(key, {"first_name": None, "last_name": None, "email": None,
                                      "properties": {}, "first_seen_at": None,
                                      "last_seen_at": None, "events": 0})
        row["events"] += 1
        at = event["created_at"]
        row["first_seen_at"] = at if row["first_seen_at"] is None else min(row["first_seen_at"], at)
        row["last_seen_at"] = at if row["last_seen_at"] is None else max(row["last_seen_at"], at)
    return result


def format_number(number: float | None) -> str:
    if number is None:
        return ""
    return str(int(number)) if float(number).is_integer() else repr(number)
