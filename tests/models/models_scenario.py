"""Synthetic raw events with the awkward cases metrics.md cares about, delivered in loads.

Two projects in different time zones (Europe/Berlin, America/New_York) plus one without a
projects row (UTC), over days that include both zones' daylight-saving change; random visits
plus hand-made cases: a 30-minute gap exactly and just over, sessions across midnight,
duplicates of an event id (in the same load and in a later one), late events (received days
after they happened, one of them joining two sessions across midnight), bots and the
reserved session_start / session_end events, custom-event-only sessions, funnel chains at the
window's edge and across days, and profile calls (identify / increment / decrement).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# project ids of the seed funnels.csv, so the funnels are exercised too
SHOP, APP = "demo-shop", "demo-app"
ZONES = {SHOP: "Europe/Berlin", APP: "America/New_York"}
PROJECT_IDS = (SHOP, APP, "nozone")
# Berlin leaves summer time on 2026-10-25, New York on 2026-11-01.
START = datetime(2026, 10, 22, tzinfo=UTC)
DAYS = 12
PATHS = ("/", "/pricing", "/docs", "/blog/post-1", "/about?ref=nav", "/signup#form")
CUSTOM_EVENTS = ("click", "add_to_cart", "purchase", "signup_started", "signup_completed",
                 "report_created")
SOURCES = (("", "", "direct"), ("https://www.google.com/", "Google", "search"),
           ("https://news.ycombinator.com/", "Hacker News", "link"))


def ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


@dataclass
class Scenario:
    events: list[dict] = field(default_factory=list)
    profile_calls: list[dict] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(20261025))
    used_times: set = field(default_factory=set)

    # --- building blocks ----------------------------------------------------------------
    def event(self, project_id: str, device_id: str, name: str, at: datetime, *,
              received_at: datetime | None = None, path: str = "/", profile_id: str = "",
              source: tuple[str, str, str] = SOURCES[0], country: str = "DE",
              browser: str = "Firefox", is_bot: bool = False) -> dict:
        at = ms(at)
        # distinct times per device keep "first event" and "order" free of ties
        while (project_id, device_id, at) in self.used_times:
            at += timedelta(milliseconds=1)
        self.used_times.add((project_id, device_id, at))
        row = {
            "id": uuid.UUID(int=self.rng.getrandbits(128)),
            "project_id": project_id, "name": name, "device_id": device_id,
            "profile_id": profile_id, "session_id": "",
            "created_at": at,
            "received_at": ms(
                received_at or at + timedelta(milliseconds=self.rng.randint(20, 900))
            ),
            "path": path if name == "screen_view" else "",
            "referrer": source[0], "referrer_name": source[1], "referrer_type": source[2],
            "utm_source": "newsletter" if source[2] == "direct" and country == "FR" else "",
            "utm_medium": "email" if source[2] == "direct" and country == "FR" else "",
            "utm_campaign": "", "country": country,
            "region": {"DE": "BE", "US": "NY", "FR": "IDF"}[country],
            "city": {"DE": "Berlin", "US": "New York", "FR": "Paris"}[country],
            "os": "Linux", "browser": browser, "device": "desktop", "is_bot": is_bot,
        }
        self.events.append(row)
        return row

    def duplicate(self, row: dict, after: timedelta) -> dict:
        copy = {**row, "received_at": row["received_at"] + after}
        self.events.append(copy)
        return copy

    def profile_call(self, project_id: str, profile_id: str, kind: str, at: datetime, *,
                     received_at: datetime | None = None, **fields) -> dict:
        row = {
            "id": uuid.UUID(int=self.rng.getrandbits(128)), "project_id": project_id,
            "profile_id": profile_id, "kind": kind,
            "first_name": fields.get("first_name"), "last_name": fields.get("last_name"),
            "email": fields.get("email"), "properties": fields.get("properties", {}),
            "property": fields.get("property", ""), "delta": float(fields.get("delta", 0)),
            "updated_at": ms(at), "received_at": ms(received_at or at + timedelta(seconds=1)),
        }
        self.profile_calls.append(row)
        return row

    # --- the data -------------------------------------------------------------------------
    def random_visits(self, devices_per_project: int = 25) -> None:
        rng = self.rng
        for project_id in PROJECT_IDS:
            for number in range(devices_per_project):
                device_id = f"{project_id}-dev-{number}"
                profile_id = f"user-{number}" if number % 4 == 0 else ""
                country = ("DE", "US", "FR")[number % 3]
                browser = ("Firefox", "Chrome", "Safari")[number % 3]
                for _visit in range(rng.randint(1, 5)):
                    at = START + timedelta(seconds=rng.randint(0, DAYS * 86400 - 7200))
                    source = rng.choice(SOURCES)
                    for index in range(rng.randint(1, 7)):
                        if index == 0 or rng.random() < 0.6:
                            name, path = "screen_view", rng.choice(PATHS)
                        else:
                            name, path = rng.choice(CUSTOM_EVENTS), ""
                        self.event(project_id, device_id, name, at, path=path,
                                   profile_id=profile_id if index > 0 else "",
                                   source=source, country=country, browser=browser)
                        at += timedelta(seconds=rng.choice((5, 40, 300, 1500, 1799, 2400)))

    def crafted_cases(self) -> None:
        berlin_23h = datetime(2026, 10, 25, 22, 0, tzinfo=UTC)  # 23:00 CET (winter time)
        # a gap of exactly 30 minutes stays in the session; 30 minutes + 1 ms starts a new one
        t = datetime(2026, 10, 23, 9, 0, tzinfo=UTC)
        self.event(SHOP, "gap", "screen_view", t, path="/a")
        self.event(SHOP, "gap", "screen_view", t + timedelta(minutes=30), path="/b")
        self.event(SHOP, "gap", "screen_view",
                   t + timedelta(minutes=60, milliseconds=1), path="/c")
        # a session across Berlin's midnight is one session on its start day
        self.event(SHOP, "night", "screen_view", berlin_23h + timedelta(minutes=50),
                   path="/late")
        self.event(SHOP, "night", "screen_view", berlin_23h + timedelta(minutes=70),
                   path="/after-midnight")
        # DST day in Berlin: 00:30 local on Oct 25 is still Oct 24 in UTC
        self.event(SHOP, "dst", "screen_view", datetime(2026, 10, 24, 22, 30, tzinfo=UTC),
                   path="/dst")
        self.event(APP, "dst", "screen_view", datetime(2026, 11, 1, 4, 30, tzinfo=UTC),
                   path="/dst")  # 00:30 EDT on New York's change day
        # custom events only: not a bounce, no entry page
        self.event(SHOP, "custom", "click", datetime(2026, 10, 26, 12, 0, tzinfo=UTC))
        self.event(SHOP, "custom", "link_out", datetime(2026, 10, 26, 12, 1, tzinfo=UTC))
        # bots and reserved events never count
        self.event(SHOP, "bot", "screen_view", datetime(2026, 10, 26, 13, 0, tzinfo=UTC),
                   is_bot=True)
        self.event(SHOP, "custom", "session_start", datetime(2026, 10, 26, 11, 0, tzinfo=UTC))
        # duplicates: a copy in the same load, and one received an hour later
        row = self.event(SHOP, "dup", "screen_view", datetime(2026, 10, 27, 8, 0, tzinfo=UTC),
                         path="/dup")
        self.duplicate(row, timedelta(seconds=3))
        self.duplicate(row, timedelta(hours=1))
        # funnels (seed rows of demo-shop): strictly later steps, window inclusive
        t = datetime(2026, 10, 27, 10, 0, tzinfo=UTC)
        self.event(SHOP, "f-partial", "add_to_cart", t)
        self.event(SHOP, "f-edge", "add_to_cart", t)
        self.event(SHOP, "f-edge", "purchase", t + timedelta(hours=1))  # the window exactly
        self.event(SHOP, "f-over", "add_to_cart", t)
        self.event(SHOP, "f-over", "purchase", t + timedelta(hours=1, milliseconds=1))
        self.event(SHOP, "f-order", "purchase", t)
        self.event(SHOP, "f-order", "add_to_cart", t + timedelta(minutes=1))
        # signup funnel finished on the next day (window of one day)
        self.event(SHOP, "f-days", "signup_started",
                   datetime(2026, 10, 27, 22, 50, tzinfo=UTC))
        self.event(SHOP, "f-days", "signup_completed",
                   datetime(2026, 10, 28, 9, 0, tzinfo=UTC))

    def late_cases(self, received_at: datetime) -> None:
        """Events that arrive late (the collector allows up to 7 days), delivered last."""
        # two sessions of one device, 23:20-23:30 and 00:10-00:20 Berlin time on Oct 28/29 ...
        base = datetime(2026, 10, 28, 22, 20, tzinfo=UTC)  # 23:20 CET
        self.event(SHOP, "bridge", "screen_view", base, path="/one")
        self.event(SHOP, "bridge", "screen_view", base + timedelta(minutes=10), path="/two")
        self.event(SHOP, "bridge", "screen_view", base + timedelta(minutes=50), path="/three")
        self.event(SHOP, "bridge", "click", base + timedelta(minutes=60))
        # ... joined into one when an event from 23:45 arrives days later
        self.event(SHOP, "bridge", "screen_view", base + timedelta(minutes=30), path="/joined",
                   received_at=received_at)
        # a late event on a day that has no other new events
        self.event(APP, f"{APP}-dev-1", "screen_view", datetime(2026, 10, 26, 15, 0, tzinfo=UTC),
                   path="/late", received_at=received_at)

    def span_cases(self, received_at: datetime) -> None:
        """Late and new events next to stored sessions, delivered last: an incremental run
        recomputes only the sessions within the gap of a device's new events."""
        # a late event inside a stored session changes it, not the device's next session
        t = datetime(2026, 10, 24, 10, 0, tzinfo=UTC)
        for minutes in (0, 20, 40):
            self.event(SHOP, "inside", "screen_view", t + timedelta(minutes=minutes),
                       path=f"/inside-{minutes}")
        self.event(SHOP, "inside", "screen_view", t + timedelta(hours=3), path="/next")
        self.event(SHOP, "inside", "click", t + timedelta(minutes=10), received_at=received_at)
        # a late event 20 minutes before a stored session's start: the session starts earlier
        t = datetime(2026, 10, 25, 14, 0, tzinfo=UTC)
        self.event(SHOP, "earlier", "screen_view", t, path="/was-first")
        self.event(SHOP, "earlier", "screen_view", t + timedelta(minutes=5), path="/second")
        self.event(SHOP, "earlier", "screen_view", t - timedelta(minutes=20), path="/first",
                   received_at=received_at)
        # a returning device: a late event joins its first session, a new session days after its
        # last; the sessions between are left as they were. The same device id in another
        # project has no new events.
        for day in (23, 26, 28):
            t = datetime(2026, 10, day, 16, 0, tzinfo=UTC)
            self.event(APP, "returning", "screen_view", t, path=f"/day-{day}")
            self.event(APP, "returning", "screen_view", t + timedelta(minutes=25), path="/more")
        self.event(APP, "returning", "screen_view", datetime(2026, 10, 23, 16, 50, tzinfo=UTC),
                   path="/late", received_at=received_at)
        self.event(APP, "returning", "screen_view", datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
                   path="/back")
        self.event(SHOP, "returning", "screen_view", datetime(2026, 10, 27, 9, 0, tzinfo=UTC),
                   path="/other-project")

    def profile_cases(self) -> None:
        t = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)
        self.profile_call(SHOP, "user-0", "increment", t, property="logins", delta=5)
        self.profile_call(SHOP, "user-0", "identify", t + timedelta(hours=1), first_name="Ada",
                          email="ada@example.com", properties={"plan": "free", "logins": "1"})
        self.profile_call(SHOP, "user-0", "increment", t + timedelta(hours=2),
                          property="logins", delta=2)
        self.profile_call(SHOP, "user-0", "decrement", t + timedelta(hours=3),
                          property="logins", delta=1)
        self.profile_call(SHOP, "user-0", "identify", t + timedelta(hours=4),
                          last_name="Lovelace", properties={"plan": "pro"})
        self.profile_call(SHOP, "user-4", "identify", t, first_name="Bo",
                          properties={"visits": "abc"})
        self.profile_call(SHOP, "user-4", "increment", t + timedelta(hours=1),
                          property="visits", delta=3)
        self.profile_call(APP, "only-calls", "identify", t, email="x@example.com")


