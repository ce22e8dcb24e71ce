"""Deterministic fixture events for the dashboard tests, and the figures they must produce,
computed here in plain Python from the event list (independently of the app's SQL and of dbt).
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

PASSWORD = "correct horse battery staple"
ADMIN = "admin@dash.test"
VIEWER = "viewer@dash.test"
SHOP = "dash-shop"  # Europe/Berlin: project days differ from UTC days
BLOG = "dash-blog"  # UTC; a viewer is granted only this one
PROJECT_ZONES = {SHOP: "Europe/Berlin", BLOG: "UTC"}
SESSION_GAP = timedelta(minutes=30)
PATHS = ["/", "/pricing", "/docs", "/docs/install", "/blog/hello", "/signup"]
SOURCES = [  # (referrer, referrer_name, referrer_type, utm_source, utm_medium, utm_campaign)
    ("", "", "", "", "", ""),
    ("https://www.google.com/", "Google", "search", "", "", ""),
    ("https://news.ycombinator.com/", "Hacker News", "social", "", "", ""),
    ("", "", "", "newsletter", "email", "autumn"),
]
GEO = [("DE", "Berlin", "Berlin"), ("FR", "Île-de-France", "Paris"), ("US", "California",
                                                                         "San Francisco")]
DEVICES = [("Chrome", "Windows", "desktop"), ("Safari", "iOS", "mobile"),
           ("Firefox", "Linux", "desktop")]


@dataclass
class Event:  # the raw-event columns the dashboards read
    project_id: str
    name: str
    device_id: str
    created_at: datetime
    path: str = ""
    profile_id: str = ""
    referrer: str = ""
    referrer_name: str = ""
    referrer_type: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    country: str = ""
    region: str = ""
    city: str = ""
    browser: str = ""
    os: str = ""
    device: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    is_bot: bool = False
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


COLUMNS = ["id", "project_id", "name", "device_id", "profile_id", "created_at", "received_at",
           "path", "referrer", "referrer_name", "referrer_type", "utm_source", "utm_medium",
           "utm_campaign", "country", "region", "city", "browser", "os", "device", "properties",
           "is_bot"]


Predicate = Callable[[Event], bool]


def rows(events: list[Event]) -> list[list]:
    return [[uuid.UUID(e.id), e.project_id, e.name, e.device_id, e.profile_id, e.created_at,
             e.created_at, e.path, e.referrer, e.referrer_name, e.referrer_type, e.utm_source,
             e.utm_medium, e.utm_campaign, e.country, e.region, e.city, e.browser, e.os, e.device,
             e.properties, e.is_bot] for e in events]


def generate(now: datetime, seed: int = 7) -> list[Event]:
    """About 1,500 events over the 20 days before ``now`` (UTC), plus live ones."""
    rng = random.Random(seed)
    events: list[Event] = []
    for project_id, devices in ((SHOP, 70), (BLOG, 25)):
        for number in range(devices):
            device_id = f"{project_id}-device-{number}"
            profile_id = f"user-{number}" if project_id == SHOP and number % 5 == 0 else ""
            for _ in range(rng.randint(1, 4)):
                # some sessions start just before local midnight to exercise project days
                start = now - timedelta(days=rng.randint(0, 19), hours=rng.randint(0, 23),
                                        minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))
                start = min(start, now - timedelta(hours=1))
                source = rng.choice(SOURCES)
                geo = rng.choice(GEO)
                device = rng.choice(DEVICES)
                common: dict[str, Any] = dict(zip(
                    ["referrer", "referrer_name", "referrer_type", "utm_source", "utm_medium",
                     "utm_campaign", "country", "region", "city", "browser", "os", "device"],
                    [*source, *geo, *device], strict=True))
                moment = start
                for step in range(rng.choice([1, 1, 2, 3, 5])):
                    if step:
                        moment += timedelta(seconds=rng.randint(5, 600))
                    roll = rng.random()
                    if roll < 0.75 or step == 0:
                        events.append(Event(project_id, "screen_view", device_id, moment,
                                            path=rng.choice(PATHS), profile_id=profile_id,
                                            **common))
                    elif roll < 0.9:
                        events.append(Event(project_id, "signup", device_id, moment,
                                            path="/signup", profile_id=profile_id,
                                            properties={"plan": rng.choice(["free", "pro"])},
                                            **common))
                    else:
                        events.append(Event(project_id, "purchase", device_id, moment,
                                            path="/pricing", profile_id=profile_id,
                                            properties={"plan": "pro", "amount": "49"}, **common))
        # a crawler: flagged, never counted
        events.append(Event(project_id, "screen_view", f"{project_id}-bot",
                            now - timedelta(hours=2), path="/", is_bot=True))
    # live traffic in the last minutes for the realtime page
    for number in range(3):
        events.append(Event(SHOP, "screen_view", f"{SHOP}-live-{number}",
                            now - timedelta(minutes=number + 1), path="/", country="DE",
                            browser="Chrome", os="Windows", device="desktop"))
    return events


# --- the figures, computed independently ---------------------------------------------------

def bounds(start: date, end: date, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    first = datetime(start.year, start.month, start.day, tzinfo=zone)
    after = datetime(end.year, end.month, end.day, tzinfo=zone) + timedelta(days=1)
    return first.astimezone(UTC), after.astimezone(UTC)


def counted(events: list[Event], project_id: str) -> list[Event]:
    return [e for e in events if e.project_id == project_id and not e.is_bot]


def sessions(events: list[Event], project_id: str) -> list[list[Event]]:
    by_device: dict[str, list[Event]] = defaultdict(list)
    for event in counted(events, project_id):
        by_device[event.device_id].append(event)
    result: list[list[Event]] = []
    for device_events in by_device.values():
        device_events.sort(key=lambda e: e.created_at)
        current = [device_events[0]]
        for event in device_events[1:]:
            if event.created_at - current[-1].created_at > SESSION_GAP:
                result.append(current)
                current = []
            current.append(event)
        result.append(current)
    return result


def expected_kpis(events: list[Event], project_id: str, start: date, end: date,
                  session_match: Predicate = lambda e: True,
                  event_match: Predicate = lambda e: True) -> dict:
    """KPIs by metrics.md. Filters: ``session_match`` on a session field (an event's own column
    for event figures, the first event's for sessions), ``event_match`` on an event field (a
    session matches when one of its events does)."""
    tz = PROJECT_ZONES[project_id]
    first, after = bounds(start, end, tz)
    in_range = [e for e in counted(events, project_id) if first <= e.created_at < after
                and session_match(e) and event_match(e)]
    pageviews = sum(e.name == "screen_view" for e in in_range)
    zone = ZoneInfo(tz)
    started = [s for s in sessions(events, project_id)
               if start <= s[0].created_at.astimezone(zone).date() <= end
               and session_match(s[0]) and any(event_match(e) for e in s)]
    bounces = sum(1 for s in started if len(s) == 1 and s[0].name == "screen_view")
    durations = [(s[-1].created_at - s[0].created_at).total_seconds() for s in started]
    count = len(started)
    return {
        "visitors": len({e.device_id for e in in_range}),
        "pageviews": pageviews,
        "sessions": count,
        "bounce_rate": bounces / count if count else 0.0,
        "avg_session_duration_s": sum(durations) / count if count else 0.0,
        "views_per_session": pageviews / count if count else 0.0,
    }


@dataclass(frozen=True)
class DashboardData:
    """What the session fixture loaded: its events and the moment they are relative to."""

    now: datetime
    events: list[Event]
    dbt_target: Path  # the fixture's dbt build wrote its manifest here