# the raw events' text columns a hand-made row leaves empty
TEXT_COLUMNS = ("profile_id", "session_id", "referrer", "referrer_name", "referrer_type",
                "utm_source", "utm_medium", "utm_campaign", "country", "region", "city", "os",
                "browser", "device")


def raw_view(project_id: str, device_id: str, created_at: datetime,
             received_at: datetime) -> dict:
    """One raw page view of path "/", every text column empty: for tests that build a few rows
    by hand instead of the scenario."""
    return {**dict.fromkeys(TEXT_COLUMNS, ""), "id": uuid.uuid4(), "project_id": project_id,
            "name": "screen_view", "device_id": device_id, "created_at": created_at,
            "received_at": received_at, "path": "/", "is_bot": False}


def build() -> Scenario:
    scenario = Scenario()
    scenario.random_visits()
    scenario.crafted_cases()
    scenario.profile_cases()
    last = max(e["received_at"] for e in scenario.events)
    scenario.late_cases(received_at=last + timedelta(hours=2))
    scenario.span_cases(received_at=last + timedelta(hours=2))
    return scenario


def loads(rows: list[dict], cutoffs: list[datetime]) -> list[list[dict]]:
    """Split rows into consecutive loads by received_at (each cutoff ends a load)."""
    batches: list[list[dict]] = [[] for _ in range(len(cutoffs) + 1)]
    for row in rows:
        index = sum(row["received_at"] > cutoff for cutoff in cutoffs)
        batches[index].append(row)
    return batches
